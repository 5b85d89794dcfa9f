import { isStowageError, StowageError, type StowageErrorOptions } from '@stowage/oci';

export type ImportErrorCode =
  | 'MANIFEST_NOT_JSON'
  | 'MANIFEST_UNKNOWN_MEDIA_TYPE'
  | 'LOCKFILE'
  | 'ABORTED'
  /** An option `importTree` cannot use (a `tagConcurrency` that is not a positive integer); nothing was read. */
  | 'OPTIONS_INVALID'
  /** A repository asked for by name (`repositories`) that the tree does not hold; nothing was written. */
  | 'NAME_UNKNOWN'
  /** The root is not a registry's storage root (no `docker/registry/v2` with `repositories/` or `blobs/`); nothing was written. */
  | 'NOT_A_DISTRIBUTION_TREE';

/** Marks an `ImportError`, so `isImportError` works across duplicate installs. */
const IMPORT_ERROR: unique symbol = Symbol.for('@stowage/importer:import-error') as never;

/** A failure that stops the import (skips are warnings, not errors). */
export class ImportError extends StowageError<ImportErrorCode> {
  constructor(code: ImportErrorCode, message: string, options?: StowageErrorOptions) {
    super(code, message, options);
    Object.defineProperty(this, IMPORT_ERROR, { value: true });
  }
}

/** True for an `ImportError` (optionally with the given code), from any copy of this package. */
export function isImportError(value: unknown, code?: ImportErrorCode): value is ImportError {
  return isStowageError(value, code) && (value as unknown as Record<symbol, unknown>)[IMPORT_ERROR] === true;
}
