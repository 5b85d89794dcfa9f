import { StowageError } from '@stowage/oci';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { RegistryResponseError } from '../errors.js';
import { backoffDelay, parseRetryAfter, type RetryPolicy, sleep, withRetries } from './retry.js';

const policy: RetryPolicy = { retries: 3, minDelayMs: 100, maxDelayMs: 1_000, maxRetryAfterMs: 30_000 };

function unavailable(retryAfterMs?: number) {
  return new RegistryResponseError({
    status: 429,
    method: 'GET',
    url: 'https://r.example/v2/',
    ...(retryAfterMs !== undefined ? { retryAfterMs } : {}),
  });
}

describe('parseRetryAfter', () => {
  const now = Date.parse('2026-01-01T00:00:00Z');
  it('reads delay-seconds', () => {
    expect(parseRetryAfter('120', now)).toBe(120_000);
    expect(parseRetryAfter(' 0 ', now)).toBe(0);
    expect(parseRetryAfter(['7', '9'], now)).toBe(7_000);
    expect(parseRetryAfter('1.5', now)).toBe(1_500);
  });
  it('reads an HTTP-date relative to now, never negative', () => {
    expect(parseRetryAfter('Thu, 01 Jan 2026 00:00:30 GMT', now)).toBe(30_000);
    expect(parseRetryAfter('Wed, 31 Dec 2025 23:00:00 GMT', now)).toBe(0);
  });
  it('ignores what it cannot read', () => {
    expect(parseRetryAfter(undefined, now)).toBeUndefined();
    expect(parseRetryAfter('', now)).toBeUndefined();
    expect(parseRetryAfter('soon', now)).toBeUndefined();
    expect(parseRetryAfter('-5', now)).toBeUndefined();
  });
});

describe('backoffDelay', () => {
  it('draws from [0, min(max, min·2^attempt)) — full jitter', () => {
    expect(backoffDelay(0, policy, () => 0)).toBe(0);
    expect(backoffDelay(0, policy, () => 0.999)).toBe(99);
    expect(backoffDelay(2, policy, () => 0.5)).toBe(200);
    expect(backoffDelay(10, policy, () => 0.999)).toBe(999);
    expect(backoffDelay(1000, policy, () => 0.5)).toBe(500);
  });
});

describe('withRetries (fake timers)', () => {
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('retries retryable errors with exponential full-jitter delays', async () => {
    const operation = vi.fn(async (attempt: number) => {
      if (attempt < 3) throw unavailable();
      return 'done';
    });
    const delays: number[] = [];
    const result = withRetries(operation, {
      policy,
      idempotent: true,
      random: () => 0.5,
      onRetry: ({ delayMs }) => delays.push(delayMs),
    });
    await vi.advanceTimersByTimeAsync(49);
    expect(operation).toHaveBeenCalledTimes(1);
    await vi.advanceTimersByTimeAsync(1);
    expect(operation).toHaveBeenCalledTimes(2);
    await vi.advanceTimersByTimeAsync(100 + 200);
    await expect(result).resolves.toBe('done');
    expect(delays).toEqual([50, 100, 200]);
    expect(operation).toHaveBeenCalledTimes(4);
  });

  it('waits exactly what Retry-After asks for', async () => {
    let calls = 0;
    const result = withRetries(
      async () => {
        calls++;
        if (calls === 1) throw unavailable(5_000);
        return calls;
      },
      { policy, idempotent: true, random: () => 0 },
    );
    await vi.advanceTimersByTimeAsync(4_999);
    expect(calls).toBe(1);
    await vi.advanceTimersByTimeAsync(1);
    await expect(result).resolves.toBe(2);
  });

  it('gives up at once when Retry-After is longer than allowed', async () => {
    const error = unavailable(120_000);
    await expect(
      withRetries(
        async () => {
          throw error;
        },
        { policy, idempotent: true },
      ),
    ).rejects.toBe(error);
  });

  it('gives up after the retries, with the last error', async () => {
    let calls = 0;
    const result = withRetries(
      async () => {
        calls++;
        throw unavailable();
      },
      { policy, idempotent: true, random: () => 0.99 },
    );
    const settled = expect(result).rejects.toMatchObject({ code: 'TOOMANYREQUESTS' });
    await vi.runAllTimersAsync();
    await settled;
    expect(calls).toBe(4);
  });

  it('never repeats a non-idempotent request or a non-retryable error', async () => {
    const nonIdempotent = vi.fn(async () => {
      throw unavailable();
    });
    await expect(withRetries(nonIdempotent, { policy, idempotent: false })).rejects.toBeInstanceOf(
      RegistryResponseError,
    );
    expect(nonIdempotent).toHaveBeenCalledTimes(1);
    const refused = vi.fn(async () => {
      throw new StowageError('DENIED', 'no');
    });
    await expect(withRetries(refused, { policy, idempotent: true })).rejects.toMatchObject({
      code: 'DENIED',
    });
    expect(refused).toHaveBeenCalledTimes(1);
  });

  it('stops waiting when the signal aborts', async () => {
    const controller = new AbortController();
    const result = withRetries(
      async () => {
        throw unavailable(10_000);
      },
      { policy, idempotent: true, signal: controller.signal },
    );
    const settled = expect(result).rejects.toThrow('stop');
    await vi.advanceTimersByTimeAsync(100);
    controller.abort(new Error('stop'));
    await settled;
  });

  it('sleep resolves after the delay and rejects on abort', async () => {
    const done = vi.fn();
    void sleep(1_000).then(done);
    await vi.advanceTimersByTimeAsync(999);
    expect(done).not.toHaveBeenCalled();
    await vi.advanceTimersByTimeAsync(1);
    expect(done).toHaveBeenCalled();
    await expect(sleep(10, AbortSignal.abort(new Error('gone')))).rejects.toThrow('gone');
  });
});
