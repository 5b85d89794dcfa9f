export type {
  BlobStore,
  ReadBlobOptions,
  StoredBlob,
  WriteBlobOptions,
  WriteBlobResult,
} from './blob-store.js';
export {
  BLOB_WRITE_CHANNEL,
  type BlobWriteMessage,
  UPLOAD_CHANNEL,
  type UploadMessage,
} from './diagnostics.js';
export {
  fsyncPath,
  ifExists,
  isMissing,
  makeDirDurable,
  syncDir,
  unlinkIfExists,
} from './durable-fs.js';
export { BlobStoreOptionsError } from './errors.js';
export {
  type AdoptBlobOptions,
  createFileBlobStore,
  type FileBlobLayout,
  type FileBlobStore,
  type FileBlobStoreOptions,
} from './file-blob-store.js';
export { createFileStaging, type FileStagingOptions } from './file-staging.js';
export { type WriteBodyOptions, writeBody } from './internal/body.js';
export { createMemoryBlobStore, type MemoryBlobStoreOptions } from './memory-blob-store.js';
export { createMemoryStaging } from './memory-staging.js';
export {
  fsyncFd,
  link,
  lstat,
  mkdir,
  readFile,
  rename,
  rm,
  stat,
  unlink,
  utimes,
  writeFile,
  writeFileDurable,
} from './quick-fs.js';
export {
  createUploadSessions,
  DEFAULT_UPLOAD_TTL_MS,
  type PurgeUploadsOptions,
  type PutBlob,
  type UploadSessionsImpl,
  type UploadSessionsOptions,
  type WithUploadSessionsOptions,
  withUploadSessions,
} from './upload-sessions.js';
export type {
  CreateStagedUploadOptions,
  StagedUpload,
  StagingAppendOptions,
  UploadStaging,
} from './upload-staging.js';
