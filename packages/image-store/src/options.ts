import { type Logger, type ResolvedLogger, resolveLogger } from '@stowage/oci';

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

export function resolveOptions(options: ImageStoreOptions): ResolvedImageStoreOptions {
  return {
    root: options.root,
    readOnly: options.readOnly ?? false,
    maxManifestSize: options.maxManifestSize,
    uploadTtlMs: options.uploadTtlMs ?? 24 * 60 * 60 * 1000,
    indexFlushDelayMs: options.indexFlushDelayMs ?? 200,
    staleLockMs: options.staleLockMs ?? 10_000,
    logger: resolveLogger(options.logger),
  };
}
