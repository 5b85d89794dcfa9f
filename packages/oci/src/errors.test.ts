import { describe, expect, it } from 'vitest';
import { DigestMismatchError, isStowageError, RegistryError, StowageError } from './errors.js';

describe('StowageError', () => {
  it('carries code, retryable, details and cause', () => {
    const cause = new Error('socket hang up');
    const error = new StowageError('SOMETHING', 'it failed', { retryable: true, details: { a: 1 }, cause });
    expect(error.code).toBe('SOMETHING');
    expect(error.retryable).toBe(true);
    expect(error.details).toEqual({ a: 1 });
    expect(error.cause).toBe(cause);
    expect(error).toBeInstanceOf(Error);
    expect(error.name).toBe('StowageError');
  });

  it('defaults to not retryable with empty details', () => {
    const error = new RegistryError('BLOB_UNKNOWN', 'blob unknown');
    expect(error.retryable).toBe(false);
    expect(error.details).toEqual({});
    expect(error.name).toBe('RegistryError');
    expect('cause' in error).toBe(false);
  });

  it('is recognised by brand, also across copies of the package', () => {
    const foreign = Object.assign(new Error('from another copy'), { code: 'BLOB_UNKNOWN' });
    Object.defineProperty(foreign, Symbol.for('@stowage/error'), { value: true });
    expect(isStowageError(foreign)).toBe(true);
    expect(isStowageError(foreign, 'BLOB_UNKNOWN')).toBe(true);
    expect(isStowageError(foreign, 'NAME_UNKNOWN')).toBe(false);
    expect(isStowageError(new Error('plain'))).toBe(false);
    expect(isStowageError(null)).toBe(false);
    expect(isStowageError('BLOB_UNKNOWN')).toBe(false);
  });

  it('subclasses keep their own fields', () => {
    const error = new DigestMismatchError('sha256:a', 'sha256:b');
    expect(isStowageError(error, 'DIGEST_INVALID')).toBe(true);
    expect(error.expected).toBe('sha256:a');
    expect(error.details).toEqual({ expected: 'sha256:a', actual: 'sha256:b' });
  });
});

describe('the error-code table', () => {
  it('maps store codes to wire codes and back', async () => {
    const { registryErrorCodeFromWire, wireErrorCode, REGISTRY_ERROR_STATUS, RegistryError } = await import(
      './errors.js'
    );
    expect(wireErrorCode('RANGE_INVALID')).toEqual({ code: 'BLOB_UPLOAD_INVALID', status: 416 });
    expect(wireErrorCode('MANIFEST_UNKNOWN')).toEqual({ code: 'MANIFEST_UNKNOWN', status: 404 });
    expect(wireErrorCode('UNAVAILABLE')).toEqual({ code: 'UNAVAILABLE', status: 503 });
    expect(wireErrorCode('SOMETHING_ELSE')).toBeUndefined();
    expect(wireErrorCode('toString')).toBeUndefined();
    expect(registryErrorCodeFromWire('BLOB_UPLOAD_INVALID', 416)).toBe('RANGE_INVALID');
    expect(registryErrorCodeFromWire('BLOB_UPLOAD_INVALID', 400)).toBe('BLOB_UPLOAD_INVALID');
    expect(registryErrorCodeFromWire('PLATFORM_INVALID')).toBeUndefined();
    for (const [code, wire] of Object.entries(REGISTRY_ERROR_STATUS)) {
      expect(wire.status, code).toBeGreaterThanOrEqual(400);
    }
    expect(new RegistryError('UNAVAILABLE', 'x', { retryAfterMs: 1500 }).retryAfterMs).toBe(1500);
    expect('retryAfterMs' in new RegistryError('UNAVAILABLE', 'x')).toBe(false);
  });
});
