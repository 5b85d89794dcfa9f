import { Readable } from 'node:stream';
import { type BlobBody, SizeMismatchError } from '@stowage/oci';

/** A body as an async iterable of chunks (a byte array is one chunk). */
export function bodyChunks(body: BlobBody): AsyncIterable<Uint8Array> {
  return body instanceof Uint8Array ? Readable.from([body], { objectMode: false }) : body;
}

/** Bytes gathered into one file write: network chunks are 16–64 KiB, disks prefer larger writes. */
export const WRITE_BATCH = 1 << 20;

/** Concatenates chunks into batches of about `WRITE_BATCH` bytes (the last may be smaller). */
export async function* batches(source: AsyncIterable<Uint8Array>): AsyncGenerator<Uint8Array> {
  let pending: Uint8Array[] = [];
  let bytes = 0;
  for await (const chunk of source) {
    pending.push(chunk);
    bytes += chunk.byteLength;
    if (bytes < WRITE_BATCH) continue;
    yield pending.length === 1 ? (pending[0] as Uint8Array) : Buffer.concat(pending, bytes);
    pending = [];
    bytes = 0;
  }
  if (bytes > 0) yield pending.length === 1 ? (pending[0] as Uint8Array) : Buffer.concat(pending, bytes);
}

/** A body held to an exact length, and whether it was the body that broke it. */
export interface CheckedBody {
  readonly chunks: AsyncIterable<Uint8Array>;
  /** Bytes that went through so far. */
  seen(): number;
  /** True once the body was refused for its length. */
  refused(): boolean;
}

/**
 * Passes a body's chunks through; with a `length`, more bytes fail at once and
 * fewer at the end, both with `SizeMismatchError`.
 */
export function checkLength(body: BlobBody, length: number | undefined): CheckedBody {
  let seen = 0;
  let refused = false;
  async function* chunks(): AsyncGenerator<Uint8Array> {
    for await (const chunk of bodyChunks(body)) {
      seen += chunk.byteLength;
      if (length !== undefined && seen > length) {
        refused = true;
        throw new SizeMismatchError(length, seen);
      }
      yield chunk;
    }
    if (length !== undefined && seen !== length) {
      refused = true;
      throw new SizeMismatchError(length, seen);
    }
  }
  return { chunks: chunks(), seen: () => seen, refused: () => refused };
}
