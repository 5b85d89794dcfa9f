import { StowageError, type StowageErrorOptions } from '@stowage/oci';

/**
 * What the storage manager raises itself. Errors of the stages storages and
 * registries underneath reach the caller unwrapped unless an operation says
 * otherwise.
 */
export type StorageManagerErrorCode =
  /**
   * A stage the manager relied on is gone or broken (it was rejected in the
   * primary storage). Retryable: run the build step again, through
   * `retryOnUnexpectedStorageState`, and it picks another stage or builds one.
   */
  | 'UNEXPECTED_STORAGE_STATE'
  /** A stage asked for is not in the storage. */
  | 'STAGE_NOT_FOUND'
  /** Should-be-built mode: the stage is not in the final repo and may not be copied there. */
  | 'NOT_IN_FINAL_REPO'
  /** The options are malformed or contradict each other (details name the key). */
  | 'OPTIONS_INVALID';

export class StorageManagerError extends StowageError<StorageManagerErrorCode> {
  constructor(code: StorageManagerErrorCode, message: string, options: StowageErrorOptions = {}) {
    super(code, message, {
      ...options,
      retryable: options.retryable ?? code === 'UNEXPECTED_STORAGE_STATE',
    });
  }
}
