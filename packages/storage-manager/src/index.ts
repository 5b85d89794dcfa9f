export { StorageManagerError, type StorageManagerErrorCode } from './errors.js';
export {
  LRU_IMAGES_CACHE_VERSION,
  MANIFEST_CACHE_VERSION,
  resolveWerfHome,
  type WerfHome,
} from './home.js';
export {
  type GetImageInfoOptions,
  getImageInfo,
  type ImageSource,
  splitImageRef,
} from './image-info.js';
export * from './locks/index.js';
export { type LruImageAccess, LruImagesCache, type LruImagesCacheOptions } from './lru-cache.js';
export {
  type CopyIntoFinalOptions,
  type CopyIntoStorageOptions,
  type CreateStageOptions,
  convertStageDesc,
  createStorageManager,
  type FetchStageResult,
  type ForEachCallback,
  imageLockName,
  type ListStageDescsOptions,
  type RetryOnUnexpectedStateOptions,
  type StageImageNames,
  type StagesByDigestOptions,
  type StorageManager,
} from './manager.js';
export { ManifestCache, type ManifestCacheOptions } from './manifest-cache.js';
export { newestStage, type StageSelector, type StorageManagerOptions } from './options.js';
export { forEachLimited, mapLimited } from './parallel.js';
export {
  MAX_CREATION_TS,
  MIN_CREATION_TS,
  type NewStageIDOptions,
  StageIdError,
  stageIdLockName,
  withNewStageID,
} from './stage-id.js';
