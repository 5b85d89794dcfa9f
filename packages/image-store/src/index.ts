export { GC_CHANNEL, type ImageStoreGcMessage } from './diagnostics.js';
export { ImageStoreOptionsError } from './errors.js';
export type { FsckProblem, FsckReport } from './fsck.js';
export type { ImageStoreGcOptions, ImageStoreGcProgress, ImageStoreGcReport } from './gc.js';
export { createImageStore, type ImageStore } from './image-store.js';
export {
  createOciLayoutRegistry,
  type OciLayoutRegistry,
  type OciLayoutRegistryOptions,
} from './oci-layout.js';
export type { ImageStoreOptions } from './options.js';
export {
  bigDataFileName,
  type CreateImageOptions,
  formatImagesJson,
  type ImageRecord,
  ImageRecordError,
  type ImageRecordErrorCode,
  type ImageRecords,
  parseImageName,
  parseImagesJson,
  type SetBigDataOptions,
} from './records.js';
