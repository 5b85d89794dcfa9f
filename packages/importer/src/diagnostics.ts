import { channel } from 'node:diagnostics_channel';
import type { Digest } from '@stowage/oci';
import type { ImportProgress } from './options.js';

/** `diagnostics_channel` name of one message per repository imported (after its transaction committed). */
export const REPOSITORY_CHANNEL = 'stowage:importer:repository';
/** `diagnostics_channel` name of one message per blob recorded by the common-blobs step (after its batch committed). */
export const BLOB_CHANNEL = 'stowage:importer:blob';

/** Published on `stowage:importer:repository`. */
export interface RepositoryImportedMessage {
  readonly repository: string;
  readonly step: ImportProgress['step'];
  readonly dryRun: boolean;
  /** Tags written (0 in a pre-import). */
  readonly tags: number;
  /** Manifests imported in this repository. */
  readonly manifests: number;
  /** Warnings the repository produced (each reported once). */
  readonly warnings: number;
  /** Attempts its transaction needed beyond the first. */
  readonly retries: number;
}

/** Published on `stowage:importer:blob`. */
export interface BlobRecordedMessage {
  readonly digest: Digest;
  readonly size: number;
  readonly dryRun: boolean;
}

const repositoryChannel = channel(REPOSITORY_CHANNEL);
const blobChannel = channel(BLOB_CHANNEL);

export function publishRepository(message: () => RepositoryImportedMessage): void {
  if (repositoryChannel.hasSubscribers) repositoryChannel.publish(message());
}

/** Whether anyone listens on the blob channel (so a caller need not build the messages at all). */
export function blobSubscribed(): boolean {
  return blobChannel.hasSubscribers;
}

export function publishBlob(message: BlobRecordedMessage): void {
  if (blobChannel.hasSubscribers) blobChannel.publish(message);
}
