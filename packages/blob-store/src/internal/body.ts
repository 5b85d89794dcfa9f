import type { FileHandle } from 'node:fs/promises';
import { addAbortSignal, Readable } from 'node:stream';
import { type BlobBody, SizeMismatchError } from '@stowage/oci';

/** A body as an async iterable of chunks (a byte array is one chunk). */
export function bodyChunks(body: BlobBody): AsyncIterable<Uint8Array> {
  return body instanceof Uint8Array ? Readable.from([body], { objectMode: false }) : body;
}

/** Bytes gathered into one file write: network chunks are 16–64 KiB, disks prefer larger writes. */
export const WRITE_BATCH = 1 << 20;

/** Chunks gathered into one `writev` at most (well under every system's IOV_MAX). */
const WRITE_BUFFERS = 256;

export interface WriteBodyOptions {
  /** Where the first byte goes; default the file's current position (the end, for a file opened to append). */
  readonly position?: number;
  /** The exact length: more bytes fail at once, fewer at the end, both with `SizeMismatchError`. */
  readonly length?: number;
  /** Sees every chunk, in order, before it is written (a running hash). */
  readonly onChunk?: (chunk: Uint8Array) => void;
  /** Aborts the write (a Node stream body is destroyed with it). */
  readonly signal?: AbortSignal;
}

/**
 * Streams a body into an open file: chunks are gathered into writes of about
 * `WRITE_BATCH` bytes with `writev` (never concatenated into a new buffer),
 * one loop and no intermediate streams. Answers the bytes written. On an
 * error part of the body may be in the file: the caller truncates or removes it.
 */
export async function writeBody(
  handle: FileHandle,
  body: BlobBody,
  options: WriteBodyOptions = {},
): Promise<number> {
  const { length, onChunk, signal } = options;
  signal?.throwIfAborted();
  let position = options.position;
  let pending: Uint8Array[] = [];
  let batched = 0;
  let total = 0;
  const flush = async () => {
    let buffers = pending;
    let left = batched;
    pending = [];
    batched = 0;
    while (left > 0) {
      const { bytesWritten } = await handle.writev(buffers, position);
      if (position !== undefined) position += bytesWritten;
      left -= bytesWritten;
      if (left > 0) buffers = dropLeading(buffers, bytesWritten);
    }
  };
  const source = signal && body instanceof Readable ? addAbortSignal(signal, body) : bodyChunks(body);
  for await (const chunk of source as AsyncIterable<Uint8Array>) {
    signal?.throwIfAborted();
    total += chunk.byteLength;
    if (length !== undefined && total > length) throw new SizeMismatchError(length, total);
    onChunk?.(chunk);
    pending.push(chunk);
    batched += chunk.byteLength;
    if (batched >= WRITE_BATCH || pending.length >= WRITE_BUFFERS) await flush();
  }
  await flush();
  if (length !== undefined && total !== length) throw new SizeMismatchError(length, total);
  return total;
}

/** The buffers after their first `bytes` bytes (what a short write left). */
function dropLeading(buffers: readonly Uint8Array[], bytes: number): Uint8Array[] {
  const rest: Uint8Array[] = [];
  let skip = bytes;
  for (const buffer of buffers) {
    if (skip >= buffer.byteLength) {
      skip -= buffer.byteLength;
      continue;
    }
    rest.push(skip > 0 ? buffer.subarray(skip) : buffer);
    skip = 0;
  }
  return rest;
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
