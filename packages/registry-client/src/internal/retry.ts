import { isStowageError } from '@stowage/oci';

export interface RetryPolicy {
  /** Retries after the first attempt. */
  readonly retries: number;
  /** Base of the exponential backoff. */
  readonly minDelayMs: number;
  /** Ceiling of one backoff delay. */
  readonly maxDelayMs: number;
  /** A `Retry-After` longer than this is not waited for: the error is raised at once. */
  readonly maxRetryAfterMs: number;
}

/**
 * Parses a `Retry-After` header: delay-seconds or an HTTP-date. Returns
 * milliseconds from `now` (0 for a date in the past), or `undefined` when the
 * header is absent or unreadable.
 */
export function parseRetryAfter(
  value: string | readonly string[] | undefined,
  now: number = Date.now(),
): number | undefined {
  const text = (typeof value === 'string' ? value : value?.[0])?.trim();
  if (!text) return undefined;
  if (/^\d+$/.test(text)) return Number(text) * 1000;
  if (/^\d+\.\d+$/.test(text)) return Math.round(Number(text) * 1000);
  if (!/[a-z]/i.test(text)) return undefined; // an HTTP-date names its day and month
  const date = Date.parse(text);
  if (Number.isNaN(date)) return undefined;
  return Math.max(0, date - now);
}

/**
 * Exponential backoff with full jitter: a delay drawn uniformly from
 * `[0, min(maxDelayMs, minDelayMs · 2^attempt))`, attempt counting from 0.
 */
export function backoffDelay(
  attempt: number,
  policy: Pick<RetryPolicy, 'minDelayMs' | 'maxDelayMs'>,
  random: () => number = Math.random,
): number {
  const ceiling = Math.min(policy.maxDelayMs, policy.minDelayMs * 2 ** Math.min(attempt, 30));
  return Math.floor(random() * ceiling);
}

/** Resolves after `ms`, or rejects with the signal's reason when it aborts first. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  if (signal?.aborted) return Promise.reject(signal.reason);
  if (ms <= 0) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

export interface RetryContext {
  readonly policy: RetryPolicy;
  readonly signal?: AbortSignal;
  /** Whether this operation may be repeated at all (idempotent, body replayable). */
  readonly idempotent: boolean;
  readonly random?: () => number;
  /** Which failures are worth another attempt. Default: errors marked `retryable`. */
  readonly shouldRetry?: (error: unknown) => boolean;
  /** Called before each wait, for logging. */
  readonly onRetry?: (info: { attempt: number; delayMs: number; error: unknown }) => void;
}

/** The delay an error asks for, when it carries `retryAfterMs`. */
function retryAfterOf(error: unknown): number | undefined {
  const value = (error as { retryAfterMs?: unknown } | undefined)?.retryAfterMs;
  return typeof value === 'number' && Number.isFinite(value) ? value : undefined;
}

/** True for errors worth repeating: Stowage errors marked retryable. */
export function isRetryable(error: unknown): boolean {
  return isStowageError(error) && error.retryable;
}

/**
 * Runs `operation` until it succeeds, fails with an error that is not
 * retryable, or the retries run out. Waits `Retry-After` when the error carries
 * one (refusing to wait longer than `maxRetryAfterMs`), else a full-jitter
 * exponential backoff. An abort stops at once with the signal's reason.
 */
export async function withRetries<T>(
  operation: (attempt: number) => Promise<T>,
  context: RetryContext,
): Promise<T> {
  const { policy, signal } = context;
  for (let attempt = 0; ; attempt++) {
    signal?.throwIfAborted();
    try {
      return await operation(attempt);
    } catch (error) {
      if (signal?.aborted) throw signal.reason;
      if (!context.idempotent || attempt >= policy.retries || !(context.shouldRetry ?? isRetryable)(error))
        throw error;
      const requested = retryAfterOf(error);
      if (requested !== undefined && requested > policy.maxRetryAfterMs) throw error;
      const delayMs = requested ?? backoffDelay(attempt, policy, context.random);
      context.onRetry?.({ attempt, delayMs, error });
      await sleep(delayMs, signal);
    }
  }
}
