import { fullCapabilities } from '@stowage/oci';
import { describe, expect, it } from 'vitest';
import { distributionCapabilities, parseCapabilitiesHeader } from './ping.js';

describe('parseCapabilitiesHeader', () => {
  it('reads the names of the true capabilities and the referrers mode', () => {
    const parsed = parseCapabilitiesHeader(
      'catalog, catalogPaging,deleteBlob ,  ranges, referrers=tag-schema',
    );
    expect(parsed).toEqual({
      ...Object.fromEntries(Object.keys(fullCapabilities).map((name) => [name, false])),
      catalog: true,
      catalogPaging: true,
      deleteBlob: true,
      ranges: true,
      referrers: 'tag-schema',
    });
  });

  it('round-trips every capability a server can declare', () => {
    const names = Object.entries(fullCapabilities)
      .filter(([name]) => name !== 'referrers')
      .map(([name]) => name);
    expect(parseCapabilitiesHeader(`${names.join(', ')}, referrers=api`)).toEqual(fullCapabilities);
  });

  it('ignores names it does not know, with or without a value, and empty list elements', () => {
    expect(parseCapabilitiesHeader('teleport, quantum=yes, , mount, referrers=none,')).toMatchObject({
      mount: true,
      catalog: false,
      referrers: 'none',
    });
  });

  it('takes a missing referrers as none and an empty header as nothing', () => {
    expect(parseCapabilitiesHeader('catalog').referrers).toBe('none');
    expect(parseCapabilitiesHeader('')).toEqual({
      ...Object.fromEntries(Object.keys(fullCapabilities).map((name) => [name, false])),
      referrers: 'none',
    });
  });

  it.each([
    ['referrers=sometimes'],
    ['referrers'],
    ['referrers=api, referrers=none'],
    ['catalog=false'],
    ['cat alog'],
    ['catalog;q=1'],
    ['"catalog"'],
    ['catalog, referrers=api\u0000'],
  ])('refuses %j with PROTOCOL_ERROR', (header) => {
    expect(() => parseCapabilitiesHeader(header)).toThrow(
      expect.objectContaining({ code: 'PROTOCOL_ERROR' }),
    );
  });
});

describe('distributionCapabilities', () => {
  it('is what docker-registry 2.8 does, as the client sees it', () => {
    // what 2.8 lacks: tag deletes (400), anonymous mounts (an upload instead), sparse indexes, locks, GC
    const lacking = new Set(['deleteTag', 'anonymousMount', 'sparseIndex', 'lock', 'garbageCollect']);
    for (const name of Object.keys(fullCapabilities) as (keyof typeof fullCapabilities)[]) {
      if (name === 'referrers') continue;
      expect([name, distributionCapabilities[name]]).toEqual([name, !lacking.has(name)]);
    }
    expect(distributionCapabilities.referrers).toBe('tag-schema');
    expect(Object.keys(distributionCapabilities).sort()).toEqual(Object.keys(fullCapabilities).sort());
  });
});
