export {
  createImageStore,
  type FsckProblem,
  type FsckReport,
  type ImageStore,
  type ImageStoreGcOptions,
  type ImageStoreGcReport,
  type ImageStoreOptions,
} from './image-store.js';
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
