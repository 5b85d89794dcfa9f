import { StowageError, type StowageErrorOptions } from '@stowage/oci';

/**
 * What the copy engine itself refuses. Errors raised by the source or the
 * destination store (`MANIFEST_UNKNOWN`, `DENIED`, `DIGEST_INVALID`…) are not
 * wrapped: they reach the caller as the store threw them.
 */
export type CopyErrorCode =
  /** The destination cannot hold an index whose children are absent, and `rewriteIndex` was not given. */
  | 'SPARSE_INDEX_UNSUPPORTED'
  /** A platform filter left no child of an index to copy. */
  | 'NO_MATCHING_PLATFORM'
  /** `mutateImage` cannot change this manifest (schema 1, an artifact, a config that is not JSON). */
  | 'UNSUPPORTED_MANIFEST'
  /** The options contradict each other or are out of range. */
  | 'OPTIONS_INVALID';

export class CopyError extends StowageError<CopyErrorCode> {
  constructor(code: CopyErrorCode, message: string, options: StowageErrorOptions = {}) {
    super(code, message, options);
  }
}
