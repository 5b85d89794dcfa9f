import { isStowageError, RegistryError } from '@stowage/oci';
import { describe, expect, it } from 'vitest';
import {
  isResponseError,
  RegistryNetworkError,
  RegistryResponseError,
  RegistryServerError,
  registryErrorCode,
  responseError,
} from './errors.js';
import { redactUrl } from './internal/redact.js';

describe('redactUrl', () => {
  it('removes userinfo', () => {
    expect(redactUrl('https://alice:hunter2@registry.example/v2/a/manifests/latest')).toBe(
      'https://registry.example/v2/a/manifests/latest',
    );
  });

  it('replaces secret query parameters and keeps the rest', () => {
    const redacted = redactUrl(
      'https://bucket.s3.example/blob?X-Amz-Credential=AKIA123&X-Amz-Signature=deadbeef&X-Amz-Expires=300&token=abc&access_token=xyz&n=10',
    );
    expect(redacted).not.toMatch(/AKIA123|deadbeef|=abc|xyz/);
    expect(redacted).toContain('X-Amz-Expires=300');
    expect(redacted).toContain('n=10');
    expect(redacted).toContain('X-Amz-Signature=REDACTED');
  });

  it('leaves clean URLs alone and copes with non-URLs', () => {
    expect(redactUrl('http://127.0.0.1:5000/v2/_catalog?n=5&last=a')).toBe(
      'http://127.0.0.1:5000/v2/_catalog?n=5&last=a',
    );
    expect(redactUrl('/v2/a/blobs/uploads/x?_state=abc')).toBe('/v2/a/blobs/uploads/x?…');
    expect(redactUrl('user:pw@host/path')).toBe('host/path');
  });
});

describe('registryErrorCode', () => {
  it.each([
    [401, 'manifest', 'UNAUTHORIZED'],
    [403, 'blob', 'DENIED'],
    [404, 'manifest', 'MANIFEST_UNKNOWN'],
    [404, 'blob', 'BLOB_UNKNOWN'],
    [404, 'tags', 'NAME_UNKNOWN'],
    [404, 'upload', 'BLOB_UPLOAD_UNKNOWN'],
    [405, 'manifest', 'UNSUPPORTED'],
    [416, 'blob', 'RANGE_INVALID'],
    [429, 'blob', 'TOOMANYREQUESTS'],
    [400, 'manifest', 'MANIFEST_INVALID'],
    [413, 'upload', 'SIZE_INVALID'],
  ] as const)('%i on %s → %s', (status, endpoint, code) => {
    expect(registryErrorCode(status, endpoint)).toBe(code);
  });

  it('prefers the code in the body', () => {
    expect(registryErrorCode(404, 'manifest', [{ code: 'NAME_UNKNOWN' }])).toBe('NAME_UNKNOWN');
    expect(registryErrorCode(400, 'manifest', [{ code: 'FOO' }, { code: 'MANIFEST_BLOB_UNKNOWN' }])).toBe(
      'MANIFEST_BLOB_UNKNOWN',
    );
    expect(registryErrorCode(400, 'manifest', [{ code: 'SOMETHING_ELSE' }])).toBe('MANIFEST_INVALID');
  });

  it('smooths over distribution quirks', () => {
    expect(registryErrorCode(404, 'upload', [{ code: 'BLOB_UPLOAD_INVALID' }])).toBe('BLOB_UPLOAD_UNKNOWN');
    expect(registryErrorCode(416, 'upload', [{ code: 'BLOB_UPLOAD_INVALID' }])).toBe('RANGE_INVALID');
  });
});

describe('response errors', () => {
  it('RegistryResponseError is a RegistryError with status, method, redacted url and diagnostics', () => {
    const error = new RegistryResponseError({
      status: 404,
      method: 'GET',
      url: 'https://u:p@r.example/v2/a/manifests/x?token=secret',
      endpoint: 'manifest',
      diagnostics: [{ code: 'MANIFEST_UNKNOWN', message: 'manifest unknown', detail: { Tag: 'x' } }],
    });
    expect(error).toBeInstanceOf(RegistryError);
    expect(isStowageError(error, 'MANIFEST_UNKNOWN')).toBe(true);
    expect(error.status).toBe(404);
    expect(error.method).toBe('GET');
    expect(error.url).toBe('https://r.example/v2/a/manifests/x?token=REDACTED');
    expect(error.diagnostics[0]?.detail).toEqual({ Tag: 'x' });
    expect(error.retryable).toBe(false);
    expect(error.message).toContain('MANIFEST_UNKNOWN');
    expect(error.message).not.toContain('secret');
  });

  it('marks 429 retryable and 5xx as server errors', () => {
    expect(responseError({ status: 429, method: 'GET', url: 'https://r/' }).retryable).toBe(true);
    const server = responseError({ status: 503, method: 'PUT', url: 'https://r/' });
    expect(server).toBeInstanceOf(RegistryServerError);
    expect(server.code).toBe('UNAVAILABLE');
    expect(server.retryable).toBe(true);
    expect(responseError({ status: 500, method: 'GET', url: 'https://r/' }).code).toBe('UNKNOWN');
    expect(isResponseError(server)).toBe(true);
  });

  it('network errors are retryable, carry the cause, and name timeouts', () => {
    const cause = Object.assign(new Error('other side closed'), { code: 'UND_ERR_SOCKET' });
    const error = new RegistryNetworkError({ method: 'GET', url: 'https://a:b@r.example/v2/', cause });
    expect(error.code).toBe('NETWORK_ERROR');
    expect(error.retryable).toBe(true);
    expect(error.cause).toBe(cause);
    expect(error.message).not.toContain('a:b');
    expect(new RegistryNetworkError({ method: 'GET', url: 'x', cause, timeout: true }).code).toBe('TIMEOUT');
  });
});
