import type { BlobBody } from '@stowage/oci';
import {
  type Digest,
  Digester,
  DigestMismatchError,
  digestAlgorithm,
  reopenerOf,
  SizeMismatchError,
  verifiedDigestOf,
} from '@stowage/oci';

/** A blob body that can be read again from the start: bytes, or a function that opens the content anew. */
export type BlobSourceFactory = () => AsyncIterable<Uint8Array> | Promise<AsyncIterable<Uint8Array>>;

/** What `putBlob` accepts: the `Registry` body kinds, plus a re-openable factory. */
export type ClientBlobBody = BlobBody | BlobSourceFactory;

/** A body as an upload sees it. */
export interface BlobSource {
  /** Bytes in memory, when the body is a byte array. */
  readonly bytes?: Uint8Array;
  /** Whether `open()` may be called again after a failure (restart from the beginning). */
  readonly replayable: boolean;
  /** Starts reading from the beginning. */
  open(): AsyncIterable<Uint8Array>;
  /** Releases a body that will not be read (a blob that already exists). */
  discard(): void;
}

export function blobSource(body: ClientBlobBody): BlobSource {
  if (body instanceof Uint8Array) {
    return {
      bytes: body,
      replayable: true,
      open: () => once(body),
      discard: () => {},
    };
  }
  if (typeof body === 'function') {
    return {
      replayable: true,
      open: () => fromFactory(body),
      discard: () => {},
    };
  }
  let opened = false;
  // A stream its producer can open again (markReopenable): replayable, so it may go in one
  // request; the first read is the stream itself, a restart reads it anew.
  const reopen = reopenerOf(body);
  if (reopen) {
    return {
      replayable: true,
      open: () => {
        if (!opened) {
          opened = true;
          return body;
        }
        return fromFactory(reopen);
      },
      discard: () => {
        if (!opened) discardIterable(body);
      },
    };
  }
  return {
    replayable: false,
    open: () => {
      if (opened) throw new Error('a streamed blob body can be read once only');
      opened = true;
      return body;
    },
    discard: () => discardIterable(body),
  };
}

async function* once(bytes: Uint8Array): AsyncGenerator<Uint8Array> {
  if (bytes.byteLength > 0) yield bytes;
}

async function* fromFactory(factory: BlobSourceFactory): AsyncGenerator<Uint8Array> {
  yield* await factory();
}

/** Lets go of an async iterable nobody will read: destroys a Node stream, cancels a web stream. */
export function discardIterable(body: AsyncIterable<Uint8Array>): void {
  const candidate = body as { destroy?: () => void; cancel?: () => Promise<void> };
  try {
    if (typeof candidate.destroy === 'function') candidate.destroy();
    else if (typeof candidate.cancel === 'function') candidate.cancel().catch(() => {});
    else void body[Symbol.asyncIterator]().return?.();
  } catch {
    // nothing more can be done
  }
}

/**
 * Re-yields a body while hashing it, and holds the last chunk back until the
 * end proves the content right: on a digest or size mismatch the last bytes
 * are never sent, so a registry cannot commit wrong content. Exceeding the
 * expected size fails at once. A body its producer already checks against
 * this digest (`markVerified`: it fails before its end on a mismatch, as the
 * copy engine's do) is not hashed a second time; its last chunk is still held
 * back until it has ended well.
 */
export async function* heldBackChunks(
  source: AsyncIterable<Uint8Array>,
  expected: { readonly digest: Digest; readonly size?: number },
): AsyncGenerator<Uint8Array> {
  const digester =
    verifiedDigestOf(source) === expected.digest ? undefined : new Digester(digestAlgorithm(expected.digest));
  let size = 0;
  let held: Uint8Array | undefined;
  for await (const chunk of source) {
    if (chunk.byteLength === 0) continue;
    digester?.update(chunk);
    size += chunk.byteLength;
    if (expected.size !== undefined && size > expected.size) {
      throw new SizeMismatchError(expected.size, size);
    }
    if (held !== undefined) yield held;
    held = chunk;
  }
  if (expected.size !== undefined && size !== expected.size) {
    throw new SizeMismatchError(expected.size, size);
  }
  const actual = digester?.digest();
  if (actual !== undefined && actual !== expected.digest)
    throw new DigestMismatchError(expected.digest, actual);
  if (held !== undefined) yield held;
}

/** Regroups a body into chunks of exactly `size` bytes (the last one shorter). */
export async function* rechunk(source: AsyncIterable<Uint8Array>, size: number): AsyncGenerator<Buffer> {
  let parts: Uint8Array[] = [];
  let buffered = 0;
  for await (const chunk of source) {
    let view = chunk;
    while (view.byteLength > 0) {
      const take = Math.min(size - buffered, view.byteLength);
      parts.push(view.subarray(0, take));
      buffered += take;
      view = view.subarray(take);
      if (buffered === size) {
        yield Buffer.concat(parts, buffered);
        parts = [];
        buffered = 0;
      }
    }
  }
  if (buffered > 0) yield Buffer.concat(parts, buffered);
}

/** Reads a whole async iterable into memory (used for one caller-given chunk, never a whole blob). */
export async function collect(source: AsyncIterable<Uint8Array>): Promise<Buffer> {
  const parts: Uint8Array[] = [];
  let size = 0;
  for await (const chunk of source) {
    parts.push(chunk);
    size += chunk.byteLength;
  }
  return Buffer.concat(parts, size);
}
