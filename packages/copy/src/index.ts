export {
  type BlobEndpoint,
  type CopyBlobsOptions,
  type CopyBlobsResult,
  copyBlobs,
} from './copy-blobs.js';
export {
  type CopyDestination,
  type CopyResult,
  type CopySource,
  copyImage,
} from './copy-image.js';
export {
  COPY_BLOB_CHANNEL,
  COPY_MANIFEST_CHANNEL,
  type CopyBlobMessage,
  type CopyEndpoint,
  type CopyManifestMessage,
} from './diagnostics.js';
export { CopyError, type CopyErrorCode } from './errors.js';
export {
  type MutatedManifest,
  type MutateEdits,
  type MutateOptions,
  type MutateResult,
  mutateImage,
} from './mutate.js';
export type { CopyOptions, CopyProgressEvent, StagedCopyOptions } from './options.js';
