import { isStowageError } from '@stowage/oci';
import { describe, expect, it } from 'vitest';
import {
  classifyTag,
  encodeClientIdTag,
  encodeMetaTag,
  isStageListingTag,
  isValidDockerTag,
  listStages,
  listStagesByDigest,
  murmur3_32,
  oldestClientId,
  parseClientIdTag,
  parseManagedImageTag,
  parseMetaTag,
  parseReferrersTag,
  parseRejectedTag,
  parseStageTag,
  referrersTag,
  reverseString,
  slug,
  slugify,
  unslugImageName,
} from './index.js';
import { slugTable } from './internal/slug-table.js';

const D = 'a'.repeat(56);
const E = 'b'.repeat(56);

function code(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (error) {
    if (!isStowageError(error)) throw error;
    return error.code;
  }
  return undefined;
}

describe('the slug table', () => {
  it('has werf’s 971 entries', () => {
    expect(slugTable.size).toBe(971);
    expect(slugTable.get('щ')).toBe('shch');
    expect(slugTable.get('ß')).toBe('b');
    expect(slugTable.get('™')).toBe('tm');
    expect(slugTable.get('⒛')).toBe('20');
    expect(slugTable.get('Ъ')).toBe('');
  });
});

describe('slugify', () => {
  it.each<[string, string]>([
    ['Hello World', 'hello-world'],
    ['--a--b--', 'a-b'],
    ['a_b.c', 'a-b-c'],
    ['!"#$%', ''],
    ['Щука', 'shchuka'],
    ['ЪЪa', 'a'],
    ['a\uD800b', 'ab'],
    ['', ''],
  ])('%j → %j', (input, output) => {
    expect(slugify(input)).toBe(output);
  });

  it('is the murmur hash alone when nothing survives', () => {
    expect(slug('!!!', 42)).toBe(murmur3_32(new TextEncoder().encode('!!!')).toString(16));
  });
});

describe('isValidDockerTag', () => {
  it('counts UTF-8 bytes and anchors the pattern', () => {
    expect(isValidDockerTag('')).toBe(true);
    expect(isValidDockerTag('a'.repeat(128))).toBe(true);
    expect(isValidDockerTag('a'.repeat(129))).toBe(false);
    expect(isValidDockerTag('.a')).toBe(false);
    expect(isValidDockerTag('a\n')).toBe(false);
    expect(isValidDockerTag('ы')).toBe(false);
  });
});

describe('stage tags', () => {
  it('follow Go ParseInt for the timestamp', () => {
    expect(parseStageTag(`${D}-+5`)).toEqual({ digest: D, creationTs: 5 });
    expect(parseStageTag(`${D}--5`)).toEqual({ digest: D, creationTs: -5 });
    for (const bad of [
      `${D}-`,
      `${D}- 5`,
      `${D}-1_000`,
      `${D}-0x10`,
      `${D}-9223372036854775808`,
      'short',
      `${D}x`,
    ]) {
      expect(code(() => parseStageTag(bad))).toBe('TAG_INVALID');
    }
    expect(code(() => parseStageTag(`${D}-9007199254740993`))).toBe('TAG_INVALID');
  });

  it('listing applies werf’s exact filter', () => {
    const tags = [
      `${D}-1700000000123`,
      E,
      `${D}-1700000000123-rejected`,
      'managed-image-x',
      `meta-${'c'.repeat(65)}`,
      'latest',
      `${'z'.repeat(56)}`,
      `${'q'.repeat(56)}-${'1'.repeat(13)}`,
      `${D}-17000000001x3`,
      `${'a'.repeat(55)}-a-12345678901`,
    ];
    expect(listStages(tags)).toEqual([
      { digest: D, creationTs: 1700000000123 },
      { digest: E, creationTs: 0 },
      { digest: 'z'.repeat(56), creationTs: 0 },
      { digest: 'q'.repeat(56), creationTs: 1111111111111 },
    ]);
    expect(isStageListingTag(`meta-${'c'.repeat(51)}`)).toBe(false);
  });

  it('by digest: rejected stages and parent time are skipped', () => {
    const tags = [`${D}-100`, `${D}-200`, `${D}-300`, `${D}-200-rejected`, `${E}-150`, `${E}-300-rejected`];
    expect(listStagesByDigest(tags, D)).toEqual([{ digest: D, creationTs: 100 }]);
    expect(listStagesByDigest(tags, D, { parentCreationTs: 150 })).toEqual([]);
    expect(listStagesByDigest([`${D}-100`, `${D}-200`], D, { parentCreationTs: 150 })).toEqual([
      { digest: D, creationTs: 200 },
    ]);
  });
});

describe('records', () => {
  it('managed images round-trip names', () => {
    expect(parseManagedImageTag('managed-image-frontend__slash__app')).toEqual({
      managedImageId: 'frontend__slash__app',
      imageName: 'frontend/app',
    });
    expect(unslugImageName('__nameless__')).toBe('');
    expect(code(() => parseManagedImageTag('x'))).toBe('TAG_INVALID');
  });

  it('meta tags need exactly three parts', () => {
    expect(parseMetaTag(encodeMetaTag({ imageMetadataId: '0', commit: 'c', stageId: 's' }))).toEqual({
      imageMetadataId: '0',
      commit: 'c',
      stageId: 's',
    });
    expect(code(() => parseMetaTag('meta-a_b'))).toBe('TAG_INVALID');
    expect(code(() => parseMetaTag('meta-a_b_c_d'))).toBe('TAG_INVALID');
  });

  it('client ids split on the last dash and the oldest wins', () => {
    expect(code(() => parseClientIdTag('client-id-nodash'))).toBe('TAG_INVALID');
    expect(code(() => parseClientIdTag('client-id-a-b'))).toBe('TAG_INVALID');
    const records = [
      { clientId: 'x', timestampMs: 5 },
      { clientId: 'y', timestampMs: 3 },
    ];
    expect(oldestClientId(records)).toEqual({ clientId: 'y', timestampMs: 3 });
    expect(oldestClientId([])).toBeUndefined();
    expect(parseClientIdTag(encodeClientIdTag({ clientId: 'a-b-c', timestampMs: 9 }))).toEqual({
      clientId: 'a-b-c',
      timestampMs: 9,
    });
  });

  it('rejected tags follow the regexp', () => {
    expect(parseRejectedTag(`${D}-12-rejected`)).toEqual({ digest: D, creationTs: 12 });
    expect(code(() => parseRejectedTag(`${'g'.repeat(56)}-12-rejected`))).toBe('TAG_INVALID');
    expect(code(() => parseRejectedTag(`${D}--12-rejected`))).toBe('TAG_INVALID');
  });

  it('referrers fallback tags', () => {
    const digest = `sha256:${'f'.repeat(64)}` as const;
    expect(referrersTag(digest)).toBe(`sha256-${'f'.repeat(64)}`);
    expect(parseReferrersTag(referrersTag(digest))).toBe(digest);
    expect(code(() => parseReferrersTag('sha256-xyz'))).toBe('TAG_INVALID');
  });

  it('reverses by code point', () => {
    expect(reverseString('aы😀')).toBe('😀ыa');
  });
});

describe('classifyTag', () => {
  it.each<[string, string]>([
    [`${D}-1700000000123`, 'stage'],
    [D, 'multiplatform-stage'],
    ['managed-image-backend', 'managed-image'],
    ['meta-27dba8ed_c_s', 'meta'],
    ['meta-broken', 'other'],
    ['custom-tag-meta-main', 'custom-tag-meta'],
    [`import-metadata-${'3'.repeat(64)}`, 'import-metadata'],
    ['client-id-6f1c2a4e-1b7d-4c1e-9a51-0d7f3d1e2b9a-3400000000246', 'client-id'],
    [`${D}-1-rejected`, 'rejected'],
    ['sync-server', 'sync-server'],
    ['cleanup', 'cleanup'],
    [`sha256-${'e'.repeat(64)}`, 'referrers'],
    ['latest', 'other'],
    ['', 'other'],
  ])('%s is %s', (tag, kind) => {
    expect(classifyTag(tag).kind).toBe(kind);
  });

  it('returns the parsed fields', () => {
    expect(classifyTag(`${D}-1700000000042`)).toEqual({
      kind: 'stage',
      digest: D,
      creationTs: 1700000000042,
    });
    expect(classifyTag(`${D}-42`)).toEqual({ kind: 'other' });
    expect(classifyTag('managed-image-__nameless__')).toEqual({
      kind: 'managed-image',
      managedImageId: '__nameless__',
      imageName: '',
    });
  });
});
