import { channel } from 'node:diagnostics_channel';
import type { Digest } from '@stowage/oci';

/** `diagnostics_channel` name of one message per blob written (or found already stored) by a blob store. */
export const BLOB_WRITE_CHANNEL = 'stowage:blob-store:write';
/** `diagnostics_channel` name of one message per upload session that ended. */
export const UPLOAD_CHANNEL = 'stowage:blob-store:upload';

/** Published on `stowage:blob-store:write` after each successful `write`. */
export interface BlobWriteMessage {
  /** The file store's root, or `memory`. */
  readonly store: string;
  readonly digest: Digest;
  readonly size: number;
  /** False when the blob was stored already (the body was verified and dropped). */
  readonly created: boolean;
}

/** Published on `stowage:blob-store:upload` when a session ends. */
export interface UploadMessage {
  readonly repository: string;
  readonly id: string;
  /**
   * `committed`: finished and stored; `refused`: finished with a digest or size
   * that did not match, nothing stored; `cancelled`; `expired`: removed for its age.
   */
  readonly outcome: 'committed' | 'refused' | 'cancelled' | 'expired';
  /** Bytes of the blob (committed), or bytes staged when the session ended. */
  readonly size: number;
  /** The digest asked for when finishing. */
  readonly digest?: Digest;
}

const writeChannel = channel(BLOB_WRITE_CHANNEL);
const uploadChannel = channel(UPLOAD_CHANNEL);

export function publishWrite(message: () => BlobWriteMessage): void {
  if (writeChannel.hasSubscribers) writeChannel.publish(message());
}

export function publishUpload(message: () => UploadMessage): void {
  if (uploadChannel.hasSubscribers) uploadChannel.publish(message());
}
