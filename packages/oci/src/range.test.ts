import { describe, expect, it } from 'vitest';
import { isStowageError } from './errors.js';
import { resolveRange } from './range.js';

const code = (fn: () => unknown) => {
  try {
    fn();
  } catch (error) {
    return isStowageError(error) ? error.code : 'not a stowage error';
  }
  return 'no error';
};

describe('resolveRange', () => {
  it('answers undefined without a range', () => {
    expect(resolveRange(undefined, 10)).toBeUndefined();
  });
  it('cuts an end past the blob to its last byte, as HTTP does', () => {
    expect(resolveRange({ start: 2 }, 10)).toEqual({ start: 2, end: 9 });
    expect(resolveRange({ start: 2, end: 99 }, 10)).toEqual({ start: 2, end: 9 });
    expect(resolveRange({ start: 9, end: 9 }, 10)).toEqual({ start: 9, end: 9 });
  });
  it('refuses ranges outside the blob with RANGE_INVALID', () => {
    expect(code(() => resolveRange({ start: 10 }, 10))).toBe('RANGE_INVALID');
    expect(code(() => resolveRange({ start: -1 }, 10))).toBe('RANGE_INVALID');
    expect(code(() => resolveRange({ start: 5, end: 4 }, 10))).toBe('RANGE_INVALID');
    expect(code(() => resolveRange({ start: 0.5 }, 10))).toBe('RANGE_INVALID');
    expect(code(() => resolveRange({ start: 0 }, 0))).toBe('RANGE_INVALID');
  });
});
