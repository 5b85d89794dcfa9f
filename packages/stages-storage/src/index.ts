export { RETIRED_TAG_LABEL } from './delete.js';
export { StagesStorageError, type StagesStorageErrorCode } from './errors.js';
export { describeImageAt } from './image-info.js';
export { TagListing } from './listing.js';
export {
  createLocalStagesStorage,
  LOCAL_IMPORT_METADATA_REPOSITORY_PREFIX,
  LOCAL_STORAGE_ADDRESS,
  type LocalStagesStorageOptions,
} from './local-storage.js';
export {
  buildRecordImage,
  goTimeString,
  LEGACY_RECORD_LAYER_DIFF_ID,
  RECORD_LAYER_BYTES,
  RECORD_LAYER_DIFF_ID,
  RECORD_LAYER_DIGEST,
  type RecordImage,
  type RecordImageOptions,
  uniqueRecordTime,
} from './record-image.js';
export {
  createRepoStagesStorage,
  type RepoStagesStorageOptions,
  repositoryOfAddress,
} from './repo-storage.js';
export { multiplatformStageID } from './stages.js';
export { localRepositoryOf } from './transfer.js';
export type * from './types.js';
export { imageInfoFromWerf, werfImageInfo, werfStageDesc, werfStageId } from './werf-json.js';
