import type { ListOptions, ListPage } from './registry.js';

/** Byte-order comparison (what the distribution API sorts by), not locale order. */
export function compareBytes(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/**
 * One page of a listing with the distribution API's `n`/`last` semantics:
 * entries sorted in byte order, those strictly after `last`, at most `n` of
 * them (`n: 0` is an empty page), and `next` set when more follow. The input
 * is not modified.
 */
export function pageOf(items: Iterable<string>, options: ListOptions = {}): ListPage {
  const sorted = [...items].sort(compareBytes);
  const last = options.last;
  const after = last === undefined ? sorted : sorted.filter((item) => item > last);
  if (options.n === undefined) return { items: after };
  const n = Math.max(0, Math.floor(options.n));
  const page = after.slice(0, n);
  return n > 0 && after.length > n ? { items: page, next: page[page.length - 1] as string } : { items: page };
}
