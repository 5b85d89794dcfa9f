import { channel } from 'node:diagnostics_channel';
import type { Digest } from '@stowage/oci';

/** `diagnostics_channel` name of one message per blob the copy handled. */
export const COPY_BLOB_CHANNEL = 'stowage:copy:blob';
/** `diagnostics_channel` name of one message per manifest the copy pushed. */
export const COPY_MANIFEST_CHANNEL = 'stowage:copy:manifest';

/** Where a copy reads or writes: the store's `origin` and the repository. */
export interface CopyEndpoint {
  readonly origin: string;
  readonly repository: string;
}

/** Published on `stowage:copy:blob` once per blob digest. */
export interface CopyBlobMessage {
  readonly source: CopyEndpoint;
  readonly destination: CopyEndpoint;
  readonly digest: Digest;
  readonly size: number;
  /** `copied`: bytes moved; `mounted`: linked without moving bytes; `skipped`: the destination had it. */
  readonly outcome: 'copied' | 'mounted' | 'skipped';
  /** Bytes moved (0 unless copied). */
  readonly bytes: number;
  readonly durationMs: number;
}

/** Published on `stowage:copy:manifest` once per manifest pushed. */
export interface CopyManifestMessage {
  readonly source: CopyEndpoint;
  readonly destination: CopyEndpoint;
  /** What it was pushed under: a tag for the top manifest (when given), else its digest. */
  readonly reference: string;
  readonly digest: Digest;
  /** The source digest: it differs from `digest` only for a rewritten index. */
  readonly sourceDigest: Digest;
  readonly mediaType: string;
  /** Pushed as a sparse index (children left out, bytes kept). */
  readonly sparse: boolean;
  /** Pushed with new bytes (a filtered index, or one whose children were rewritten). */
  readonly rewritten: boolean;
}

const blobChannel = channel(COPY_BLOB_CHANNEL);
const manifestChannel = channel(COPY_MANIFEST_CHANNEL);

export function publishBlob(message: () => CopyBlobMessage): void {
  if (blobChannel.hasSubscribers) blobChannel.publish(message());
}

export function publishManifest(message: () => CopyManifestMessage): void {
  if (manifestChannel.hasSubscribers) manifestChannel.publish(message());
}
