export type { AcquireOptions, LockHandle, LockManager } from './locks/types.js';
