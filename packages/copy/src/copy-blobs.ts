import { performance } from 'node:perf_hooks';
import type { Descriptor, Digest, Logger, OperationOptions, Registry, ResolvedLogger } from '@stowage/oci';
import { publishBlob } from './diagnostics.js';
import { createLimiter } from './internal/limiter.js';
import { type CopyProgressEvent, resolveOptions } from './options.js';

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

/** What one blob transfer needs: decided once per copy, shared by every blob of it. */
export interface BlobTransfer {
  readonly source: BlobEndpoint;
  readonly destination: BlobEndpoint;
  readonly signal: AbortSignal;
  /** Try `mountBlob` before moving bytes. */
  readonly mount: boolean;
  /** Source and destination are one repository of one origin: every blob is there already. */
  readonly sameRepository: boolean;
  readonly counts: BlobCounts;
  readonly onProgress?: ((event: CopyProgressEvent) => void) | undefined;
  readonly logger: ResolvedLogger;
}

/**
 * Brings one blob to the destination: skipped when it is there, mounted when
 * the transfer says so and the destination can, else streamed from the
 * source's `getBlob` into the destination's `putBlob` (verified there). The
 * one blob path of the copy engine, shared by `copyImage` and `copyBlobs`.
 */
export async function transferBlob(transfer: BlobTransfer, descriptor: Descriptor): Promise<void> {
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
  if (transfer.sameRepository || (await registry.headBlob(repository, digest, { signal }))) {
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
  const content = await source.registry.getBlob(source.repository, digest, { signal });
  let bytes = 0;
  const counted = (async function* () {
    for await (const chunk of content.stream as AsyncIterable<Uint8Array>) {
      signal.throwIfAborted();
      bytes += chunk.byteLength;
      progress?.({ type: 'blob-progress', digest, bytes, size });
      yield chunk;
    }
  })();
  try {
    await registry.putBlob(repository, counted, { digest, size, signal });
  } finally {
    content.stream.destroy();
  }
  counts.blobsCopied++;
  counts.bytesCopied += bytes;
  progress?.({ type: 'blob-done', digest, size });
  done('copied', bytes);
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
