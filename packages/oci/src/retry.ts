import { isStowageError } from './errors.js';

/** Time as the retry loop sees it; tests pass a fake one (or use fake timers with the default). */
export interface Clock {
  now(): number;
  /** Resolves after `ms`, rejects with the signal's reason when it aborts first. */
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
}

/** The real clock: `Date.now` and `setTimeout` (so vitest's fake timers drive it too). */
export const systemClock: Clock = {
  now: () => Date.now(),
  sleep: (ms, signal) =>
    new Promise<void>((resolve, reject) => {
      if (signal?.aborted) {
        reject(signal.reason);
        return;
      }
      const onAbort = () => {
        clearTimeout(timer);
        reject(signal?.reason);
      };
      const timer = setTimeout(() => {
        signal?.removeEventListener('abort', onAbort);
        resolve();
      }, ms);
      signal?.addEventListener('abort', onAbort, { once: true });
    }),
};

export interface RetryAttemptInfo {
  /** The attempt that failed, from 1. */
  readonly attempt: number;
  readonly error: unknown;
  /** How long the loop waits before the next attempt. */
  readonly delayMs: number;
}

export interface RetryOptions {
  /** Attempts in all, the first included; 1 means no retry. */
  readonly attempts: number;
  /** Backoff before the second attempt; doubles each time up to `maxDelayMs`. */
  readonly baseDelayMs: number;
  readonly maxDelayMs: number;
  /**
   * Ceiling of a wait an error asks for (its `retryAfterMs`, a server's
   * `Retry-After`), which may be longer than any backoff. Default `maxDelayMs`.
   */
  readonly maxRetryAfterMs?: number;
  /** Whether a failure may be retried. Default: a Stowage error with `retryable`. */
  readonly shouldRetry?: (error: unknown, attempt: number) => boolean;
  /** Called before each wait. */
  readonly onRetry?: (info: RetryAttemptInfo) => void;
  readonly clock?: Clock;
  /** Random source in [0, 1) for the jitter; default `Math.random`. */
  readonly random?: () => number;
  readonly signal?: AbortSignal;
}

/**
 * The wait before the attempt after `attempt`: the error's own `retryAfterMs`
 * when it has one (at most `maxRetryAfterMs`, default `maxDelayMs`), else
 * full-jitter exponential backoff.
 */
export function retryDelay(
  error: unknown,
  attempt: number,
  options: Pick<RetryOptions, 'baseDelayMs' | 'maxDelayMs' | 'maxRetryAfterMs' | 'random'>,
): number {
  if (isStowageError(error) && error.retryAfterMs !== undefined) {
    return Math.min(Math.max(0, error.retryAfterMs), options.maxRetryAfterMs ?? options.maxDelayMs);
  }
  const ceiling = Math.min(options.maxDelayMs, options.baseDelayMs * 2 ** (attempt - 1));
  return Math.floor((options.random ?? Math.random)() * ceiling);
}

const defaultShouldRetry = (error: unknown): boolean => isStowageError(error) && error.retryable;

/**
 * Runs `fn` until it succeeds, a failure is not retryable, or the attempts
 * are spent; the last failure is thrown as is. An aborted signal stops the
 * loop at once with the signal's reason.
 */
export async function retry<T>(fn: (attempt: number) => Promise<T>, options: RetryOptions): Promise<T> {
  const clock = options.clock ?? systemClock;
  const shouldRetry = options.shouldRetry ?? defaultShouldRetry;
  const attempts = Math.max(1, Math.floor(options.attempts));
  for (let attempt = 1; ; attempt++) {
    options.signal?.throwIfAborted();
    try {
      return await fn(attempt);
    } catch (error) {
      if (attempt >= attempts || options.signal?.aborted || !shouldRetry(error, attempt)) throw error;
      const delayMs = retryDelay(error, attempt, options);
      options.onRetry?.({ attempt, error, delayMs });
      await clock.sleep(delayMs, options.signal);
    }
  }
}
