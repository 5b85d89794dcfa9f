// A clock that only moves when told to (or when the import waits on it), so
// retry tests neither sleep nor depend on how fast the machine is.
import type { Clock } from '@stowage/oci';

export interface FakeClock extends Clock {
  /** Every wait asked for, in order. */
  readonly sleeps: number[];
  /** Moves time on, as a slow attempt would. */
  advance(ms: number): void;
}

export function fakeClock(start = 1_000_000): FakeClock {
  let now = start;
  const sleeps: number[] = [];
  return {
    sleeps,
    now: () => now,
    advance(ms) {
      now += ms;
    },
    async sleep(ms, signal) {
      signal?.throwIfAborted();
      sleeps.push(ms);
      now += ms;
    },
  };
}
