/**
 * JSON the way Go's encoding/json writes it, which is what containers/storage
 * puts in images.json and werf in its caches and record configs: map keys
 * sorted by byte order, struct fields in declaration order (`goStruct`), `<`, `>`, `&`, U+2028 and
 * U+2029 escaped as `\u00XX`/`\u20XX`, control characters other than \n, \r
 * and \t as `\u00XX`, no whitespace, no trailing newline.
 */

const HEX = '0123456789abcdef';

function escapeCode(code: number): string {
  return `\\u${HEX[(code >> 12) & 15]}${HEX[(code >> 8) & 15]}${HEX[(code >> 4) & 15]}${HEX[code & 15]}`;
}

/** A JSON string literal as Go's encoder writes it. */
export function goString(value: string): string {
  let out = '"';
  let start = 0;
  for (let i = 0; i < value.length; i++) {
    const code = value.charCodeAt(i);
    let replacement: string | undefined;
    if (code === 0x22) replacement = '\\"';
    else if (code === 0x5c) replacement = '\\\\';
    else if (code === 0x0a) replacement = '\\n';
    else if (code === 0x0d) replacement = '\\r';
    else if (code === 0x09) replacement = '\\t';
    else if (
      code < 0x20 ||
      code === 0x3c ||
      code === 0x3e ||
      code === 0x26 ||
      code === 0x2028 ||
      code === 0x2029
    )
      replacement = escapeCode(code);
    else if (code >= 0xd800 && code <= 0xdfff) {
      // A lone surrogate is invalid UTF-8 to Go, which writes U+FFFD instead.
      const next = value.charCodeAt(i + 1);
      if (code <= 0xdbff && next >= 0xdc00 && next <= 0xdfff) {
        i++;
        continue;
      }
      replacement = '\\ufffd';
    }
    if (replacement !== undefined) {
      out += value.slice(start, i) + replacement;
      start = i + 1;
    }
  }
  return `${out + value.slice(start)}"`;
}

/** A Go struct: its fields written in this order (undefined values left out, as `omitempty`). */
export class GoStruct {
  readonly fields: readonly (readonly [string, unknown])[];
  constructor(fields: readonly (readonly [string, unknown])[]) {
    this.fields = fields;
  }
}

/** Fields in declaration order; a field whose value is `undefined` is left out (an `omitempty` field at its zero value). */
export function goStruct(fields: readonly (readonly [string, unknown])[]): GoStruct {
  return new GoStruct(fields);
}

/** Any JSON value with Go's rules: objects (Go maps) with sorted keys, `goStruct`s in field order. */
export function goJson(value: unknown): string {
  if (value === null || value === undefined) return 'null';
  if (value instanceof GoStruct) {
    const fields = value.fields.filter(([, v]) => v !== undefined);
    return `{${fields.map(([k, v]) => `${goString(k)}:${goJson(v)}`).join(',')}}`;
  }
  if (typeof value === 'string') return goString(value);
  if (typeof value === 'number') return Number.isFinite(value) ? String(value) : 'null';
  if (typeof value === 'boolean') return value ? 'true' : 'false';
  if (Array.isArray(value)) return `[${value.map(goJson).join(',')}]`;
  if (typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => byBytes(a, b));
    return `{${entries.map(([k, v]) => `${goString(k)}:${goJson(v)}`).join(',')}}`;
  }
  return 'null';
}

/** Byte order of the UTF-8 encodings, which Go uses to sort map keys. */
export function byBytes(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}
