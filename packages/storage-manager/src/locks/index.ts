export { LockError, type LockErrorCode } from './errors.js';
export {
  createHostLockManager,
  type HostLockHandle,
  type HostLockManagerOptions,
  hostLockPath,
  werfHome,
} from './host.js';
export {
  advisoryLockKey,
  createPostgresLockManager,
  type PostgresLockHandle,
  type PostgresLockManagerOptions,
} from './postgres.js';
export type { AcquireOptions, LockHandle, LockManager } from './types.js';
