import { digestOf, isStowageError } from '@stowage/oci';
import {
  collect,
  createMemoryRegistry,
  pushImage,
  pushIndex,
  randomArtifact,
  randomImage,
  randomIndex,
} from '@stowage/testing';
import { describe, expect, it } from 'vitest';
import { type CopyProgressEvent, copyImage } from './copy-image.js';

describe('copyImage between in-memory registries', () => {
  it('copies a single image with identical bytes and digests', async () => {
    const from = createMemoryRegistry();
    const to = createMemoryRegistry();
    const image = randomImage({ layers: 3 });
    await pushImage(from, 'src', image, 'v1');
    const result = await copyImage(
      { registry: from, repository: 'src', reference: 'v1' },
      { registry: to, repository: 'dst', tag: 'copied' },
    );
    expect(result).toMatchObject({
      digest: image.manifest.digest,
      manifests: 1,
      blobsCopied: 4,
      blobsSkipped: 0,
    });
    const got = await to.getManifest('dst', 'copied');
    expect(Buffer.from(got.bytes).equals(Buffer.from(image.manifest.bytes))).toBe(true);
    for (const blob of image.blobs) {
      expect(digestOf(await collect((await to.getBlob('dst', blob.descriptor.digest)).stream))).toBe(
        blob.descriptor.digest,
      );
    }
  });

  it('copies a two-platform index with shared layers, each shared blob once', async () => {
    const from = createMemoryRegistry();
    const to = createMemoryRegistry();
    const index = randomIndex({ sharedLayers: 2, layersPerImage: 1 });
    await pushIndex(from, 'src', index, 'multi');
    const events: CopyProgressEvent[] = [];
    const result = await copyImage(
      { registry: from, repository: 'src', reference: 'multi' },
      { registry: to, repository: 'dst', tag: 'multi' },
      { onProgress: (e) => events.push(e) },
    );
    // 2 shared + 2 own layers + 2 configs
    expect(result).toMatchObject({ digest: index.index.digest, manifests: 3, blobsCopied: 6 });
    expect((await to.getManifest('dst', 'multi')).digest).toBe(index.index.digest);
    const done = events.filter((e) => e.type === 'blob-done');
    expect(new Set(done.map((e) => e.digest)).size).toBe(done.length);
    const sizes = new Map(
      index.images.flatMap((i) => i.blobs).map((b) => [b.descriptor.digest, b.descriptor.size]),
    );
    const lastProgress = new Map<string, number>();
    for (const e of events) if (e.type === 'blob-progress') lastProgress.set(e.digest, e.bytes);
    for (const [digest, bytes] of lastProgress) expect(bytes).toBe(sizes.get(digest as never));
    expect(result.bytesCopied).toBe([...sizes.values()].reduce((a, b) => a + b, 0));
  });

  it('skips blobs the destination already has', async () => {
    const from = createMemoryRegistry();
    const to = createMemoryRegistry();
    const image = randomImage({ layers: 2 });
    await pushImage(from, 'src', image, 'v1');
    await pushImage(to, 'dst', image, 'old');
    const result = await copyImage(
      { registry: from, repository: 'src', reference: 'v1' },
      { registry: to, repository: 'dst', tag: 'v1' },
    );
    expect(result).toMatchObject({ blobsCopied: 0, blobsSkipped: 3, bytesCopied: 0 });
  });

  it('mounts within the same registry', async () => {
    const registry = createMemoryRegistry();
    const image = randomImage({ layers: 2 });
    await pushImage(registry, 'src', image, 'v1');
    const result = await copyImage(
      { registry, repository: 'src', reference: 'v1' },
      { registry, repository: 'dst', tag: 'v1' },
    );
    expect(result).toMatchObject({ blobsMounted: 3, blobsCopied: 0 });
  });

  it('filters platforms into a new index', async () => {
    const from = createMemoryRegistry();
    const to = createMemoryRegistry();
    const index = randomIndex({ platforms: ['linux/amd64', 'linux/arm64', 'linux/arm/v7'] });
    await pushIndex(from, 'src', index, 'multi');
    const result = await copyImage(
      { registry: from, repository: 'src', reference: 'multi' },
      { registry: to, repository: 'dst', tag: 'arm' },
      { platforms: ['linux/arm64'] },
    );
    expect(result.digest).not.toBe(index.index.digest);
    const copied = JSON.parse(Buffer.from((await to.getManifest('dst', 'arm')).bytes).toString());
    expect(copied.manifests.map((m: { digest: string }) => m.digest)).toEqual([
      index.images[1]!.manifest.digest,
    ]);
    expect(await to.headManifest('dst', index.images[0]!.manifest.digest)).toBeUndefined();
    const all = await copyImage(
      { registry: from, repository: 'src', reference: 'multi' },
      { registry: to, repository: 'dst', tag: 'all' },
      { platforms: ['linux/amd64', 'linux/arm64', 'linux/arm/v7'] },
    );
    expect(all.digest).toBe(index.index.digest);
  });

  it('copies referrers when asked', async () => {
    const from = createMemoryRegistry();
    const to = createMemoryRegistry();
    const image = randomImage();
    await pushImage(from, 'src', image, 'v1');
    const sbom = randomArtifact({ subject: image.descriptor, artifactType: 'application/vnd.example.sbom' });
    await pushImage(from, 'src', sbom);
    await copyImage(
      { registry: from, repository: 'src', reference: 'v1' },
      { registry: to, repository: 'plain', tag: 'v1' },
    );
    expect((await to.listReferrers('plain', image.manifest.digest)).manifests).toEqual([]);
    const result = await copyImage(
      { registry: from, repository: 'src', reference: 'v1' },
      { registry: to, repository: 'dst', tag: 'v1' },
      { referrers: true },
    );
    expect(result.manifests).toBe(2);
    expect((await to.listReferrers('dst', image.manifest.digest)).manifests.map((m) => m.digest)).toEqual([
      sbom.manifest.digest,
    ]);
  });

  it('stops on abort and leaves no tag', async () => {
    const from = createMemoryRegistry();
    const to = createMemoryRegistry();
    await pushImage(from, 'src', randomImage(), 'v1');
    const controller = new AbortController();
    controller.abort(new Error('stop'));
    await expect(
      copyImage(
        { registry: from, repository: 'src', reference: 'v1' },
        { registry: to, repository: 'dst', tag: 'v1' },
        { signal: controller.signal },
      ),
    ).rejects.toThrow();
    expect(await to.headManifest('dst', 'v1').catch(() => undefined)).toBeUndefined();
  });

  it('fails with a typed error for an unknown source', async () => {
    const from = createMemoryRegistry();
    await pushImage(from, 'src', randomImage(), 'v1');
    const error = await copyImage(
      { registry: from, repository: 'src', reference: 'nope' },
      { registry: createMemoryRegistry(), repository: 'dst' },
    ).catch((e: unknown) => e);
    expect(isStowageError(error, 'MANIFEST_UNKNOWN')).toBe(true);
  });
});
