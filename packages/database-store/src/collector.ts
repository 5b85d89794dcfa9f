// The online GC workers of one process: reviews of due manifests, then of due
// blobs, in batches, as long as work is due, then a pause. Any number of
// processes run them on one database; `SKIP LOCKED` keeps them off each
// other's rows.

import { DatabaseStoreOptionsError } from './errors.js';
import type { BlobReviewReport, ManifestReviewReport } from './gc.js';
import type { DatabaseRegistry } from './registry.js';

export interface GarbageCollectorOptions {
  /** The pause when nothing is due, and the first pause after a failure (doubling up to 5 minutes). Default 5 s. */
  readonly intervalMs?: number;
  /** Reviews per batch. Default 100. */
  readonly batch?: number;
  /** Delete manifests nothing keeps once their review is due. Default false, like the file store. */
  readonly deleteUntaggedManifests?: boolean;
  /** Told of each batch that reviewed something (metrics, logs). */
  readonly onBatch?: (report: { manifests: ManifestReviewReport; blobs: BlobReviewReport }) => void;
  /** Told of a failed batch; the collector goes on after a pause. */
  readonly onError?: (error: unknown) => void;
}

export interface GarbageCollector {
  /** Stops after the batch running now; resolves once it has. */
  stop(): Promise<void>;
}

const MAX_BACKOFF_MS = 5 * 60 * 1000;

export function startGarbageCollector(
  registry: DatabaseRegistry,
  options: GarbageCollectorOptions = {},
): GarbageCollector {
  const intervalMs = options.intervalMs ?? 5000;
  const batch = options.batch ?? 100;
  if (!(Number.isFinite(intervalMs) && intervalMs > 0)) {
    throw new DatabaseStoreOptionsError('intervalMs', `must be positive, not ${intervalMs}`);
  }
  if (!(Number.isInteger(batch) && batch > 0)) {
    throw new DatabaseStoreOptionsError('batch', `must be a positive integer, not ${batch}`);
  }
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  let wake: (() => void) | undefined;
  const pause = (ms: number) =>
    new Promise<void>((resolve) => {
      wake = resolve;
      timer = setTimeout(resolve, ms);
      timer.unref();
    });
  const loop = (async () => {
    let failures = 0;
    while (!stopped) {
      try {
        const manifests = await registry.reviewManifests({
          limit: batch,
          deleteUntagged: options.deleteUntaggedManifests ?? false,
        });
        const blobs = await registry.reviewBlobs({ limit: batch });
        failures = 0;
        if (manifests.reviewed + blobs.reviewed > 0) options.onBatch?.({ manifests, blobs });
        // a full batch: more is due at once
        if (manifests.reviewed >= batch || blobs.reviewed >= batch) continue;
        await pause(intervalMs);
      } catch (error) {
        if (stopped) break;
        failures++;
        options.onError?.(error);
        await pause(Math.min(intervalMs * 2 ** failures, MAX_BACKOFF_MS));
      }
    }
  })();
  return {
    async stop() {
      stopped = true;
      clearTimeout(timer);
      wake?.();
      await loop;
    },
  };
}
