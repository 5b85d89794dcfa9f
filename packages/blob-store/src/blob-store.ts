import type { BlobBody, BlobContent, BlobInfo, ByteRange, Digest, OperationOptions } from '@stowage/oci';

/** What a blob store knows of a blob without reading it. */
export interface StoredBlob extends BlobInfo {
  /**
   * When the blob was last written or touched (ms since the epoch): a file's
   * mtime, a memory store's write time. Garbage collection counts its grace
   * period from it.
   */
  readonly modifiedAt: number;
}

export interface ReadBlobOptions extends OperationOptions {
  /** Serve only these bytes; a range outside the blob is refused with `RANGE_INVALID`. */
  readonly range?: ByteRange;
}

export interface WriteBlobOptions extends OperationOptions {
  /** The digest the bytes must hash to; nothing becomes visible when they do not. */
  readonly digest: Digest;
  /** The exact length when known; a mismatch is refused with `SIZE_INVALID`. */
  readonly size?: number;
}

export interface WriteBlobResult extends BlobInfo {
  /** False when the blob was already stored: the body was still verified, but nothing was written. */
  readonly created: boolean;
}

/**
 * Content-addressed bytes: the raw storage under a `Registry`, with no
 * repositories, tags or manifests. A blob is named by its digest alone, is
 * written once after its bytes were verified, and never changes afterwards.
 *
 * Errors are `RegistryError`s and the content errors of `@stowage/oci`:
 * `BLOB_UNKNOWN`, `RANGE_INVALID`, `DigestMismatchError` (`DIGEST_INVALID`),
 * `SizeMismatchError` (`SIZE_INVALID`), `DigestParseError` for a malformed
 * digest, `DENIED` for a write to a read-only store. An aborted signal
 * rejects with the signal's reason.
 */
export interface BlobStore {
  /** Size and age of a blob; `undefined` when it is not stored. */
  stat(digest: Digest, options?: OperationOptions): Promise<StoredBlob | undefined>;

  /**
   * Streams a blob, whole or a range (`content.range` tells which bytes were
   * served). `BLOB_UNKNOWN` when it is not stored, `RANGE_INVALID` for a range
   * outside it. Consume or destroy the stream.
   */
  read(digest: Digest, options?: ReadBlobOptions): Promise<BlobContent>;

  /**
   * Stores a blob, hashing the body while it streams. The bytes become visible
   * under `digest` only once the whole body matched `digest` (and `size`);
   * otherwise the write fails with `DigestMismatchError` / `SizeMismatchError`
   * and leaves nothing behind. Writing a blob already stored is not an error:
   * the body is verified and dropped (`created: false`).
   */
  write(body: BlobBody, options: WriteBlobOptions): Promise<WriteBlobResult>;

  /** Removes a blob; false when it was not stored. */
  delete(digest: Digest, options?: OperationOptions): Promise<boolean>;

  /** Every stored blob, in no particular order, read lazily (memory does not grow with the count). */
  list(options?: OperationOptions): AsyncIterable<StoredBlob>;

  /**
   * Filesystem stores only: the file holding a blob's bytes (whether or not it
   * exists yet), so a caller may hard-link or `sendfile` from it. Never write to it.
   */
  path?(digest: Digest): string;
}
