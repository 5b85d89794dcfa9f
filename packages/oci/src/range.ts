import { RegistryError } from './errors.js';
import type { ByteRange } from './registry.js';

/** An inclusive byte range inside a blob. */
export interface ResolvedRange {
  readonly start: number;
  readonly end: number;
}

/**
 * Checks a requested range against a blob's size: an `end` past the blob is
 * cut to its last byte, as HTTP does; a start outside the blob, or an end
 * before the start, is refused with `RANGE_INVALID`. No range gives `undefined`.
 */
export function resolveRange(range: ByteRange | undefined, size: number): ResolvedRange | undefined {
  if (range === undefined) return undefined;
  const { start } = range;
  const end = Math.min(range.end ?? size - 1, size - 1);
  if (
    !Number.isSafeInteger(start) ||
    start < 0 ||
    start >= size ||
    !Number.isSafeInteger(end) ||
    end < start
  ) {
    throw new RegistryError(
      'RANGE_INVALID',
      `range ${start}-${range.end ?? ''} is outside the ${size}-byte blob`,
      {
        details: { size, start, ...(range.end === undefined ? {} : { end: range.end }) },
      },
    );
  }
  return { start, end };
}
