import { StowageError, type StowageErrorOptions } from '@stowage/oci';

/**
 * What sync itself refuses. Errors of the upstream or the local store
 * (`MANIFEST_UNKNOWN`, `DENIED`, `DIGEST_INVALID`…) are not wrapped: they reach
 * the caller, and the pass report, as the store threw them.
 */
export type SyncErrorCode =
  /** The configuration is malformed; `details.key` names the key (`registries[0].content[1].tags.regex`). */
  | 'CONFIG_INVALID'
  /** Options given to a function are out of range or contradict each other. */
  | 'OPTIONS_INVALID'
  /** No URL of an upstream answered. */
  | 'UPSTREAM_UNREACHABLE'
  /** No content rule of any upstream covers the repository (on demand). */
  | 'NOT_MIRRORED';

export class SyncError extends StowageError<SyncErrorCode> {
  constructor(code: SyncErrorCode, message: string, options: StowageErrorOptions = {}) {
    super(code, message, options);
  }
}

/** A configuration error naming its key: `registries[0].urls[1]: not a URL`. */
export function configError(key: string, detail: string, origin?: string): SyncError {
  return new SyncError('CONFIG_INVALID', `${origin ? `${origin}: ` : ''}${key}: ${detail}`, {
    details: { key, detail, ...(origin ? { origin } : {}) },
  });
}
