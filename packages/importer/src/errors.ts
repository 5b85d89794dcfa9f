import { StowageError } from '@stowage/oci';

export type ImportErrorCode =
  | 'MANIFEST_NOT_JSON'
  | 'MANIFEST_UNKNOWN_MEDIA_TYPE'
  | 'LOCKFILE'
  | 'ABORTED'
  | 'INVALID_OPTIONS'
  | 'REPOSITORY_NOT_FOUND'
  /** The root is not a registry's storage root (no `docker/registry/v2` with `repositories/` or `blobs/`); nothing was written. */
  | 'NOT_A_DISTRIBUTION_TREE';

/** A failure that stops the import (skips are warnings, not errors). */
export class ImportError extends StowageError<ImportErrorCode> {}
