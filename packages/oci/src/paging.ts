import type { ListOptions, ListPage } from './registry.js';

/** Byte-order comparison (what the distribution API sorts by), not locale order. */
export function compareBytes(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/**
 * One page of a listing with the distribution API's `n`/`last` semantics:
 * entries sorted in byte order without duplicates, those strictly after
 * `last`, at most `n` of them (`n: 0` is an empty page), and `next` set when
 * more follow. The input is not modified. Input already in order is not
 * sorted again (one pass), and otherwise sorted without a comparator.
 */
export function pageOf(items: Iterable<string>, options: ListOptions = {}): ListPage {
  const all = Array.isArray(items) ? (items as string[]).slice() : [...items];
  let ordered = true;
  for (let i = 1; i < all.length; i++) {
    if ((all[i - 1] as string) > (all[i] as string)) {
      ordered = false;
      break;
    }
  }
  // the default sort compares UTF-16 code units, as compareBytes does, and is faster than a comparator
  if (!ordered) all.sort();
  // sorted: duplicates are neighbours
  let kept = 0;
  for (let i = 0; i < all.length; i++) {
    if (kept > 0 && all[kept - 1] === all[i]) continue;
    all[kept++] = all[i] as string;
  }
  all.length = kept;
  const last = options.last;
  let from = 0;
  if (last !== undefined) {
    // the first entry after `last`, by binary search
    let hi = all.length;
    while (from < hi) {
      const mid = (from + hi) >>> 1;
      if ((all[mid] as string) > last) hi = mid;
      else from = mid + 1;
    }
  }
  const after = from === 0 ? all : all.slice(from);
  if (options.n === undefined) return { items: after };
  const n = Math.max(0, Math.floor(options.n));
  const page = after.slice(0, n);
  return n > 0 && after.length > n ? { items: page, next: page[page.length - 1] as string } : { items: page };
}
