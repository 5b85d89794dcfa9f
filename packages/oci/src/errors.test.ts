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
