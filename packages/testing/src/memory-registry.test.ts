import { digestOf } from '@stowage/oci';
import { describe, expect, it } from 'vitest';
import { registryConformance } from './conformance.js';
import { createMemoryRegistry } from './memory-registry.js';
import { collect, pushImage, randomBlob, randomImage } from './random.js';

registryConformance({ name: 'memory', create: () => ({ registry: createMemoryRegistry() }) });

describe('memory registry specifics', () => {
  it('purges upload sessions older than the TTL', async () => {
    let clock = 1_000_000;
    const registry = createMemoryRegistry({ now: () => clock, uploadTtlMs: 1000 });
    const started = await registry.startUpload('a');
    clock += 500;
    expect((await registry.getUpload('a', started.id)).offset).toBe(0);
    clock += 1000;
    await expect(registry.getUpload('a', started.id)).rejects.toMatchObject({ code: 'BLOB_UPLOAD_UNKNOWN' });
  });

  it('keeps unreferenced blobs for the grace period', async () => {
    let clock = 0;
    const registry = createMemoryRegistry({ now: () => clock });
    const blob = randomBlob(10);
    await registry.putBlob('a', blob.bytes, { digest: blob.descriptor.digest });
    clock = 999;
    expect((await registry.garbageCollect({ gracePeriodMs: 1000 })).blobsRemoved).toEqual([]);
    clock = 1000;
    expect((await registry.garbageCollect({ gracePeriodMs: 1000 })).blobsRemoved).toEqual([
      blob.descriptor.digest,
    ]);
  });

  it('clamps a range end past the blob', async () => {
    const registry = createMemoryRegistry();
    const blob = randomBlob(10);
    await registry.putBlob('a', blob.bytes, { digest: blob.descriptor.digest });
    const content = await registry.getBlob('a', blob.descriptor.digest, { range: { start: 5, end: 100 } });
    expect(content.range).toEqual({ start: 5, end: 9 });
    expect(await collect(content.stream)).toEqual(blob.bytes.subarray(5));
  });

  it('binds upload sessions to their repository', async () => {
    const registry = createMemoryRegistry();
    const started = await registry.startUpload('a');
    await expect(registry.getUpload('b', started.id)).rejects.toMatchObject({ code: 'BLOB_UPLOAD_UNKNOWN' });
  });

  it('refuses everything once closed', async () => {
    const registry = createMemoryRegistry();
    await pushImage(registry, 'a', randomImage(), 'v1');
    await registry.close();
    await expect(registry.listTags('a')).rejects.toMatchObject({ code: 'UNAVAILABLE' });
  });

  it('stores a blob once for many repositories', async () => {
    const registry = createMemoryRegistry();
    const blob = randomBlob(10);
    await registry.putBlob('a', blob.bytes, { digest: blob.descriptor.digest });
    await registry.mountBlob('b', blob.descriptor.digest, { from: 'a' });
    await registry.deleteBlob('a', blob.descriptor.digest);
    expect(await registry.headBlob('b', digestOf(blob.bytes))).toBeDefined();
  });
});
