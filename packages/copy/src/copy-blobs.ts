import { setMaxListeners } from 'node:events';
import { performance } from 'node:perf_hooks';
import {
  type BlobContent,
  createLimiter,
  type Descriptor,
  type Digest,
  Digester,
  DigestMismatchError,
  digestAlgorithm,
  type Logger,
  markReopenable,
  markVerified,
  type OperationOptions,
  type Registry,
  type ResolvedLogger,
  SizeMismatchError,
  type UploadSessions,
  verifiedDigestOf,
} from '@stowage/oci';
import { publishBlob } from './diagnostics.js';

import { type CopyProgressEvent, listenerBound, resolveOptions, type StagedCopyOptions } from './options.js';

/** One side of a blob copy: a repository of any `Registry`. */
export interface BlobEndpoint {
  readonly registry: Registry;
  readonly repository: string;
}

export interface CopyBlobsOptions extends OperationOptions {
  readonly source: BlobEndpoint;
  readonly destination: BlobEndpoint;
  /** The blobs to bring to the destination (a digest listed twice is handled once). */
  readonly blobs: readonly Descriptor[];
  /** Blob operations at once. Default 4. */
  readonly concurrency?: number;
  /** Mount instead of moving bytes. Default: same `origin` and the destination's `mount` capability. */
  readonly mount?: boolean;
  readonly onProgress?: (event: CopyProgressEvent) => void;
  readonly logger?: Logger;
}

export interface CopyBlobsResult {
  readonly blobsCopied: number;
  readonly blobsSkipped: number;
  readonly blobsMounted: number;
  readonly bytesCopied: number;
}

/** Counters a blob transfer adds to. */
export interface BlobCounts {
  blobsCopied: number;
  blobsSkipped: number;
  blobsMounted: number;
  bytesCopied: number;
}

/** The open upload sessions of a staged copy: verified blobs waiting to be committed. */
export interface BlobStaging {
  /** The destination, which has upload sessions. */
  readonly sessions: Registry & UploadSessions;
  readonly hooks: StagedCopyOptions;
  /** Blobs fully streamed into a session and verified, by digest. */
  readonly staged: Map<Digest, { readonly id: string; readonly size: number }>;
  /** Sessions opened and not yet finished or cancelled (a superset of `staged` while streaming). */
  readonly open: Map<string, Digest>;
}

/** What one blob transfer needs: decided once per copy, shared by every blob of it. */
export interface BlobTransfer {
  readonly source: BlobEndpoint;
  readonly destination: BlobEndpoint;
  readonly signal: AbortSignal;
  /** Try `mountBlob` before moving bytes. */
  readonly mount: boolean;
  /** Source and destination are one repository of one origin: every blob is there already. */
  readonly sameRepository: boolean;
  /** The destination repository is new: no blob is there, so none is asked about. */
  readonly knownAbsent?: boolean;
  readonly counts: BlobCounts;
  readonly onProgress?: ((event: CopyProgressEvent) => void) | undefined;
  readonly logger: ResolvedLogger;
  /** Present for a staged copy: blobs go into upload sessions, committed later by `commitStaged`. */
  readonly staging?: BlobStaging | undefined;
}

/**
 * Brings one blob to the destination: skipped when it is there, mounted when
 * the transfer says so and the destination can, else streamed from the
 * source's `getBlob` into the destination's `putBlob` (verified there). The
 * one blob path of the copy engine, shared by `copyImage` and `copyBlobs`.
 */
export async function transferBlob(
  transfer: BlobTransfer,
  descriptor: Descriptor,
  options: { readonly ifSourceHas?: boolean } = {},
): Promise<void> {
  const { digest, size } = descriptor;
  const started = performance.now();
  const { signal, source, destination, counts } = transfer;
  const { registry, repository } = destination;
  const done = (outcome: 'copied' | 'mounted' | 'skipped', bytes: number) => {
    transfer.logger.debug({ digest, size, outcome, repository }, `blob ${outcome}`);
    publishBlob(() => ({
      source: { origin: source.registry.origin, repository: source.repository },
      destination: { origin: registry.origin, repository },
      digest,
      size,
      outcome,
      bytes,
      durationMs: performance.now() - started,
    }));
  };
  const progress = transfer.onProgress;
  if (
    transfer.sameRepository ||
    (!transfer.knownAbsent && (await registry.headBlob(repository, digest, { signal })))
  ) {
    counts.blobsSkipped++;
    progress?.({ type: 'blob-skipped', digest, size });
    done('skipped', 0);
    return;
  }
  // A layer the source may lack (non-distributable): moved only when it is there.
  if (options.ifSourceHas && !(await source.registry.headBlob(source.repository, digest, { signal }))) {
    counts.blobsSkipped++;
    progress?.({ type: 'blob-skipped', digest, size });
    done('skipped', 0);
    return;
  }
  if (transfer.mount) {
    signal.throwIfAborted();
    const mounted = await registry.mountBlob(repository, digest, { from: source.repository, signal });
    if (mounted) {
      counts.blobsMounted++;
      progress?.({ type: 'blob-mounted', digest, size });
      done('mounted', 0);
      return;
    }
  }
  signal.throwIfAborted();
  progress?.({ type: 'blob-start', digest, size });
  // The GET starts now and the body waits for it on its first read, so the source's answer
  // and the destination's upload session (its POST) are awaited at the same time.
  const opening = source.registry.getBlob(source.repository, digest, { signal });
  opening.catch(() => {}); // a failure is raised where the body is read
  let bytes = 0;
  // One hash per blob: the source's own check when it has one (the client's), else ours here.
  // Either way the body fails before its end on a mismatch, and is marked so the store
  // trusts that instead of hashing the same bytes again.
  const checked = (from: BlobContent) => {
    const digester =
      verifiedDigestOf(from.stream) === digest ? undefined : new Digester(digestAlgorithm(digest));
    return markVerified(
      (async function* () {
        bytes = 0;
        for await (const chunk of from.stream as AsyncIterable<Uint8Array>) {
          signal.throwIfAborted();
          bytes += chunk.byteLength;
          if (bytes > size) throw new SizeMismatchError(size, bytes);
          digester?.update(chunk);
          progress?.({ type: 'blob-progress', digest, bytes, size });
          yield chunk;
        }
        // Checked before the body ends: a store (or a staged session) never sees a bad blob end well.
        if (bytes !== size) throw new SizeMismatchError(size, bytes);
        const actual = digester?.digest();
        if (actual !== undefined && actual !== digest) throw new DigestMismatchError(digest, actual);
      })(),
      digest,
    );
  };
  // A destination that must restart an upload (one long request broke) reads the blob again
  // from the source instead of sending it in buffered chunks (markReopenable).
  const reopened: BlobContent[] = [];
  const first = markVerified(
    (async function* () {
      yield* checked(await opening);
    })(),
    digest,
  );
  const counted = markReopenable(first, async () => {
    const again = await source.registry.getBlob(source.repository, digest, { signal });
    reopened.push(again);
    return checked(again);
  });
  try {
    if (transfer.staging) {
      const session = await stageBlob(transfer.staging, { repository, descriptor, body: counted, signal });
      transfer.staging.staged.set(digest, { id: session, size });
    } else await registry.putBlob(repository, counted, { digest, size, signal, knownAbsent: true });
  } finally {
    // read or not (an upload that failed before its body), the source's answer is let go
    await opening.then(
      (content) => content.stream.destroy(),
      () => {},
    );
    for (const again of reopened) again.stream.destroy();
  }
  counts.blobsCopied++;
  counts.bytesCopied += bytes;
  progress?.({ type: 'blob-done', digest, size });
  done('copied', bytes);
}

/** Streams one blob into a new upload session of the destination, journalled before any byte is sent; returns the session. */
async function stageBlob(
  staging: BlobStaging,
  blob: { repository: string; descriptor: Descriptor; body: AsyncIterable<Uint8Array>; signal: AbortSignal },
): Promise<string> {
  const { repository, descriptor, body, signal } = blob;
  const registry = staging.sessions;
  await staging.hooks.onSessionOpening?.(repository);
  const { id } = await registry.startUpload(repository, { signal });
  staging.open.set(id, descriptor.digest);
  await staging.hooks.onSessionOpened?.(repository, id);
  await registry.appendUpload(repository, id, { body, offset: 0, length: descriptor.size, signal });
  return id;
}

/** Finishes (commits) every staged session; the blobs become part of the repository. */
export async function commitStaged(
  staging: BlobStaging,
  options: { repository: string; limit: <T>(task: () => Promise<T>) => Promise<T>; signal: AbortSignal },
): Promise<void> {
  const { repository, limit, signal } = options;
  await Promise.all(
    [...staging.staged].map(([digest, { id }]) =>
      limit(async () => {
        await staging.sessions.finishUpload(repository, id, { digest, signal });
        staging.open.delete(id);
        staging.staged.delete(digest);
        await staging.hooks.onSessionClosed?.(repository, id);
      }),
    ),
  );
}

/** Cancels every session still open (after a failure): nothing of the copy's blobs is committed. */
export async function abandonStaged(staging: BlobStaging, repository: string): Promise<void> {
  await Promise.allSettled(
    [...staging.open.keys()].map(async (id) => {
      try {
        await staging.sessions.cancelUpload(repository, id);
      } catch {
        // Gone already (finished, purged): nothing is left to free.
      }
      staging.open.delete(id);
      await staging.hooks.onSessionClosed?.(repository, id);
    }),
  );
  staging.staged.clear();
}

/**
 * Brings a set of blobs from one repository to another with the copy engine's
 * blob path (skip what the destination has, mount within one origin, else
 * stream; each digest once, bounded concurrency). For callers that write their
 * own manifests over blobs that exist elsewhere (an exported stage: new config,
 * same layers). The first failure stops the rest; it returns (or rejects) only
 * once nothing it started can still write.
 */
export async function copyBlobs(options: CopyBlobsOptions): Promise<CopyBlobsResult> {
  const resolved = resolveOptions({
    ...(options.concurrency === undefined ? {} : { concurrency: options.concurrency }),
    ...(options.signal ? { signal: options.signal } : {}),
    ...(options.mount === undefined ? {} : { mount: options.mount }),
    ...(options.logger ? { logger: options.logger } : {}),
  });
  resolved.signal?.throwIfAborted();
  const controller = new AbortController();
  const signal = resolved.signal ? AbortSignal.any([resolved.signal, controller.signal]) : controller.signal;
  // Every operation in flight listens on it (a few listeners each): not a leak past Node's default of 10.
  setMaxListeners(listenerBound(resolved.concurrency), signal);
  const { source, destination } = options;
  const counts: BlobCounts = { blobsCopied: 0, blobsSkipped: 0, blobsMounted: 0, bytesCopied: 0 };
  const unique = new Map<Digest, Descriptor>();
  for (const blob of options.blobs) if (!unique.has(blob.digest)) unique.set(blob.digest, blob);
  if (unique.size === 0) return counts;

  const sameOrigin = source.registry.origin === destination.registry.origin;
  const mount = resolved.mount ?? (sameOrigin && (await destination.registry.capabilities({ signal })).mount);
  const transfer: BlobTransfer = {
    source,
    destination,
    signal,
    mount,
    sameRepository: sameOrigin && source.repository === destination.repository,
    counts,
    onProgress: options.onProgress,
    logger: resolved.logger,
  };
  const limit = createLimiter(resolved.concurrency);
  const settled = await Promise.allSettled(
    [...unique.values()].map((blob) =>
      limit(async () => {
        signal.throwIfAborted();
        try {
          await transferBlob(transfer, blob);
        } catch (error) {
          // Before the slot is handed on, so the next queued blob sees the abort.
          if (!controller.signal.aborted) controller.abort(error);
          throw error;
        }
      }),
    ),
  );
  if (settled.some((outcome) => outcome.status === 'rejected')) {
    if (resolved.signal?.aborted) throw resolved.signal.reason;
    throw controller.signal.reason;
  }
  return { ...counts };
}
