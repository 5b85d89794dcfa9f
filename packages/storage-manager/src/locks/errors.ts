import { StowageError, type StowageErrorOptions } from '@stowage/oci';

export type LockErrorCode =
  /** The lock was not free within `timeoutMs`. */
  | 'LOCK_TIMEOUT'
  /** This lock manager cannot work here (the native flock addon did not load). */
  | 'LOCK_UNAVAILABLE'
  /** Taking or holding the lock failed (the lock file cannot be opened, the database cannot be reached). */
  | 'LOCK_FAILED'
  /** The database connection that held the lock is gone, and the lock with it. */
  | 'LOCK_LOST'
  /** The manager is closed (or closing). */
  | 'UNAVAILABLE'
  | 'OPTIONS_INVALID';

/** What a lock manager refuses; `details.name` names the lock, `details.manager` the manager. */
export class LockError extends StowageError<LockErrorCode> {
  constructor(code: LockErrorCode, message: string, options: StowageErrorOptions = {}) {
    super(code, message, options);
  }
}
