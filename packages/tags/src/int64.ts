import { TagParseError } from './errors.js';

const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;
const decimal = /^[+-]?[0-9]+$/;

/**
 * Go's `strconv.ParseInt(s, 10, 64)`: an optional sign, decimal digits only,
 * within int64. Values a JS number cannot hold exactly (beyond 2^53 - 1) are
 * refused too: werf's millisecond timestamps are far below that.
 */
export function parseGoInt64(text: string, tag: string): number {
  if (!decimal.test(text))
    throw new TagParseError(tag, `${JSON.stringify(text.slice(0, 40))} is not a decimal integer`);
  const value = BigInt(text);
  if (value < INT64_MIN || value > INT64_MAX)
    throw new TagParseError(tag, `${text.slice(0, 40)} is out of the int64 range`);
  if (value > BigInt(Number.MAX_SAFE_INTEGER) || value < BigInt(Number.MIN_SAFE_INTEGER)) {
    throw new TagParseError(tag, `${text.slice(0, 40)} is beyond the safe integer range`);
  }
  return Number(value);
}
