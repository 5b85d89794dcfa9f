import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import {
  type BlobBody,
  type BlobContent,
  type Digest,
  type OperationOptions,
  parseDigest,
  RegistryError,
  resolveRange,
  VerifyingStream,
} from '@stowage/oci';
import type {
  BlobStore,
  ReadBlobOptions,
  StoredBlob,
  WriteBlobOptions,
  WriteBlobResult,
} from './blob-store.js';
import { publishWrite } from './diagnostics.js';
import { bodyChunks } from './internal/body.js';

export interface MemoryBlobStoreOptions {
  /** The clock `modifiedAt` is read from (ms since the epoch). Default `Date.now`. */
  readonly now?: () => number;
}

/**
 * A `BlobStore` in memory, with the same verification and errors as the file
 * stores: for tests, and for the in-memory registry. Memory grows with what is stored.
 */
export function createMemoryBlobStore(options: MemoryBlobStoreOptions = {}): BlobStore {
  const now = options.now ?? Date.now;
  const blobs = new Map<Digest, { bytes: Uint8Array; modifiedAt: number }>();

  function info(digest: Digest, blob: { bytes: Uint8Array; modifiedAt: number }): StoredBlob {
    return { digest, size: blob.bytes.byteLength, modifiedAt: blob.modifiedAt };
  }

  return {
    async stat(digest: Digest, opts: OperationOptions = {}) {
      opts.signal?.throwIfAborted();
      const blob = blobs.get(parseDigest(digest));
      return blob && info(digest, blob);
    },

    async read(digest: Digest, opts: ReadBlobOptions = {}): Promise<BlobContent> {
      opts.signal?.throwIfAborted();
      const blob = blobs.get(parseDigest(digest));
      if (!blob)
        throw new RegistryError('BLOB_UNKNOWN', `blob ${digest} is not stored`, { details: { digest } });
      const range = resolveRange(opts.range, blob.bytes.byteLength);
      const bytes = range ? blob.bytes.subarray(range.start, range.end + 1) : blob.bytes;
      const stream = Readable.from(bytes.byteLength > 0 ? [Buffer.from(bytes)] : [], {
        objectMode: false,
        ...(opts.signal ? { signal: opts.signal } : {}),
      });
      return { digest, size: blob.bytes.byteLength, stream, ...(range ? { range } : {}) };
    },

    async write(body: BlobBody, opts: WriteBlobOptions): Promise<WriteBlobResult> {
      const digest = parseDigest(opts.digest);
      opts.signal?.throwIfAborted();
      const verifier = new VerifyingStream(
        opts.size === undefined ? { digest } : { digest, size: opts.size },
      );
      const chunks: Uint8Array[] = [];
      await pipeline(
        bodyChunks(body),
        verifier,
        async (source: AsyncIterable<Uint8Array>) => {
          for await (const chunk of source) chunks.push(chunk);
        },
        ...(opts.signal ? [{ signal: opts.signal }] : []),
      );
      const existing = blobs.get(digest);
      if (existing) {
        existing.modifiedAt = now();
        publishWrite(() => ({ store: 'memory', digest, size: existing.bytes.byteLength, created: false }));
        return { digest, size: existing.bytes.byteLength, created: false };
      }
      blobs.set(digest, { bytes: Buffer.concat(chunks, verifier.bytes), modifiedAt: now() });
      publishWrite(() => ({ store: 'memory', digest, size: verifier.bytes, created: true }));
      return { digest, size: verifier.bytes, created: true };
    },

    async delete(digest: Digest, opts: OperationOptions = {}) {
      opts.signal?.throwIfAborted();
      return blobs.delete(parseDigest(digest));
    },

    async *list(opts: OperationOptions = {}) {
      // A snapshot of the names: blobs written while the listing runs may or may not appear.
      for (const digest of [...blobs.keys()]) {
        opts.signal?.throwIfAborted();
        const blob = blobs.get(digest);
        if (blob) yield info(digest, blob);
      }
    },
  };
}
