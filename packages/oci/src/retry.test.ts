import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { RegistryError } from './errors.js';
import { type Clock, retry, retryDelay } from './retry.js';

const transient = (retryAfterMs?: number) =>
  new RegistryError('UNAVAILABLE', 'try later', {
    retryable: true,
    ...(retryAfterMs === undefined ? {} : { retryAfterMs }),
  });

describe('retry on fake timers', () => {
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('retries retryable failures with growing backoff, then succeeds', async () => {
    const waits: number[] = [];
    let calls = 0;
    const work = retry(
      async () => {
        calls++;
        if (calls < 3) throw transient();
        return 'done';
      },
      {
        attempts: 5,
        baseDelayMs: 100,
        maxDelayMs: 1000,
        random: () => 0.999,
        onRetry: (i) => waits.push(i.delayMs),
      },
    );
    await vi.runAllTimersAsync();
    await expect(work).resolves.toBe('done');
    expect(calls).toBe(3);
    expect(waits).toEqual([99, 199]);
  });

  it('waits what the error asks for, capped at maxDelayMs', async () => {
    const waits: number[] = [];
    let calls = 0;
    const work = retry(
      async () => {
        if (++calls === 1) throw transient(5000);
        if (calls === 2) throw transient(300);
        return calls;
      },
      { attempts: 3, baseDelayMs: 1, maxDelayMs: 2000, onRetry: (i) => waits.push(i.delayMs) },
    );
    await vi.advanceTimersByTimeAsync(1999);
    expect(calls).toBe(1);
    await vi.advanceTimersByTimeAsync(1);
    expect(calls).toBe(2);
    await vi.advanceTimersByTimeAsync(300);
    await expect(work).resolves.toBe(3);
    expect(waits).toEqual([2000, 300]);
  });

  it('with maxRetryAfterMs, waits a requested delay longer than any backoff, up to that ceiling', async () => {
    const waits: number[] = [];
    let calls = 0;
    const work = retry(
      async () => {
        if (++calls === 1) throw transient(5000);
        if (calls === 2) throw transient(60_000);
        if (calls === 3) throw transient();
        return calls;
      },
      {
        attempts: 4,
        baseDelayMs: 100,
        maxDelayMs: 1000,
        maxRetryAfterMs: 10_000,
        random: () => 0.5,
        onRetry: (i) => waits.push(i.delayMs),
      },
    );
    await vi.advanceTimersByTimeAsync(4999);
    expect(calls).toBe(1);
    await vi.advanceTimersByTimeAsync(1);
    expect(calls).toBe(2);
    await vi.advanceTimersByTimeAsync(9999);
    expect(calls).toBe(2);
    await vi.advanceTimersByTimeAsync(1);
    expect(calls).toBe(3);
    // a failure without a request still backs off under maxDelayMs: half of 100 * 2^2
    await vi.advanceTimersByTimeAsync(200);
    await expect(work).resolves.toBe(4);
    expect(waits).toEqual([5000, 10_000, 200]);
  });

  it('throws the last failure when attempts run out, and a non-retryable one at once', async () => {
    let calls = 0;
    const spent = retry(
      async () => {
        calls++;
        throw transient();
      },
      { attempts: 3, baseDelayMs: 10, maxDelayMs: 10 },
    );
    const seen = spent.catch((error: unknown) => error);
    await vi.runAllTimersAsync();
    expect(await seen).toMatchObject({ code: 'UNAVAILABLE' });
    expect(calls).toBe(3);
    let once = 0;
    await expect(
      retry(
        async () => {
          once++;
          throw new RegistryError('DENIED', 'no');
        },
        { attempts: 3, baseDelayMs: 10, maxDelayMs: 10 },
      ),
    ).rejects.toMatchObject({ code: 'DENIED' });
    expect(once).toBe(1);
  });

  it('stops waiting when the signal aborts', async () => {
    const controller = new AbortController();
    const work = retry(
      async () => {
        throw transient();
      },
      { attempts: 10, baseDelayMs: 60_000, maxDelayMs: 60_000, random: () => 0.5, signal: controller.signal },
    ).catch((error: unknown) => error);
    await vi.advanceTimersByTimeAsync(10);
    controller.abort(new Error('stop'));
    expect(await work).toMatchObject({ message: 'stop' });
  });
});

describe('retry with an injected clock', () => {
  it('never touches real time', async () => {
    const slept: number[] = [];
    const clock: Clock = { now: () => 0, sleep: async (ms) => void slept.push(ms) };
    let calls = 0;
    await retry(
      async () => {
        if (++calls < 4) throw transient();
      },
      { attempts: 4, baseDelayMs: 100, maxDelayMs: 250, clock, random: () => 0.5 },
    );
    expect(slept).toEqual([50, 100, 125]);
  });
  it('computes full-jitter delays below the ceiling', () => {
    expect(retryDelay(new Error('x'), 4, { baseDelayMs: 100, maxDelayMs: 10_000, random: () => 0.999 })).toBe(
      799,
    );
  });
});
