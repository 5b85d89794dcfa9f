// The error edge on its own: codes through oci's table, fixed 500 messages, Retry-After from the error's delay.
import { RegistryError, StowageError } from '@stowage/oci';
import { describe, expect, it } from 'vitest';
import { HttpError, isHttpError, refusalError, retryAfterSeconds, toWireError } from './errors.js';

class OtherError extends StowageError<string> {}

describe('toWireError', () => {
  it('never repeats the message of a 500: an unknown code, UNKNOWN itself, a plain Error', () => {
    for (const error of [
      new OtherError('LOCK_TIMEOUT', 'lock /srv/data/.lock held by pid 42'),
      new RegistryError('UNKNOWN', 'EIO reading /srv/data/blobs/sha256/ab'),
      new HttpError('MADE_UP', 'a slip naming /etc/passwd', { status: 400 }),
      new HttpError('UNKNOWN', 'a 500 of our own naming /srv', { status: 500 }),
      new Error('disk on fire at /dev/sda'),
    ]) {
      const wire = toWireError(error);
      expect(wire.status, String(error)).toBe(500);
      expect(wire.body, String(error)).toEqual({ errors: [{ code: 'UNKNOWN', message: 'internal error' }] });
    }
  });

  it("maps store codes through oci's table and keeps the handler's own statuses", () => {
    expect(toWireError(new RegistryError('RANGE_INVALID', 'x'))).toMatchObject({
      status: 416,
      body: { errors: [{ code: 'BLOB_UPLOAD_INVALID', message: 'x' }] },
    });
    expect(toWireError(new RegistryError('UNAVAILABLE', 'closed'))).toMatchObject({
      status: 503,
      body: { errors: [{ code: 'UNAVAILABLE', message: 'closed' }] },
    });
    const own = new HttpError('SIZE_INVALID', 'too big', { status: 413, detail: { limit: 1 } });
    expect(toWireError(own)).toMatchObject({
      status: 413,
      body: { errors: [{ code: 'SIZE_INVALID', message: 'too big', detail: { limit: 1 } }] },
    });
    // recognised by brand, not by class: a structurally identical copy from another install counts
    expect(isHttpError(own)).toBe(true);
    expect(isHttpError(new RegistryError('SIZE_INVALID', 'x'))).toBe(false);
    expect(isHttpError({ code: 'SIZE_INVALID', status: 413 })).toBe(false);
    // the default status is the table's
    expect(new HttpError('NAME_UNKNOWN', 'x').status).toBe(404);
  });

  it("sends Retry-After from the error's own delay for 429 and 503, rounded up, at least 1 s", () => {
    const retryAfter = (error: unknown) => toWireError(error).headers?.['retry-after'];
    expect(retryAfter(new RegistryError('TOOMANYREQUESTS', 'x'))).toBe('1');
    expect(retryAfter(new RegistryError('TOOMANYREQUESTS', 'x', { retryAfterMs: 2500 }))).toBe('3');
    expect(retryAfter(new RegistryError('TOOMANYREQUESTS', 'x', { retryAfterMs: 0 }))).toBe('1');
    expect(retryAfter(new RegistryError('TOOMANYREQUESTS', 'x', { retryAfterMs: 400 }))).toBe('1');
    expect(retryAfter(new RegistryError('UNAVAILABLE', 'x'))).toBe('1');
    expect(retryAfter(new RegistryError('UNAVAILABLE', 'x', { retryAfterMs: 10_000 }))).toBe('10');
    expect(retryAfter(new HttpError('UNAVAILABLE', 'draining', { status: 503, retryAfterMs: 30_001 }))).toBe(
      '31',
    );
    // only 429 and 503 carry it
    expect(retryAfter(new RegistryError('BLOB_UNKNOWN', 'x', { retryAfterMs: 5000 }))).toBeUndefined();
    expect(retryAfterSeconds(undefined)).toBe(1);
    expect(retryAfterSeconds(Number.NaN)).toBe(1);
    expect(retryAfterSeconds(1000)).toBe(1);
    expect(retryAfterSeconds(1001)).toBe(2);
  });

  it("sends an authorizer's 429 with its delay, or with the Retry-After it names itself", () => {
    const busy = { ok: false, status: 429, code: 'TOOMANYREQUESTS', message: 'busy' } as const;
    expect(toWireError(refusalError(busy)).headers?.['retry-after']).toBe('1');
    expect(toWireError(refusalError({ ...busy, retryAfterMs: 4200 })).headers?.['retry-after']).toBe('5');
    expect(
      toWireError(refusalError({ ...busy, retryAfterMs: 4200, headers: { 'retry-after': '9' } })).headers?.[
        'retry-after'
      ],
    ).toBe('9');
    const challenge = {
      ok: false,
      status: 401,
      code: 'UNAUTHORIZED',
      message: 'log in',
      challenge: 'Basic',
    } as const;
    expect(toWireError(refusalError(challenge)).headers).toEqual({ 'www-authenticate': 'Basic' });
  });
});
