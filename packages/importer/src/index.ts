export {
  BLOB_CHANNEL,
  type BlobRecordedMessage,
  REPOSITORY_CHANNEL,
  type RepositoryImportedMessage,
} from './diagnostics.js';
export { ImportError, type ImportErrorCode, isImportError } from './errors.js';
export { type ImportResult, importTree } from './importer.js';
export { DistributionTree, type LinkResult, openDistributionTree, parseLink } from './layout.js';
export { Lockfiles } from './lockfiles.js';
export type {
  ImportMode,
  ImportOptions,
  ImportProgress,
} from './options.js';
export type { ImportWarning, SkipReason } from './warnings.js';
