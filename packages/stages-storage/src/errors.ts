import { StowageError, type StowageErrorOptions } from '@stowage/oci';

/**
 * What a stages storage refuses. Store errors (`DENIED`, `UNAVAILABLE`,
 * `TOOMANYREQUESTS`…) raised by the registry underneath reach the caller
 * unwrapped unless an operation says otherwise.
 */
export type StagesStorageErrorCode =
  /** A stage image references a blob or child manifest that is gone (werf's ErrBrokenImage). */
  | 'BROKEN_IMAGE'
  /** `checkCustomTag`: the tag does not exist. */
  | 'CUSTOM_TAG_NOT_FOUND'
  /** `checkCustomTag`: the tag points at another image than the stage. */
  | 'CUSTOM_TAG_MISMATCH'
  /** The registry refused to delete a tag or manifest (details name the registry and the record). */
  | 'DELETE_REFUSED'
  /** The storage cannot do this (a plain registry cannot create or delete a repository the way asked; the local storage keeps no records). */
  | 'UNSUPPORTED'
  /** A stage asked for is not in the storage. */
  | 'STAGE_NOT_FOUND'
  /** The options contradict each other or are malformed. */
  | 'OPTIONS_INVALID';

export class StagesStorageError extends StowageError<StagesStorageErrorCode> {
  constructor(code: StagesStorageErrorCode, message: string, options: StowageErrorOptions = {}) {
    super(code, message, options);
  }
}
