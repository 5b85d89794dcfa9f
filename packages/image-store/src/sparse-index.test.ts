import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { pushImage, type RandomImage, randomBlob, randomIndex } from '@stowage/testing';
import { describe, expect, it } from 'vitest';
import { refusalCode, tempRoots } from '../test/temp-roots.js';
import { createImageStore, type ImageStore } from './image-store.js';

const freshRoot = tempRoots('stowage-image-store-sparse-');
const code = refusalCode;

/** Pushes the first child of a two-platform index, then the index as a sparse one tagged `v1`. */
async function pushSparse(store: ImageStore, repository: string) {
  const index = randomIndex({ platforms: ['linux/amd64', 'linux/arm64'] });
  const [kept, absent] = index.images as [RandomImage, RandomImage];
  await pushImage(store, repository, kept);
  await store.putManifest(repository, 'v1', {
    bytes: index.index.bytes,
    mediaType: index.index.mediaType,
    sparse: true,
  });
  return { index, kept, absent };
}

const REF_NAME = 'org.opencontainers.image.ref.name';

describe('sparse indexes', () => {
  it('are claimed, accepted only when asked for, and kept out of index.json', async () => {
    const root = await freshRoot();
    const store = await createImageStore({ root, indexFlushDelayMs: 1e9 });
    expect((await store.capabilities()).sparseIndex).toBe(true);
    const index = randomIndex({ platforms: ['linux/amd64', 'linux/arm64'] });
    const [kept, absent] = index.images;
    await pushImage(store, 'sparse/app', kept!);
    const put = { bytes: index.index.bytes, mediaType: index.index.mediaType };
    expect(await code(store.putManifest('sparse/app', 'v1', put))).toBe('MANIFEST_BLOB_UNKNOWN');
    expect(await store.headManifest('sparse/app', index.index.digest)).toBeUndefined();

    const result = await store.putManifest('sparse/app', 'v1', { ...put, sparse: true });
    expect(result.digest).toBe(index.index.digest);
    const served = await store.getManifest('sparse/app', 'v1');
    expect(Buffer.from(served.bytes).equals(Buffer.from(index.index.bytes))).toBe(true);
    expect(await store.headManifest('sparse/app', absent!.manifest.digest)).toBeUndefined();

    // the sparseness lives in the manifest's metadata file, never in index.json
    const hex = index.index.digest.slice('sha256:'.length);
    const meta = JSON.parse(
      await readFile(join(root, 'sparse/app/.stowage/manifests/sha256', `${hex}.json`), 'utf8'),
    );
    expect(meta.sparse).toBe(true);
    await store.flush();
    const layout = JSON.parse(await readFile(join(root, 'sparse/app/index.json'), 'utf8'));
    expect(layout.manifests).toEqual([
      {
        mediaType: index.index.mediaType,
        digest: index.index.digest,
        size: index.index.size,
        annotations: { [REF_NAME]: 'v1' },
      },
    ]);
    await store.close();
  });

  it('fsck does not report the children a sparse index lacks, but still reports what it has lost', async () => {
    const root = await freshRoot();
    const store = await createImageStore({ root });
    const { kept } = await pushSparse(store, 'sparse/fsck');
    expect((await store.fsck()).problems).toEqual([]);
    // a layer of the child that is there is still checked
    const layer = kept.layers[0]!.descriptor.digest;
    await store.deleteBlob('sparse/fsck', layer);
    expect((await store.fsck()).problems.map((p) => [p.kind, p.digest])).toEqual([['missing-blob', layer]]);
    await store.close();
  });

  it('becomes whole when pushed again with every child present, and then a lost child is reported', async () => {
    const root = await freshRoot();
    const store = await createImageStore({ root });
    const { index, absent: late } = await pushSparse(store, 'sparse/whole');
    await pushImage(store, 'sparse/whole', late);
    await store.putManifest('sparse/whole', 'v1', {
      bytes: index.index.bytes,
      mediaType: index.index.mediaType,
    });
    const hex = index.index.digest.slice('sha256:'.length);
    const meta = JSON.parse(
      await readFile(join(root, 'sparse/whole/.stowage/manifests/sha256', `${hex}.json`), 'utf8'),
    );
    expect(meta.sparse).toBeUndefined();
    await rm(join(root, 'sparse/whole/blobs/sha256', late.manifest.digest.slice('sha256:'.length)));
    expect((await store.fsck()).problems.map((p) => [p.kind, p.digest])).toEqual(
      expect.arrayContaining([['missing-blob', late.manifest.digest]]),
    );
    await store.close();
  });

  it('garbage collection runs over a sparse index, keeps what it has and removes nothing it needs', async () => {
    const root = await freshRoot();
    const store = await createImageStore({ root });
    const { index, kept } = await pushSparse(store, 'sparse/gc');
    const orphan = randomBlob(64);
    await store.putBlob('sparse/gc', orphan.bytes, { digest: orphan.descriptor.digest });
    const report = await store.garbageCollect({ gracePeriodMs: 0, deleteUntagged: true });
    expect(report.manifestsRemoved).toEqual([]);
    expect(report.blobsRemoved).toEqual([orphan.descriptor.digest]);
    expect((await store.getManifest('sparse/gc', 'v1')).digest).toBe(index.index.digest);
    expect(await store.headManifest('sparse/gc', kept.manifest.digest)).toBeDefined();
    for (const blob of kept.blobs)
      expect(await store.headBlob('sparse/gc', blob.descriptor.digest)).toBeDefined();
    expect((await store.fsck()).problems).toEqual([]);
    await store.close();
  });
});
