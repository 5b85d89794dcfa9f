import { type Clock, systemClock } from '@stowage/oci';
import { LockError } from './errors.js';
import type { AcquireOptions } from './types.js';

export interface PollSettings {
  /** First wait between two tries, doubled after each busy try. */
  readonly pollMs: number;
  /** Ceiling of the wait. */
  readonly maxPollMs: number;
  readonly clock: Clock;
}

export const DEFAULT_POLL_MS = 20;
export const DEFAULT_MAX_POLL_MS = 500;

/** Checks and fills the polling options every manager takes. */
export function resolvePollSettings(options: {
  readonly pollMs?: number;
  readonly maxPollMs?: number;
  readonly clock?: Clock;
}): PollSettings {
  const pollMs = options.pollMs ?? DEFAULT_POLL_MS;
  const maxPollMs = options.maxPollMs ?? Math.max(DEFAULT_MAX_POLL_MS, pollMs);
  if (!Number.isFinite(pollMs) || pollMs <= 0) {
    throw new LockError('OPTIONS_INVALID', `pollMs must be a positive number of milliseconds, not ${pollMs}`);
  }
  if (!Number.isFinite(maxPollMs) || maxPollMs < pollMs) {
    throw new LockError('OPTIONS_INVALID', `maxPollMs must be at least pollMs (${pollMs}), not ${maxPollMs}`);
  }
  return { pollMs, maxPollMs, clock: options.clock ?? systemClock };
}

export interface PollContext {
  readonly name: string;
  /** The manager's description, for messages. */
  readonly manager: string;
  readonly settings: PollSettings;
  readonly options: AcquireOptions;
  /** Aborted when the manager closes. */
  readonly closing: AbortSignal;
}

/**
 * Calls `tryOnce` until it answers true: right away, then after waits that
 * double from `pollMs` up to `maxPollMs`, the last one shortened to end at
 * the deadline so the final try happens when `timeoutMs` runs out. Throws
 * `LOCK_TIMEOUT` after that try, the caller's abort reason when its signal
 * aborts, `UNAVAILABLE` when the manager closes.
 */
export async function pollUntil(ctx: PollContext, tryOnce: () => Promise<boolean> | boolean): Promise<void> {
  const { clock, pollMs, maxPollMs } = ctx.settings;
  const { timeoutMs, signal } = ctx.options;
  if (timeoutMs !== undefined && (!Number.isFinite(timeoutMs) || timeoutMs < 0)) {
    throw new LockError('OPTIONS_INVALID', `timeoutMs must be a number of milliseconds, not ${timeoutMs}`);
  }
  const stop = signal ? AbortSignal.any([signal, ctx.closing]) : ctx.closing;
  const deadline = timeoutMs === undefined ? Number.POSITIVE_INFINITY : clock.now() + timeoutMs;
  let delay = pollMs;
  for (;;) {
    checkStop(ctx, signal);
    if (await tryOnce()) return;
    const remaining = deadline - clock.now();
    if (remaining <= 0) {
      throw new LockError(
        'LOCK_TIMEOUT',
        `lock ${JSON.stringify(ctx.name)} not free after ${timeoutMs} ms (${ctx.manager})`,
        {
          retryable: true,
          details: { name: ctx.name, manager: ctx.manager, timeoutMs },
        },
      );
    }
    try {
      await clock.sleep(Math.min(delay, remaining), stop);
    } catch (error) {
      checkStop(ctx, signal);
      throw error;
    }
    delay = Math.min(maxPollMs, delay * 2);
  }
}

function checkStop(ctx: PollContext, signal: AbortSignal | undefined): void {
  signal?.throwIfAborted();
  if (ctx.closing.aborted) throw closedError(ctx.manager, ctx.name);
}

export function closedError(manager: string, name?: string): LockError {
  return new LockError('UNAVAILABLE', `lock manager ${manager} is closed`, {
    details: { manager, ...(name === undefined ? {} : { name }) },
  });
}
