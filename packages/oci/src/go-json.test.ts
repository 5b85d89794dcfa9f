import { describe, expect, it } from 'vitest';
import { byBytes, goJson, goString, goStruct } from './go-json.js';

describe('goJson', () => {
  it('writes maps with keys in UTF-8 byte order and structs in field order', () => {
    const value = goStruct([
      ['name', 'a<b>&c'],
      ['skipped', undefined],
      ['labels', { b: '2', a: '1', '\u{1F600}': 'x', '\uFFFD': 'y' }],
      ['list', null],
      ['n', 1700000000000000000],
    ]);
    expect(goJson(value)).toBe(
      '{"name":"a\\u003cb\\u003e\\u0026c","labels":{"a":"1","b":"2","\uFFFD":"y","\u{1F600}":"x"},"list":null,"n":1700000000000000000}',
    );
  });

  it('escapes what Go escapes and replaces lone surrogates', () => {
    expect(goString('\u2028\u0001\n\t"\\')).toBe('"\\u2028\\u0001\\n\\t\\"\\\\"');
    expect(goString('\uD800x')).toBe('"\\ufffdx"');
    expect(byBytes('\uFFFD', '\u{1F600}')).toBeLessThan(0);
  });
});
