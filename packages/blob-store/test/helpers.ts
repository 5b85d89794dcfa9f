// Test helpers shared by blob-store's test files: temporary directories removed
// after each test, a stream read whole, the code a promise is refused with, and
// random blobs.
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { type Digest, digestOf, isStowageError } from '@stowage/oci';
import { afterEach } from 'vitest';

/** A `tempDir()` that makes a new empty directory per call, each removed after the test that made it. */
export function tempDirs(prefix: string): () => Promise<string> {
  const dirs: string[] = [];
  afterEach(async () => {
    for (const dir of dirs.splice(0)) await rm(dir, { recursive: true, force: true });
  });
  return async () => {
    const dir = await mkdtemp(join(tmpdir(), prefix));
    dirs.push(dir);
    return dir;
  };
}

/** Every byte of a stream. */
export async function collect(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(Buffer.from(chunk as Uint8Array));
  return Buffer.concat(chunks);
}

/** The code a promise is refused with (a StowageError's code, another error's name), or `no error`. */
export async function codeOf(work: Promise<unknown>): Promise<string> {
  try {
    await work;
  } catch (error) {
    if (isStowageError(error)) return error.code;
    return (error as Error).name;
  }
  return 'no error';
}

/** A body in chunks of `size` bytes. */
export async function* chunked(bytes: Uint8Array, size: number): AsyncGenerator<Uint8Array> {
  for (let offset = 0; offset < bytes.byteLength; offset += size) yield bytes.subarray(offset, offset + size);
}

/** Random bytes and their digest. */
export function blob(
  size: number,
  algorithm: 'sha256' | 'sha512' = 'sha256',
): { bytes: Buffer; digest: Digest } {
  const bytes = randomBytes(size);
  return { bytes, digest: digestOf(bytes, algorithm) };
}
