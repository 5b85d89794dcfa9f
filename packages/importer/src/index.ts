export {
  ImportError,
  type ImportErrorCode,
  type ImportMode,
  type ImportOptions,
  type ImportProgress,
  type ImportResult,
  type ImportWarning,
  importTree,
  Lockfiles,
  type SkipReason,
} from './importer.js';
export { DistributionTree, type LinkResult, parseLink } from './layout.js';
