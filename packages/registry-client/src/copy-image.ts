// The copy engine lives in @stowage/copy (it needs no HTTP client); the client
// re-exports it so `import { copyImage } from '@stowage/registry-client'` keeps working.
export {
  type CopyDestination,
  CopyError,
  type CopyErrorCode,
  type CopyOptions,
  type CopyProgressEvent,
  type CopyResult,
  type CopySource,
  copyImage,
} from '@stowage/copy';
