// An image-store root moved into database mode: its tags, manifests and blob
// links recorded over its own content store, no byte copied, the root left as
// it was; a rerun converges; a target whose store lacks the bytes gets them
// through the source.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type BlobStore, createFileBlobStore, createMemoryBlobStore } from '@stowage/blob-store';
import { createImageStore, type ImageStore } from '@stowage/image-store';
import { createPgliteDatabase, type Database, migrate } from '@stowage/metadata-db';
import { digestOf } from '@stowage/oci';
import {
  collect,
  pushImage,
  pushIndex,
  randomBlob,
  randomImage,
  randomIndex,
  snapshotTree,
} from '@stowage/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { importRegistry } from './import.js';
import { createDatabaseRegistry, type DatabaseRegistry } from './registry.js';

describe('importing an image-store root into database mode', () => {
  let root: string;
  let store: ImageStore;
  const shared = randomBlob(3000);
  const single = randomImage({ layers: 2, sharedLayers: [shared] });
  const other = randomImage({ layers: 1, sharedLayers: [shared] });
  const index = randomIndex({ platforms: ['linux/amd64', 'linux/arm64'] });
  const sparse = randomIndex({ platforms: ['linux/amd64', 'linux/arm64'] });

  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), 'stowage-import-store-'));
    store = await createImageStore({ root });
    await pushImage(store, 'team/app', single, 'v1');
    await store.putManifest('team/app', 'latest', {
      bytes: single.manifest.bytes,
      mediaType: single.manifest.mediaType,
    });
    await pushImage(store, 'team/sub/other', other, '1.0');
    await pushIndex(store, 'multi', index, 'v2');
    // an index stored without one of its children
    await pushImage(store, 'multi', sparse.images[0]!);
    await store.putManifest('multi', 'sparse', {
      bytes: sparse.index.bytes,
      mediaType: sparse.index.mediaType,
      sparse: true,
    });
    await store.close();
    store = await createImageStore({ root, readOnly: true });
  });
  afterAll(async () => {
    await store?.close();
    await rm(root, { recursive: true, force: true });
  });

  async function target(
    blobs: BlobStore = createFileBlobStore({
      root: join(root, '.stowage', 'blobs'),
      layout: 'stowage',
      readOnly: true,
    }),
  ) {
    const database: Database = await createPgliteDatabase();
    await migrate(database);
    return createDatabaseRegistry({ database, blobs, closeDatabase: true });
  }

  async function expectServedAlike(registry: DatabaseRegistry): Promise<void> {
    expect((await registry.listRepositories()).items).toEqual(['multi', 'team/app', 'team/sub/other']);
    expect((await registry.listTags('team/app')).items).toEqual(['latest', 'v1']);
    expect((await registry.listTags('multi')).items).toEqual(['sparse', 'v2']);
    for (const [repository, tag] of [
      ['team/app', 'v1'],
      ['team/app', 'latest'],
      ['team/sub/other', '1.0'],
      ['multi', 'v2'],
      ['multi', 'sparse'],
    ] as const) {
      const want = await store.getManifest(repository, tag);
      const got = await registry.getManifest(repository, tag);
      expect([got.digest, got.mediaType, Buffer.from(got.bytes).equals(Buffer.from(want.bytes))]).toEqual([
        want.digest,
        want.mediaType,
        true,
      ]);
    }
    for (const image of [...index.images, sparse.images[0]!]) {
      expect((await registry.getManifest('multi', image.manifest.digest)).digest).toBe(image.manifest.digest);
      for (const blob of image.blobs) {
        const content = await registry.getBlob('multi', blob.descriptor.digest);
        expect(digestOf(await collect(content.stream))).toBe(blob.descriptor.digest);
      }
    }
    expect(await registry.headManifest('multi', sparse.images[1]!.manifest.digest)).toBeUndefined();
    for (const blob of single.blobs)
      expect(await registry.headBlob('team/app', blob.descriptor.digest)).toBeDefined();
  }

  it("records every tag, manifest and blob over the root's own content store, copying nothing and changing nothing", async () => {
    const before = await snapshotTree(root);
    const registry = await target();
    try {
      const result = await importRegistry({ source: store, target: registry });
      expect(result).toMatchObject({ repositories: 3, tags: 5, blobsCopied: 0 });
      expect(result.manifests).toBe(2 + 3 + 2);
      await expectServedAlike(registry);
      // a rerun converges: the same rows, nothing new
      expect(await importRegistry({ source: store, target: registry })).toEqual(result);
      await expectServedAlike(registry);
    } finally {
      await registry.close();
    }
    expect(await snapshotTree(root)).toEqual(before);
  });

  it('copies, verified, the blobs a target store lacks', async () => {
    const registry = await target(createMemoryBlobStore());
    try {
      const result = await importRegistry({ source: store, target: registry, repositories: ['team/app'] });
      expect(result).toMatchObject({ repositories: 1, tags: 2, manifests: 1, blobs: 4, blobsCopied: 4 });
      expect((await registry.listRepositories()).items).toEqual(['team/app']);
      for (const blob of single.blobs) {
        const content = await registry.getBlob('team/app', blob.descriptor.digest);
        expect(digestOf(await collect(content.stream))).toBe(blob.descriptor.digest);
      }
    } finally {
      await registry.close();
    }
  });
});
