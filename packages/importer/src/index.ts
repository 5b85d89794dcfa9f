export { ImportError, type ImportErrorCode } from './errors.js';
export {
  type ImportMode,
  type ImportOptions,
  type ImportProgress,
  type ImportResult,
  type ImportWarning,
  importTree,
  Lockfiles,
  type SkipReason,
} from './importer.js';
export { DistributionTree, type LinkResult, openDistributionTree, parseLink } from './layout.js';
