/**
 * Go's `time.ParseDuration` syntax, the one distribution's and zot's config
 * files use: an optional sign, then one or more decimal numbers each with a
 * unit (`ns`, `us`, `µs`, `μs`, `ms`, `s`, `m`, `h`), or a bare `0`. Computed
 * in whole nanoseconds as Go does (a fraction below 1 ns is dropped), so
 * `1.1s` is exactly 1100 ms.
 */

const NANOSECONDS_PER_UNIT: ReadonlyMap<string, bigint> = new Map([
  ['ns', 1n],
  ['us', 1_000n],
  ['µs', 1_000n], // U+00B5 micro sign
  ['μs', 1_000n], // U+03BC Greek mu
  ['ms', 1_000_000n],
  ['s', 1_000_000_000n],
  ['m', 60_000_000_000n],
  ['h', 3_600_000_000_000n],
]);

/** Go's limit: a duration is an int64 of nanoseconds (about 292 years). */
const MAX_NANOSECONDS = 2n ** 63n - 1n;

const COMPONENT = /^(\d*)(?:\.(\d*))?([^\d.]*)/;

/**
 * A Go duration in milliseconds (`1h30m` → 5 400 000, `500ms` → 500,
 * `1500us` → 1.5, `-2s` → -2000), or `undefined` when `text` is not one
 * (`1d`, `5`, `1h 30m`, `''`). Callers decide whether a negative value is allowed.
 */
export function parseGoDuration(text: string): number | undefined {
  if (typeof text !== 'string') return undefined;
  let rest = text;
  let negative = false;
  if (rest.startsWith('-') || rest.startsWith('+')) {
    negative = rest.startsWith('-');
    rest = rest.slice(1);
  }
  if (rest === '0') return 0;
  if (rest === '') return undefined;
  let total = 0n;
  while (rest !== '') {
    const match = COMPONENT.exec(rest);
    const whole = match?.[1] ?? '';
    const fraction = match?.[2] ?? '';
    const unit = NANOSECONDS_PER_UNIT.get(match?.[3] ?? '');
    // A component needs a digit (`.s` is not one) and a known unit (`5` and `1d` are not).
    if (!match || (whole === '' && fraction === '') || unit === undefined) return undefined;
    total += BigInt(whole || '0') * unit;
    if (fraction !== '') total += (BigInt(fraction) * unit) / 10n ** BigInt(fraction.length);
    if (total > MAX_NANOSECONDS) return undefined;
    rest = rest.slice(match[0].length);
  }
  if (total === 0n) return 0;
  const ms = Number(total) / 1e6;
  return negative ? -ms : ms;
}
