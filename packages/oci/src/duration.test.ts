import { describe, expect, it } from 'vitest';
import { parseGoDuration } from './duration.js';

describe('parseGoDuration', () => {
  it('reads every unit Go knows, in milliseconds', () => {
    expect(parseGoDuration('6h')).toBe(6 * 3_600_000);
    expect(parseGoDuration('5m')).toBe(300_000);
    expect(parseGoDuration('30s')).toBe(30_000);
    expect(parseGoDuration('500ms')).toBe(500);
    expect(parseGoDuration('1500us')).toBe(1.5);
    expect(parseGoDuration('2000µs')).toBe(2); // micro sign
    expect(parseGoDuration('3000μs')).toBe(3); // Greek mu
    expect(parseGoDuration('4000000ns')).toBe(4);
  });

  it('adds components and fractions exactly, as Go counts nanoseconds', () => {
    expect(parseGoDuration('1h30m')).toBe(5_400_000);
    expect(parseGoDuration('1h30m15s250ms')).toBe(5_415_250);
    expect(parseGoDuration('1.1s')).toBe(1100);
    expect(parseGoDuration('1.5h')).toBe(5_400_000);
    expect(parseGoDuration('.5s')).toBe(500);
    expect(parseGoDuration('1.s')).toBe(1000);
    // below a nanosecond is dropped, as Go does
    expect(parseGoDuration('1.9ns')).toBe(0.000001);
  });

  it('takes a sign and a bare zero', () => {
    expect(parseGoDuration('0')).toBe(0);
    expect(parseGoDuration('-0')).toBe(0);
    expect(parseGoDuration('+2s')).toBe(2000);
    expect(parseGoDuration('-2s')).toBe(-2000);
    expect(parseGoDuration('0s')).toBe(0);
  });

  it('refuses what Go refuses', () => {
    for (const text of [
      '',
      '5',
      '1d',
      '1h 30m',
      ' 1h',
      '1h ',
      '.s',
      's',
      '1.2.3s',
      '1H',
      '--1s',
      '-',
      '1e3s',
    ]) {
      expect(parseGoDuration(text), JSON.stringify(text)).toBeUndefined();
    }
    // a unit that is a property of Object.prototype is no unit
    expect(parseGoDuration('1constructor')).toBeUndefined();
    expect(parseGoDuration(5 as unknown as string)).toBeUndefined();
  });

  it('refuses more than Go can hold (an int64 of nanoseconds)', () => {
    expect(parseGoDuration('2562047h')).toBe(2562047 * 3_600_000);
    expect(parseGoDuration('2562048h')).toBeUndefined();
  });
});
