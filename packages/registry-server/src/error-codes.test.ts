// Every error code the server can put on the wire is the distribution-spec's,
// one of the two distribution adds that we use, or one of Stowage's own listed
// in the README. The fuzz test checks the codes of real answers against the
// same set; this one walks every place a code comes from.
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import {
  DISTRIBUTION_ERROR_CODES,
  OCI_ERROR_CODES,
  RegistryError,
  type RegistryErrorCode,
  STOWAGE_ERROR_CODES,
  StowageError,
} from '@stowage/oci';
import { describe, expect, it } from 'vitest';
import type { AuthDecision } from './auth/types.js';
import { HttpError, toWireError, WIRE_ERROR_CODES } from './errors.js';

// Written out as records so that a code added to either union fails the typecheck here until it is listed.
const STORE_CODES: Record<RegistryErrorCode, true> = {
  BLOB_UNKNOWN: true,
  BLOB_UPLOAD_INVALID: true,
  BLOB_UPLOAD_UNKNOWN: true,
  DIGEST_INVALID: true,
  MANIFEST_BLOB_UNKNOWN: true,
  MANIFEST_INVALID: true,
  MANIFEST_UNKNOWN: true,
  NAME_INVALID: true,
  NAME_UNKNOWN: true,
  SIZE_INVALID: true,
  TAG_INVALID: true,
  UNAUTHORIZED: true,
  DENIED: true,
  UNSUPPORTED: true,
  TOOMANYREQUESTS: true,
  RANGE_INVALID: true,
  UNAVAILABLE: true,
  UNKNOWN: true,
};
const AUTHORIZER_CODES: Record<Extract<AuthDecision, { ok: false }>['code'], true> = {
  UNAUTHORIZED: true,
  DENIED: true,
  TOOMANYREQUESTS: true,
};

class OtherError extends StowageError<string> {}

const codeOf = (error: unknown) => toWireError(error).body.errors[0]?.code;

/** Every source file of the package (tests left out), with its text. */
async function sources(): Promise<{ file: string; text: string }[]> {
  const dir = import.meta.dirname;
  const files = (await readdir(dir, { recursive: true }))
    .filter((file) => file.endsWith('.ts') && !file.endsWith('.test.ts'))
    .map((file) => join(dir, file));
  return Promise.all(files.map(async (file) => ({ file, text: await readFile(file, 'utf8') })));
}

describe('error codes on the wire', () => {
  it('are the spec list, TAG_INVALID and PAGINATION_NUMBER_INVALID, UNAVAILABLE and UNKNOWN', () => {
    expect(OCI_ERROR_CODES).toHaveLength(14);
    expect([...DISTRIBUTION_ERROR_CODES]).toEqual(['TAG_INVALID', 'PAGINATION_NUMBER_INVALID']);
    expect([...STOWAGE_ERROR_CODES]).toEqual(['UNAVAILABLE', 'UNKNOWN']);
    expect(WIRE_ERROR_CODES.size).toBe(18);
  });

  it('from every store error code, and anything else thrown, are in the set', () => {
    for (const code of Object.keys(STORE_CODES) as RegistryErrorCode[]) {
      const wire = toWireError(new RegistryError(code, 'x'));
      expect(WIRE_ERROR_CODES.has(wire.body.errors[0]?.code ?? ''), code).toBe(true);
      expect(wire.status, code).toBeLessThan(code === 'UNAVAILABLE' || code === 'UNKNOWN' ? 600 : 500);
    }
    expect(codeOf(new RegistryError('RANGE_INVALID', 'x'))).toBe('BLOB_UPLOAD_INVALID');
    expect(toWireError(new RegistryError('RANGE_INVALID', 'x')).status).toBe(416);
    expect(codeOf(new OtherError('PLATFORM_INVALID', 'x'))).toBe('MANIFEST_INVALID');
    for (const code of ['LOCK_TIMEOUT', 'constructor', '__proto__', 'toString', 'AUTH_CONFIG_INVALID']) {
      expect(toWireError(new OtherError(code, 'x')), code).toMatchObject({ status: 500 });
      expect(codeOf(new OtherError(code, 'x')), code).toBe('UNKNOWN');
    }
    expect(codeOf(new Error('x'))).toBe('UNKNOWN');
    expect(codeOf('a string')).toBe('UNKNOWN');
    // a slip in the handler cannot send a code of its own either
    expect(toWireError(new HttpError('MADE_UP', 'x', { status: 400 }))).toMatchObject({ status: 500 });
    for (const code of Object.keys(AUTHORIZER_CODES)) expect(WIRE_ERROR_CODES.has(code), code).toBe(true);
  });

  it('raised by the handler itself are in the set (every HttpError in the sources, read)', async () => {
    const found: string[] = [];
    for (const { file, text } of await sources()) {
      const all = text.match(/new HttpError\(/g) ?? [];
      // a literal code, or an authorizer's decision passed on (whose codes are checked above)
      const literal = [...text.matchAll(/new HttpError\(\s*'([A-Z_]+)'/g)];
      const fromDecision = text.match(/new HttpError\(decision\.code,/g) ?? [];
      expect(literal.length + fromDecision.length, `every HttpError in ${file} has a code read here`).toBe(
        all.length,
      );
      for (const match of literal) found.push(match[1] as string);
    }
    expect(found.length).toBeGreaterThanOrEqual(15);
    expect(found.filter((code) => !WIRE_ERROR_CODES.has(code))).toEqual([]);
  });

  it('written straight onto the wire (parser answers, last-resort 500s, authorizer decisions) are in the set', async () => {
    const found: string[] = [];
    for (const { file, text } of await sources()) {
      // error body entries and decisions: `code: 'X'`
      for (const match of text.matchAll(/\bcode: '([A-Z_]+)'/g)) found.push(match[1] as string);
      // server.ts writes answers itself: every call names its code, or passes on a parser answer's
      const calls = (text.match(/\banswer(?:Response|Socket)\(/g) ?? []).length;
      const definitions = (text.match(/function answer(?:Response|Socket)\(/g) ?? []).length;
      const literal = [...text.matchAll(/\banswer(?:Response|Socket)\(\s*\w+,\s*\d{3},\s*'([A-Z_]+)'/g)];
      const passed = (
        text.match(/\banswer(?:Response|Socket)\(\s*\w+,\s*answer\.status,\s*answer\.code,/g) ?? []
      ).length;
      expect(literal.length + passed, `every answer written in ${file} has a code read here`).toBe(
        calls - definitions,
      );
      for (const match of literal) found.push(match[1] as string);
    }
    expect(found.length).toBeGreaterThanOrEqual(10);
    expect(found.filter((code) => !WIRE_ERROR_CODES.has(code))).toEqual([]);
  });

  it('are each listed in the README', async () => {
    const readme = await readFile(join(import.meta.dirname, '../README.md'), 'utf8');
    for (const code of WIRE_ERROR_CODES) expect(readme, code).toContain(`\`${code}\``);
  });
});
