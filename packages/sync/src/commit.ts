/**
 * One image from an upstream into a local store, in the seed's order: skip it
 * when the local tag already holds the upstream digest; else stage its blobs
 * (those the store lacks; non-distributable layers are never fetched) in upload
 * sessions of the store, verified as they stream; commit them only once all
 * are in; then the manifests, children before their index, the tag last.
 * Nothing of an image that fails is committed, and a crash leaves only staging
 * the journal names.
 */
import { copyImage } from '@stowage/copy';
import {
  type Descriptor,
  type Digest,
  isStowageError,
  type Logger,
  manifestMediaTypes,
  type Platform,
  type Registry,
  RegistryError,
  resolveLogger,
} from '@stowage/oci';
import type { ImageOutcome } from './report.js';
import type { StagingJournal } from './staging.js';

/** Whether the local tag already holds this digest (zot's CanSkipImage): a missing repository or tag is not an error. */
export async function canSkipImage(
  local: Registry,
  repository: string,
  tag: string,
  digest: Digest,
  options: { signal?: AbortSignal } = {},
): Promise<boolean> {
  try {
    const held = await local.headManifest(repository, tag, {
      accept: manifestMediaTypes,
      ...(options.signal ? { signal: options.signal } : {}),
    });
    return held?.digest === digest;
  } catch (error) {
    if (isStowageError(error, 'NAME_UNKNOWN') || isStowageError(error, 'MANIFEST_UNKNOWN')) return false;
    throw error;
  }
}

export interface SyncImageOptions {
  readonly source: { readonly registry: Registry; readonly repository: string; readonly reference: string };
  readonly destination: { readonly registry: Registry; readonly repository: string; readonly tag?: string };
  /** The upstream URL, for the outcome. */
  readonly upstream: string;
  /** The upstream's descriptor from a HEAD already made (saves asking again). */
  readonly remote?: Descriptor;
  readonly platforms?: readonly Platform[];
  readonly referrers?: boolean;
  readonly journal?: StagingJournal;
  readonly concurrency?: number;
  readonly onBytes?: (bytes: number) => void;
  readonly signal?: AbortSignal;
  readonly logger?: Logger;
}

/** One line of an error, for a report. */
export function describeError(error: unknown): { code: string; message: string } {
  const code = isStowageError(error) ? error.code : 'UNKNOWN';
  const message = error instanceof Error ? error.message : String(error);
  return { code, message: message.split('\n')[0] ?? message };
}

/** Mirrors one image; never throws for the image's own failure (it is in the outcome), only for an abort. */
export async function syncImage(options: SyncImageOptions): Promise<ImageOutcome> {
  const { source, destination, signal } = options;
  const logger = resolveLogger(options.logger);
  const base = {
    upstream: options.upstream,
    remote: source.repository,
    repository: destination.repository,
    reference: destination.tag ?? source.reference,
    blobsCopied: 0,
    blobsSkipped: 0,
    bytesCopied: 0,
    manifests: 0,
  };
  let digest: Digest | undefined = options.remote?.digest;
  try {
    if (!digest) {
      const head = await source.registry.headManifest(source.repository, source.reference, {
        accept: manifestMediaTypes,
        ...(signal ? { signal } : {}),
      });
      if (!head) {
        throw new RegistryError(
          'MANIFEST_UNKNOWN',
          `${source.repository}:${source.reference} is not upstream`,
          {
            details: { repository: source.repository, reference: source.reference },
          },
        );
      }
      digest = head.digest;
    }
    if (
      destination.tag &&
      (await canSkipImage(destination.registry, destination.repository, destination.tag, digest, {
        ...(signal ? { signal } : {}),
      }))
    ) {
      return { ...base, status: 'skipped', digest };
    }
    const journal = options.journal;
    const seen = new Map<Digest, number>();
    const result = await copyImage(
      // By digest, so a tag moved upstream during the copy cannot mix two images.
      { registry: source.registry, repository: source.repository, reference: digest },
      {
        registry: destination.registry,
        repository: destination.repository,
        ...(destination.tag ? { tag: destination.tag } : {}),
      },
      {
        staged: journal
          ? {
              onSessionOpening: (r) => journal.opening(r),
              onSessionOpened: (r, id) => journal.opened(r, id),
              onSessionClosed: (r, id) => journal.closed(r, id),
            }
          : true,
        ...(options.platforms ? { platforms: options.platforms } : {}),
        // As zot: never fetched, by media type alone (our stores accept a manifest without them).
        nonDistributable: 'skip',
        referrers: options.referrers ?? false,
        ...(options.concurrency ? { concurrency: options.concurrency } : {}),
        ...(signal ? { signal } : {}),
        ...(options.logger ? { logger: options.logger } : {}),
        ...(options.onBytes
          ? {
              onProgress: (event) => {
                if (event.type !== 'blob-progress') return;
                // Blobs move at once: each one's running count is kept apart.
                options.onBytes?.(event.bytes - (seen.get(event.digest) ?? 0));
                seen.set(event.digest, event.bytes);
              },
            }
          : {}),
      },
    );
    logger.info(
      { upstream: options.upstream, repository: destination.repository, reference: base.reference, digest },
      'image synced',
    );
    return {
      ...base,
      status: 'synced',
      digest,
      blobsCopied: result.blobsCopied,
      blobsSkipped: result.blobsSkipped + result.blobsMounted,
      bytesCopied: result.bytesCopied,
      manifests: result.manifests,
    };
  } catch (error) {
    if (signal?.aborted) throw signal.reason;
    const described = describeError(error);
    logger.warn(
      {
        upstream: options.upstream,
        repository: destination.repository,
        reference: base.reference,
        err: error,
      },
      'image sync failed',
    );
    return { ...base, status: 'failed', ...(digest ? { digest } : {}), error: described };
  }
}
