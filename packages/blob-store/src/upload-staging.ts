import type { Readable } from 'node:stream';
import type { BlobBody, OperationOptions } from '@stowage/oci';

/** One partial upload as its staging area holds it. */
export interface StagedUpload {
  /** The session id (letters, digits, `-` and `_`; safe as a file name and a URL path segment). */
  readonly id: string;
  /** The repository the session was opened for; `''` for a session whose creation a crash cut short. */
  readonly repository: string;
  /** When the session was opened (ms since the epoch). */
  readonly startedAt: number;
  /** Bytes staged so far. */
  readonly size: number;
}

export interface CreateStagedUploadOptions extends OperationOptions {
  readonly repository: string;
  readonly startedAt: number;
}

export interface StagingAppendOptions extends OperationOptions {
  /** Where the chunk must start: the session's size. Anything else is refused with `RANGE_INVALID`, nothing changed. */
  readonly offset: number;
  /** The chunk's exact length, when known; a mismatch is refused with `SIZE_INVALID`, nothing changed. */
  readonly length?: number;
}

/**
 * Where partial uploads live between their chunks: bytes in order, plus the
 * repository and start time of each session. `createUploadSessions` turns any
 * staging area and a `putBlob` into the five upload-session members of a
 * `Registry`, so a store need not write its own.
 *
 * Unknown ids are refused with `BLOB_UPLOAD_UNKNOWN` (`stat` answers
 * `undefined`). Appends to one session must not overlap: the session layer
 * runs them one at a time in a process.
 */
export interface UploadStaging {
  /** Opens an empty session under a new id. */
  create(id: string, options: CreateStagedUploadOptions): Promise<StagedUpload>;

  /** A session's state; `undefined` when there is none with that id. */
  stat(id: string, options?: OperationOptions): Promise<StagedUpload | undefined>;

  /**
   * Appends a chunk at `offset` and answers the new size. An append that fails
   * midway (a body error, an abort, a length mismatch) leaves the session at
   * its old size.
   */
  append(id: string, body: BlobBody, options: StagingAppendOptions): Promise<number>;

  /** Streams the bytes staged so far. */
  read(id: string, options?: OperationOptions): Promise<Readable>;

  /** Drops a session and its bytes; false when there was none. */
  remove(id: string, options?: OperationOptions): Promise<boolean>;

  /** Every session, for purging old ones. */
  list(options?: OperationOptions): AsyncIterable<StagedUpload>;
}

/** Session ids a staging area accepts. */
const STAGING_ID = /^[A-Za-z0-9_-]{1,128}$/;

export function isStagingId(id: unknown): id is string {
  return typeof id === 'string' && STAGING_ID.test(id);
}
