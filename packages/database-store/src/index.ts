export {
  type GarbageCollector,
  type GarbageCollectorOptions,
  startGarbageCollector,
} from './collector.js';
export { DatabaseStoreOptionsError } from './errors.js';
export { type BlobReviewReport, type ManifestReviewReport, setReviewDelay } from './gc.js';
export {
  type ImportRegistryOptions,
  type ImportRegistryProgress,
  type ImportRegistryResult,
  importRegistry,
} from './import.js';
export { createDatabaseRegistry, type DatabaseRegistry, type DatabaseRegistryOptions } from './registry.js';
