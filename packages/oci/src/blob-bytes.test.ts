import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { readBlobBytes } from './blob-bytes.js';
import { type Digest, digestOf } from './digest.js';
import type { Registry } from './registry.js';

/** A store with one blob, reporting `reportedSize` for it (a lying or size-less store is the fault under test). */
function storeOf(bytes: Uint8Array, reportedSize = bytes.byteLength) {
  const streams: Readable[] = [];
  const registry = {
    async getBlob(_repository: string, digest: Digest) {
      const stream = Readable.from([bytes.subarray(0, 3), bytes.subarray(3)]);
      streams.push(stream);
      return { digest, size: reportedSize, stream };
    },
  } as unknown as Registry;
  return { registry, streams };
}

describe('readBlobBytes', () => {
  const bytes = new TextEncoder().encode('{"config":{}}');

  it('reads the whole blob and releases its stream', async () => {
    const { registry, streams } = storeOf(bytes);
    expect(Buffer.from(await readBlobBytes(registry, 'a', digestOf(bytes))).toString()).toBe('{"config":{}}');
    expect(streams[0]?.destroyed).toBe(true);
  });

  it('refuses a blob over the limit, from its reported size or while reading', async () => {
    const big = storeOf(bytes);
    await expect(readBlobBytes(big.registry, 'a', digestOf(bytes), { limit: 4 })).rejects.toMatchObject({
      code: 'SIZE_INVALID',
    });
    expect(big.streams[0]?.destroyed).toBe(true);
    const lying = storeOf(bytes, 2);
    await expect(readBlobBytes(lying.registry, 'a', digestOf(bytes), { limit: 4 })).rejects.toMatchObject({
      code: 'SIZE_INVALID',
    });
    expect(lying.streams[0]?.destroyed).toBe(true);
  });
});
