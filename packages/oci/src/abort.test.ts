import { describe, expect, it } from 'vitest';
import { raceSignal } from './abort.js';

describe('raceSignal', () => {
  it('resolves with the promise, or rejects with the reason once the signal aborts', async () => {
    expect(await raceSignal(Promise.resolve(1), undefined)).toBe(1);
    expect(await raceSignal(Promise.resolve(2), new AbortController().signal)).toBe(2);
    const controller = new AbortController();
    const pending = raceSignal(new Promise(() => undefined), controller.signal);
    controller.abort(new Error('stop'));
    await expect(pending).rejects.toThrow('stop');
    await expect(raceSignal(Promise.resolve(3), AbortSignal.abort(new Error('early')))).rejects.toThrow(
      'early',
    );
    await expect(raceSignal(Promise.reject(new Error('own')), new AbortController().signal)).rejects.toThrow(
      'own',
    );
  });
});
