/**
 * One image from an upstream into a local store, in the seed's order: skip it
 * when the local tag already holds the upstream digest; else stage its blobs
 * (those the store lacks, non-distributable layers left out) in upload sessions
 * of the store, verified as they stream; commit them only once all are in; then
 * the manifests, children before their index, the tag last. Nothing of an image
 * that fails is committed, and a crash leaves only staging the journal names.
 */
import type { Descriptor, Digest, Logger, Platform, Registry } from '@stowage/oci';
import type { ImageOutcome } from './report.js';
import type { StagingJournal } from './staging.js';

/** Whether the local tag already holds this digest (zot's CanSkipImage): a missing repository or tag is not an error. */
export async function canSkipImage(
  _local: Registry,
  _repository: string,
  _tag: string,
  _digest: Digest,
): Promise<boolean> {
  throw new Error('not built yet');
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

/** Mirrors one image; never throws for the image's own failure (it is in the outcome), only for an abort. */
export async function syncImage(_options: SyncImageOptions): Promise<ImageOutcome> {
  throw new Error('not built yet');
}
