export { raceSignal } from './abort.js';
export { MAX_SMALL_BLOB, type ReadBlobBytesOptions, readBlobBytes } from './blob-bytes.js';
export {
  assertContent,
  createVerifyingStream,
  type Digest,
  type DigestAlgorithm,
  Digester,
  digestAlgorithm,
  digestAlgorithms,
  digestHex,
  digestOf,
  digestStream,
  isDigest,
  isDigestAlgorithm,
  markVerified,
  parseDigest,
  VerifyingStream,
  type VerifyOptions,
  verifiedChunks,
  verifiedDigestOf,
} from './digest.js';
export { parseGoDuration } from './duration.js';
export {
  DISTRIBUTION_ERROR_CODES,
  DigestMismatchError,
  DigestParseError,
  isStowageError,
  ManifestParseError,
  OCI_ERROR_CODES,
  PlatformParseError,
  REGISTRY_ERROR_STATUS,
  ReferenceParseError,
  RegistryError,
  type RegistryErrorCode,
  registryErrorCodeFromWire,
  SizeMismatchError,
  STOWAGE_ERROR_CODES,
  StowageError,
  type StowageErrorOptions,
  truncate,
  type WireErrorCode,
  wireErrorCode,
} from './errors.js';
export { globToRegExp } from './glob.js';
export { byBytes, GoStruct, goJson, goString, goStruct } from './go-json.js';
export { createLimiter, type Limiter } from './limiter.js';
export { type Logger, type LogLevel, type ResolvedLogger, resolveLogger } from './logger.js';
export {
  detectManifestMediaType,
  MAX_MANIFEST_SIZE,
  type ManifestReferences,
  manifestReferences,
  type ParsedManifest,
  type ParseManifestOptions,
  parseImageConfig,
  parseManifest,
} from './manifest.js';
export {
  isImageManifestMediaType,
  isIndexMediaType,
  isLayerMediaType,
  isManifestMediaType,
  isNonDistributableMediaType,
  isSchema1MediaType,
  type KnownMediaType,
  MediaType,
  manifestMediaTypes,
} from './media-types.js';
export { compareBytes, pageOf } from './paging.js';
export {
  defaultPlatform,
  formatPlatform,
  normalizePlatform,
  parsePlatform,
  platformMatches,
  selectManifest,
} from './platform.js';
export { type ResolvedRange, resolveRange } from './range.js';
export { redactDatabaseUrl } from './redact.js';
export {
  type FormatReferenceOptions,
  formatReference,
  type ImageReference,
  isValidRepositoryName,
  isValidTag,
  type ManifestReference,
  NAME_TOTAL_LENGTH_MAX,
  type ParseReferenceOptions,
  parseManifestReference,
  parseReference,
  parseRepositoryName,
  parseTag,
  referenceTarget,
} from './reference.js';
export { filterReferrers, type ReferrerSource, referrerDescriptor, subjectOf } from './referrers.js';
export type {
  AppendUploadOptions,
  BlobBody,
  BlobContent,
  BlobInfo,
  ByteRange,
  FinishUploadOptions,
  GarbageCollectOptions,
  GarbageCollectReport,
  GetBlobOptions,
  GetManifestOptions,
  ListOptions,
  ListPage,
  LockOptions,
  ManifestContent,
  MountBlobOptions,
  OperationOptions,
  PutBlobOptions,
  PutManifestOptions,
  PutManifestResult,
  Referrers,
  ReferrersOptions,
  Registry,
  RegistryCapabilities,
  RegistryLock,
  RegistryWithUploads,
  UploadSessions,
  UploadStatus,
} from './registry.js';
export { fullCapabilities, hasUploadSessions } from './registry.js';
export { markReopenable, type Reopener, reopenerOf } from './reopen.js';
export {
  type Clock,
  type RetryAttemptInfo,
  type RetryOptions,
  retry,
  retryDelay,
  systemClock,
} from './retry.js';
export type { Descriptor, ImageConfig, ImageIndex, ImageManifest, Manifest, Platform } from './types.js';
