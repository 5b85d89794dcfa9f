import { type Clock, StowageError, systemClock } from '@stowage/oci';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { RegistryResponseError } from '../errors.js';
import { parseRetryAfter, type RetryPolicy, retryWith } from './retry.js';

const policy: RetryPolicy = {
  retries: 3,
  minDelayMs: 100,
  maxDelayMs: 1_000,
  maxRetryAfterMs: 30_000,
  clock: systemClock,
};

function unavailable(retryAfterMs?: number) {
  return new RegistryResponseError({
    status: 429,
    method: 'GET',
    url: 'https://r.example/v2/',
    ...(retryAfterMs !== undefined ? { retryAfterMs } : {}),
  });
}

/** A clock that never waits and records what it was asked to wait. */
function fakeClock(): Clock & { slept: number[] } {
  const slept: number[] = [];
  return { slept, now: () => 0, sleep: async (ms) => void slept.push(ms) };
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

describe('retryWith (oci retry with the client policy, fake timers)', () => {
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('retries retryable errors with exponential full-jitter delays', async () => {
    const operation = vi.fn(async (attempt: number) => {
      if (attempt < 4) throw unavailable();
      return 'done';
    });
    const delays: number[] = [];
    const result = retryWith(operation, {
      policy,
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

  it('waits exactly what Retry-After asks for, even past maxDelayMs', async () => {
    let calls = 0;
    const delays: number[] = [];
    const result = retryWith(
      async () => {
        calls++;
        if (calls === 1) throw unavailable(5_000);
        return calls;
      },
      { policy, random: () => 0, onRetry: ({ delayMs }) => delays.push(delayMs) },
    );
    await vi.advanceTimersByTimeAsync(4_999);
    expect(calls).toBe(1);
    await vi.advanceTimersByTimeAsync(1);
    await expect(result).resolves.toBe(2);
    expect(delays).toEqual([5_000]);
  });

  it('gives up at once when Retry-After is longer than allowed', async () => {
    const error = unavailable(120_000);
    const clock = fakeClock();
    await expect(
      retryWith(
        async () => {
          throw error;
        },
        { policy: { ...policy, clock } },
      ),
    ).rejects.toBe(error);
    expect(clock.slept).toEqual([]);
  });

  it('gives up after the retries, with the last error', async () => {
    let calls = 0;
    const result = retryWith(
      async () => {
        calls++;
        throw unavailable();
      },
      { policy, random: () => 0.99 },
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
    await expect(retryWith(nonIdempotent, { policy, idempotent: false })).rejects.toBeInstanceOf(
      RegistryResponseError,
    );
    expect(nonIdempotent).toHaveBeenCalledTimes(1);
    const refused = vi.fn(async () => {
      throw new StowageError('DENIED', 'no');
    });
    await expect(retryWith(refused, { policy })).rejects.toMatchObject({ code: 'DENIED' });
    expect(refused).toHaveBeenCalledTimes(1);
  });

  it('stops waiting when the signal aborts', async () => {
    const controller = new AbortController();
    const result = retryWith(
      async () => {
        throw unavailable(10_000);
      },
      { policy, signal: controller.signal },
    );
    const settled = expect(result).rejects.toThrow('stop');
    await vi.advanceTimersByTimeAsync(100);
    controller.abort(new Error('stop'));
    await settled;
  });
});

describe('retryWith on an injected clock', () => {
  it('sleeps on the policy clock: backoff and Retry-After, no real time passes', async () => {
    const clock = fakeClock();
    let calls = 0;
    const result = await retryWith(
      async () => {
        calls++;
        if (calls === 1) throw unavailable(2_500);
        if (calls === 2) throw unavailable();
        return calls;
      },
      { policy: { ...policy, clock }, random: () => 0.5 },
    );
    expect(result).toBe(3);
    expect(clock.slept).toEqual([2_500, 100]);
  });
});
