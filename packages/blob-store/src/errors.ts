import { StowageError } from '@stowage/oci';

/** Options a blob store, staging area or upload-session layer cannot work with (a missing root, an unknown layout). */
export class BlobStoreOptionsError extends StowageError<'OPTIONS_INVALID'> {
  constructor(message: string, details: Readonly<Record<string, unknown>> = {}) {
    super('OPTIONS_INVALID', message, { details });
  }
}
