export type { AcquireOptions, LockHandle, LockManager } from './types.js';
