import { afterEach, describe, expect, it, vi } from 'vitest';
import { statusLine } from './progress.js';

describe('statusLine', () => {
  afterEach(() => vi.useRealTimers());

  it('redraws in place at most ten times a second unless forced, and erases what it drew', () => {
    vi.useFakeTimers({ now: 1_000_000 });
    const out: string[] = [];
    const line = statusLine((text) => out.push(text));
    line.end(); // nothing drawn: nothing to erase
    line.draw('a');
    line.draw('b'); // within 100 ms: skipped
    line.draw('c', true);
    vi.advanceTimersByTime(100);
    line.draw('d');
    line.end();
    expect(out).toEqual(['\r\u001b[Ka', '\r\u001b[Kc', '\r\u001b[Kd', '\r\u001b[K']);
  });
});
