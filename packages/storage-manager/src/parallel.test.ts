import { describe, expect, it } from 'vitest';
import { forEachLimited, mapLimited } from './parallel.js';

const tick = () => new Promise<void>((resolve) => setImmediate(resolve));

describe('forEachLimited', () => {
  it('never runs more than the limit at once and keeps the results in order', async () => {
    let active = 0;
    let peak = 0;
    const results = await mapLimited([5, 1, 4, 2, 3], 2, async (n) => {
      active++;
      peak = Math.max(peak, active);
      for (let i = 0; i < n; i++) await tick();
      active--;
      return n * 10;
    });
    expect(results).toEqual([50, 10, 40, 20, 30]);
    expect(peak).toBe(2);
  });

  it('starts nothing after the first failure, lets running tasks finish, throws that failure', async () => {
    const started: number[] = [];
    const finished: number[] = [];
    const error = await forEachLimited([0, 1, 2, 3, 4], 2, async (n) => {
      started.push(n);
      if (n === 0) throw new Error('first');
      await tick();
      finished.push(n);
    }).catch((e: unknown) => e);
    expect((error as Error).message).toBe('first');
    expect(started).toEqual([0, 1]);
    expect(finished).toEqual([1]);
  });

  it('stops when the signal aborts and handles no items', async () => {
    const controller = new AbortController();
    const seen: number[] = [];
    const error = await forEachLimited(
      [1, 2, 3],
      1,
      async (n) => {
        seen.push(n);
        controller.abort(new Error('aborted'));
      },
      controller.signal,
    ).catch((e: unknown) => e);
    expect((error as Error).message).toBe('aborted');
    expect(seen).toEqual([1]);
    await expect(forEachLimited([], 4, async () => {})).resolves.toBeUndefined();
  });
});
