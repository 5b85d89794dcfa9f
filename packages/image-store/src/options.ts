import { type Logger, type ResolvedLogger, resolveLogger } from '@stowage/oci';
import { ImageStoreOptionsError } from './errors.js';

export interface ImageStoreOptions {
  /** The store's directory; created when missing. */
  readonly root: string;
  /** Refuse every write with `DENIED`. */
  readonly readOnly?: boolean;
  /** Largest manifest accepted. Default 4 MiB. */
  readonly maxManifestSize?: number;
  /** Upload sessions older than this are gone. Default 24 hours. */
  readonly uploadTtlMs?: number;
  /** How long a repository's `index.json` may lag behind its tags. Default 200 ms. */
  readonly indexFlushDelayMs?: number;
  /** A lock whose holder stopped touching it this long ago is taken over. Default 10 s. */
  readonly staleLockMs?: number;
  /** Where the store says what it did on its own (adopted layouts, recovered indexes, collections). Silent by default. */
  readonly logger?: Logger;
}

/** The options with every default filled in. */
export interface ResolvedImageStoreOptions {
  readonly root: string;
  readonly readOnly: boolean;
  readonly maxManifestSize: number | undefined;
  readonly uploadTtlMs: number;
  readonly indexFlushDelayMs: number;
  readonly staleLockMs: number;
  readonly logger: ResolvedLogger;
}

function duration(name: string, value: number | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !(value >= 0)) {
    throw new ImageStoreOptionsError(`${name} must be a number of milliseconds, at least 0`, {
      [name]: value,
    });
  }
  return value;
}

/** Fills in the defaults; `OPTIONS_INVALID` for a missing root or a value out of range. */
export function resolveOptions(options: ImageStoreOptions): ResolvedImageStoreOptions {
  if (typeof options?.root !== 'string' || options.root === '') {
    throw new ImageStoreOptionsError('an image store needs a root directory');
  }
  const max = options.maxManifestSize;
  if (max !== undefined && (typeof max !== 'number' || !(max > 0))) {
    throw new ImageStoreOptionsError('maxManifestSize must be a positive number of bytes', {
      maxManifestSize: max,
    });
  }
  return {
    root: options.root,
    readOnly: options.readOnly ?? false,
    maxManifestSize: options.maxManifestSize,
    uploadTtlMs: duration('uploadTtlMs', options.uploadTtlMs, 24 * 60 * 60 * 1000),
    indexFlushDelayMs: duration('indexFlushDelayMs', options.indexFlushDelayMs, 200),
    staleLockMs: duration('staleLockMs', options.staleLockMs, 10_000),
    logger: resolveLogger(options.logger),
  };
}
