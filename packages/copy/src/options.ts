import {
  type Digest,
  type Logger,
  normalizePlatform,
  type OperationOptions,
  type Platform,
  parsePlatform,
  type ResolvedLogger,
  resolveLogger,
} from '@stowage/oci';
import { CopyError } from './errors.js';

export type CopyProgressEvent =
  | { readonly type: 'blob-start'; readonly digest: Digest; readonly size: number }
  | { readonly type: 'blob-progress'; readonly digest: Digest; readonly bytes: number; readonly size: number }
  | { readonly type: 'blob-done'; readonly digest: Digest; readonly size: number }
  | { readonly type: 'blob-skipped'; readonly digest: Digest; readonly size: number }
  | { readonly type: 'blob-mounted'; readonly digest: Digest; readonly size: number }
  | { readonly type: 'manifest-done'; readonly digest: Digest; readonly mediaType: string };

/** Hooks of a staged copy, so a caller can journal the sessions holding its blobs (crash recovery). */
export interface StagedCopyOptions {
  /** A session is about to be opened in `repository` (a crash from here on may leave one the caller does not know). */
  readonly onSessionOpening?: (repository: string) => void | Promise<void>;
  /** A blob's upload session was opened; called before any byte is sent to it. */
  readonly onSessionOpened?: (repository: string, id: string) => void | Promise<void>;
  /** The session was finished (committed) or cancelled. */
  readonly onSessionClosed?: (repository: string, id: string) => void | Promise<void>;
}

export interface CopyOptions extends OperationOptions {
  /**
   * Copy only the children of an index that match one of these platforms
   * (child indexes are followed, and filtered the same way). The children left
   * out are simply not copied: the index keeps its bytes and digest, pushed as
   * a sparse index, when the destination's capabilities say `sparseIndex`.
   * Single images are copied whatever their platform.
   */
  readonly platforms?: readonly (string | Platform)[];
  /**
   * When a platform filter leaves children out and the destination cannot
   * hold a sparse index (docker-registry), push a filtered index instead: new
   * bytes, a new digest (reported as `indexRewritten`). Without it such a copy
   * fails with `SPARSE_INDEX_UNSUPPORTED` before anything is written.
   */
  readonly rewriteIndex?: boolean;
  /**
   * Layers of a non-distributable media type: `copy` (the default) moves one
   * the source holds (distribution 2.8 wants an OCI one without `urls` present)
   * and leaves out one it lacks; `skip` never fetches them (zot's sync).
   */
  readonly nonDistributable?: 'copy' | 'skip';
  /** Also copy the referrers (signatures, SBOMs…) of every manifest copied, recursively. Default false. */
  readonly referrers?: boolean;
  /**
   * All or nothing: every blob the destination lacks is first streamed into an
   * upload session of the destination (where no reader can see it) and verified
   * on the way; the sessions are finished (committed) only once every blob of
   * the copy is in, and only then are manifests pushed. A failure anywhere (a
   * corrupt blob, an abort) cancels the sessions and commits nothing. Needs a
   * destination with upload sessions. Default false: each blob is committed
   * as soon as it is verified (a failure leaves verified blobs, never a manifest).
   */
  readonly staged?: boolean | StagedCopyOptions;
  /** Store operations (blob transfers, manifest reads and pushes) at once. Default 4. */
  readonly concurrency?: number;
  /**
   * Link blobs with `mountBlob` instead of moving bytes. Default: when source
   * and destination have the same `origin` and the destination can mount. A
   * mount the destination cannot do falls back to a transfer.
   */
  readonly mount?: boolean;
  /** Called as work progresses: bytes per blob, blobs skipped or mounted, manifests pushed. */
  readonly onProgress?: (event: CopyProgressEvent) => void;
  /** Debug lines for each blob and manifest (pino-compatible). Silent by default. */
  readonly logger?: Logger;
}

export interface ResolvedCopyOptions {
  readonly signal?: AbortSignal;
  readonly platforms?: readonly Platform[];
  readonly rewriteIndex: boolean;
  readonly nonDistributable: 'copy' | 'skip';
  readonly referrers: boolean;
  /** Present when the copy is staged. */
  readonly staged?: StagedCopyOptions;
  readonly concurrency: number;
  readonly mount?: boolean;
  readonly onProgress?: (event: CopyProgressEvent) => void;
  readonly logger: ResolvedLogger;
}

/** Defaults and checks, done before anything is read or written. */
export function resolveOptions(options: CopyOptions = {}): ResolvedCopyOptions {
  const concurrency = options.concurrency ?? 4;
  if (!Number.isInteger(concurrency) || concurrency < 1) {
    throw new CopyError('OPTIONS_INVALID', `concurrency must be a positive integer, not ${concurrency}`, {
      details: { concurrency },
    });
  }
  if (options.nonDistributable !== undefined && !['copy', 'skip'].includes(options.nonDistributable)) {
    throw new CopyError(
      'OPTIONS_INVALID',
      `nonDistributable must be 'copy' or 'skip', not ${String(options.nonDistributable)}`,
    );
  }
  if (options.platforms !== undefined && options.platforms.length === 0) {
    throw new CopyError('OPTIONS_INVALID', 'platforms must name at least one platform (or be left out)');
  }
  // Parsed now, so a mistyped platform fails before the copy starts.
  const platforms = options.platforms?.map((p) =>
    typeof p === 'string' ? parsePlatform(p) : normalizePlatform(p),
  );
  return {
    ...(options.signal ? { signal: options.signal } : {}),
    ...(platforms ? { platforms } : {}),
    rewriteIndex: options.rewriteIndex ?? false,
    nonDistributable: options.nonDistributable ?? 'copy',
    referrers: options.referrers ?? false,
    ...(options.staged ? { staged: options.staged === true ? {} : options.staged } : {}),
    concurrency,
    ...(options.mount === undefined ? {} : { mount: options.mount }),
    ...(options.onProgress ? { onProgress: options.onProgress } : {}),
    logger: resolveLogger(options.logger),
  };
}

/** How many abort listeners a copy's signal may carry: a few per operation in flight, and room for the caller's. */
export function listenerBound(concurrency: number): number {
  return Math.max(10, concurrency * 4 + 10);
}
