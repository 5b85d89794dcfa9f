// A small blob (an image config, a record's config) read whole, for the code
// that parses one. Large content is streamed, never read this way: the limit
// keeps a registry that serves a huge "config" from filling memory.
import type { Digest } from './digest.js';
import { RegistryError } from './errors.js';
import type { OperationOptions, Registry } from './registry.js';

/** The largest blob `readBlobBytes` reads unless told otherwise: 16 MiB, well above any image config. */
export const MAX_SMALL_BLOB = 16 * 1024 * 1024;

export interface ReadBlobBytesOptions extends OperationOptions {
  /** Refuse a blob larger than this many bytes (default `MAX_SMALL_BLOB`). */
  readonly limit?: number;
}

/**
 * The bytes of one blob. A blob over the limit is `SIZE_INVALID` (found from
 * the size the store reports, or while reading when it reports none); the
 * stream is always released.
 */
export async function readBlobBytes(
  registry: Registry,
  repository: string,
  digest: Digest,
  options: ReadBlobBytesOptions = {},
): Promise<Uint8Array> {
  const limit = options.limit ?? MAX_SMALL_BLOB;
  const tooBig = () =>
    new RegistryError('SIZE_INVALID', `blob ${digest} in ${repository} is larger than ${limit} bytes`, {
      details: { repository, digest, limit },
    });
  const blob = await registry.getBlob(repository, digest, options.signal ? { signal: options.signal } : {});
  const chunks: Uint8Array[] = [];
  let size = 0;
  try {
    if (blob.size > limit) throw tooBig();
    for await (const chunk of blob.stream as AsyncIterable<Uint8Array>) {
      size += chunk.byteLength;
      if (size > limit) throw tooBig();
      chunks.push(chunk);
    }
  } finally {
    blob.stream.destroy();
  }
  return Buffer.concat(chunks);
}
