import { describe, expect, it } from 'vitest';
import { TagListing } from './listing.js';

const D1 = 'a'.repeat(56);
const D2 = 'b'.repeat(56);

describe('TagListing', () => {
  it('keeps the tags sorted whatever order they came in, without duplicates', () => {
    const listing = new TagListing(['z', `${D2}-2`, `${D1}-1`, 'z', `${D1}`]);
    expect(listing.all()).toEqual([D1, `${D1}-1`, `${D2}-2`, 'z']);
    expect(listing.size).toBe(4);
  });

  it('finds the tags of a digest by prefix, and any other prefix', () => {
    const listing = new TagListing([
      `${D1}-1`,
      `${D1}-2-rejected`,
      `${D2}-3`,
      'meta-x',
      `${D1}`,
      'managed-image-a',
    ]);
    expect(listing.withPrefix(D1)).toEqual([D1, `${D1}-1`, `${D1}-2-rejected`]);
    expect(listing.withPrefix('ma')).toEqual(['managed-image-a']);
    expect(listing.withPrefix('c'.repeat(56))).toEqual([]);
  });

  it('stays sorted through writes, and counts them', () => {
    const listing = new TagListing([`${D2}-3`]);
    listing.add(`${D1}-1`);
    listing.add('zz');
    expect(listing.withPrefix(D1)).toEqual([`${D1}-1`]);
    expect(listing.version).toBe(2);
    listing.add('zz'); // a tag written again: its manifest may have moved
    expect([listing.version, listing.additions]).toEqual([2, 3]);
    listing.delete(`${D1}-1`);
    listing.delete('absent');
    expect(listing.all()).toEqual([`${D2}-3`, 'zz']);
    expect([listing.version, listing.additions, listing.has(`${D1}-1`)]).toEqual([3, 3, false]);
  });
});
