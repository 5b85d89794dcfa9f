import { StowageError } from '@stowage/oci';

/** Options the image store cannot work with (no root, a negative duration). */
export class ImageStoreOptionsError extends StowageError<'OPTIONS_INVALID'> {
  constructor(message: string, details: Readonly<Record<string, unknown>> = {}) {
    super('OPTIONS_INVALID', message, { details });
  }
}

/** The failures of the image-record view; messages follow containers/storage's sentinels. */
export type ImageRecordErrorCode =
  | 'IMAGE_UNKNOWN'
  | 'DUPLICATE_ID'
  | 'DUPLICATE_NAME'
  | 'DUPLICATE_IMAGE_NAMES'
  | 'STORE_READ_ONLY'
  | 'INVALID_BIG_DATA_NAME'
  | 'BIG_DATA_UNKNOWN'
  | 'SIZE_UNKNOWN'
  | 'DIGEST_UNKNOWN'
  | 'INVALID_ID'
  | 'INVALID_NAME'
  | 'INVALID_DIGEST'
  | 'CORRUPT_RECORD';

export class ImageRecordError extends StowageError<ImageRecordErrorCode> {}
