import type { OperationOptions } from '@stowage/oci';

/** A lock held; release it once (or `await using` it). */
export interface LockHandle extends AsyncDisposable {
  readonly name: string;
  readonly shared: boolean;
  release(): Promise<void>;
}

export interface AcquireOptions extends OperationOptions {
  /** Shared (many holders, no exclusive one) instead of exclusive. Default false. */
  readonly shared?: boolean;
  /** Give up after this long with `LOCK_TIMEOUT`. Default: wait until `signal` aborts. */
  readonly timeoutMs?: number;
}

/**
 * Named locks shared by every process that uses the same manager kind:
 * host file locks in werf's layout (a werf process and a Stowage process on
 * one host exclude each other), or PostgreSQL advisory locks (builders on
 * several hosts).
 */
export interface LockManager {
  /** What it locks with, for messages: `host:<dir>` or `postgres:<redacted url>`. */
  readonly description: string;
  acquire(name: string, options?: AcquireOptions): Promise<LockHandle>;
  /** Releases every lock still held and frees connections. Idempotent. */
  close(): Promise<void>;
}
