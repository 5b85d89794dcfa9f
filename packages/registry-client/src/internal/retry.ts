import { type Clock, isStowageError, type RetryAttemptInfo, retry } from '@stowage/oci';

export interface RetryPolicy {
  /** Retries after the first attempt. */
  readonly retries: number;
  /** Base of the exponential backoff. */
  readonly minDelayMs: number;
  /** Ceiling of one backoff delay. */
  readonly maxDelayMs: number;
  /** A `Retry-After` longer than this is not waited for: the error is raised at once. */
  readonly maxRetryAfterMs: number;
  /** What the waits sleep on. */
  readonly clock: Clock;
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

/** True for errors worth repeating: Stowage errors marked retryable. */
export function isRetryable(error: unknown): boolean {
  return isStowageError(error) && error.retryable;
}

/** The delay an error asks for (a `Retry-After`), when it carries one. */
export function retryAfterOf(error: unknown): number | undefined {
  const value = isStowageError(error) ? error.retryAfterMs : undefined;
  return typeof value === 'number' && Number.isFinite(value) ? Math.max(0, value) : undefined;
}

export interface RetryContext {
  readonly policy: RetryPolicy;
  readonly signal?: AbortSignal | undefined;
  /** Whether this operation may be repeated at all (idempotent, body replayable). Default true. */
  readonly idempotent?: boolean;
  /** Which failures are worth another attempt. Default: errors marked `retryable`. */
  readonly shouldRetry?: (error: unknown) => boolean;
  /** Called before each wait, for logging; `attempt` is the one that failed, from 1. */
  readonly onRetry?: (info: RetryAttemptInfo) => void;
  /** Random source in [0, 1) for the jitter (tests). */
  readonly random?: () => number;
}

/**
 * `@stowage/oci`'s `retry` with the client's policy: `retries` after the first
 * attempt, full-jitter exponential backoff between `minDelayMs` and
 * `maxDelayMs`, and a `Retry-After` waited in full up to `maxRetryAfterMs`
 * (a longer one fails at once).
 */
export function retryWith<T>(operation: (attempt: number) => Promise<T>, context: RetryContext): Promise<T> {
  const { policy } = context;
  const shouldRetry = context.shouldRetry ?? isRetryable;
  return retry(operation, {
    attempts: context.idempotent === false ? 1 : policy.retries + 1,
    baseDelayMs: policy.minDelayMs,
    maxDelayMs: policy.maxDelayMs,
    maxRetryAfterMs: policy.maxRetryAfterMs,
    clock: policy.clock,
    shouldRetry: (error) => {
      const asked = retryAfterOf(error);
      return (asked === undefined || asked <= policy.maxRetryAfterMs) && shouldRetry(error);
    },
    ...(context.onRetry ? { onRetry: context.onRetry } : {}),
    ...(context.random ? { random: context.random } : {}),
    ...(context.signal ? { signal: context.signal } : {}),
  });
}
