import { createMemoryStaging, withUploadSessions } from '@stowage/blob-store';
import { digestOf, fullCapabilities, hasUploadSessions } from '@stowage/oci';
import { describe, expect, it } from 'vitest';
import { registryConformance } from './conformance/index.js';
import { createMemoryRegistry } from './memory-registry.js';
import { collect, pushImage, type RandomImage, randomBlob, randomImage, randomIndex } from './random.js';

registryConformance({ name: 'memory', create: () => ({ registry: createMemoryRegistry() }) });
registryConformance({
  name: 'memory without upload sessions',
  create: () => ({ registry: createMemoryRegistry({ uploadSessions: false }) }),
});
registryConformance({
  name: 'memory without upload sessions, given the shared ones',
  create: () => ({
    registry: withUploadSessions(createMemoryRegistry({ uploadSessions: false }), {
      staging: createMemoryStaging(),
    }),
  }),
});

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

  it('declares every capability, and without upload sessions only those three off', async () => {
    expect(await createMemoryRegistry().capabilities()).toEqual(fullCapabilities);
    const without = createMemoryRegistry({ uploadSessions: false });
    expect(hasUploadSessions(without)).toBe(false);
    expect(await without.capabilities()).toEqual({
      ...fullCapabilities,
      uploadSessions: false,
      uploadStatus: false,
      outOfOrderChunkRefusal: false,
    });
  });

  it('has an origin of its own per instance', () => {
    const a = createMemoryRegistry();
    expect(a.origin).toMatch(/^memory:[0-9a-f-]{36}$/);
    expect(createMemoryRegistry().origin).not.toBe(a.origin);
  });

  it('a sparse index: its children pushed later are served, and garbage collection keeps their blobs', async () => {
    const registry = createMemoryRegistry();
    const index = randomIndex({ platforms: ['linux/amd64', 'linux/arm64'] });
    const [absent, present] = index.images as [RandomImage, RandomImage];
    await pushImage(registry, 'a', present);
    await registry.putManifest('a', 'v1', {
      bytes: index.index.bytes,
      mediaType: index.index.mediaType,
      sparse: true,
    });
    expect(await registry.headManifest('a', absent.manifest.digest)).toBeUndefined();
    await pushImage(registry, 'a', absent);
    expect((await registry.getManifest('a', absent.manifest.digest)).digest).toBe(absent.manifest.digest);
    expect((await registry.garbageCollect()).blobsRemoved).toEqual([]);
    for (const blob of [...absent.blobs, ...present.blobs])
      expect(await registry.headBlob('a', blob.descriptor.digest)).toBeDefined();
  });

  it('counts and purges stale upload sessions in garbage collection', async () => {
    let clock = 0;
    const registry = createMemoryRegistry({ now: () => clock, uploadTtlMs: 1000 });
    const stale = await registry.startUpload('a');
    clock = 2000;
    const fresh = await registry.startUpload('a');
    expect((await registry.garbageCollect({ dryRun: true })).uploadsRemoved).toBe(1);
    expect((await registry.garbageCollect()).uploadsRemoved).toBe(1);
    expect((await registry.garbageCollect()).uploadsRemoved).toBe(0);
    await expect(registry.getUpload('a', stale.id)).rejects.toMatchObject({ code: 'BLOB_UPLOAD_UNKNOWN' });
    expect((await registry.getUpload('a', fresh.id)).offset).toBe(0);
  });

  it('refuses upload calls once closed', async () => {
    const registry = createMemoryRegistry();
    const started = await registry.startUpload('a');
    await registry.close();
    await expect(registry.getUpload('a', started.id)).rejects.toMatchObject({ code: 'UNAVAILABLE' });
    await expect(registry.startUpload('a')).rejects.toMatchObject({ code: 'UNAVAILABLE' });
  });
});
