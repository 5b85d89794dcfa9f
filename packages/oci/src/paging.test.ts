import { describe, expect, it } from 'vitest';
import { pageOf } from './paging.js';

describe('pageOf', () => {
  const all = ['b', 'a', 'B', 'c', 'a-1'];
  it('sorts in byte order without touching the input', () => {
    const input = [...all];
    expect(pageOf(input).items).toEqual(['B', 'a', 'a-1', 'b', 'c']);
    expect(input).toEqual(all);
  });
  it('pages with n and last and says where the next page starts', () => {
    expect(pageOf(all, { n: 2 })).toEqual({ items: ['B', 'a'], next: 'a' });
    expect(pageOf(all, { n: 2, last: 'a' })).toEqual({ items: ['a-1', 'b'], next: 'b' });
    expect(pageOf(all, { n: 2, last: 'b' })).toEqual({ items: ['c'] });
    expect(pageOf(all, { n: 3, last: 'a-1' })).toEqual({ items: ['b', 'c'] });
  });
  it('answers an empty page for n: 0 and for a last past the end', () => {
    expect(pageOf(all, { n: 0 })).toEqual({ items: [] });
    expect(pageOf(all, { last: 'z' })).toEqual({ items: [] });
  });
  it('drops duplicates and takes sorted input as it is', () => {
    expect(pageOf(['a', 'c', 'a', 'b', 'c']).items).toEqual(['a', 'b', 'c']);
    const sorted = ['a', 'b', 'b', 'c'];
    expect(pageOf(sorted, { last: 'b' }).items).toEqual(['c']);
    expect(pageOf(sorted, { last: 'a', n: 1 })).toEqual({ items: ['b'], next: 'b' });
    expect(sorted).toEqual(['a', 'b', 'b', 'c']);
  });
  it('takes any iterable', () => {
    expect(pageOf(new Set(['y', 'x']), { n: 1 })).toEqual({ items: ['x'], next: 'x' });
  });
});
