export { StagesStorageError, type StagesStorageErrorCode } from './errors.js';
export { TagListing } from './listing.js';
export {
  createRepoStagesStorage,
  type RepoStagesStorageOptions,
  repositoryOfAddress,
} from './repo-storage.js';
export type * from './types.js';
export { imageInfoFromWerf, werfImageInfo, werfStageDesc, werfStageId } from './werf-json.js';
