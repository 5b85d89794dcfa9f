import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import {
  type Digest,
  digestOf,
  isStowageError,
  type PutManifestOptions,
  type Registry,
  type RegistryCapabilities,
  RegistryError,
} from '@stowage/oci';
import {
  collect,
  createMemoryRegistry,
  pushImage,
  pushIndex,
  type RegistryCall,
  randomArtifact,
  randomImage,
  randomIndex,
  spyRegistry,
} from '@stowage/testing';
import { afterEach, describe, expect, it } from 'vitest';
import {
  COPY_BLOB_CHANNEL,
  COPY_MANIFEST_CHANNEL,
  type CopyBlobMessage,
  type CopyManifestMessage,
  type CopyOptions,
  type CopyProgressEvent,
  copyImage,
} from './index.js';

const writes = ['putBlob', 'mountBlob', 'putManifest', 'startUpload', 'deleteTag', 'deleteManifest'];
const wrote = (registry: { calls: RegistryCall[] }) =>
  registry.calls.filter((c) => writes.includes(c.method));

function json(bytes: Uint8Array): { manifests: { digest: string }[] } {
  return JSON.parse(Buffer.from(bytes).toString());
}

async function error(promise: Promise<unknown>): Promise<unknown> {
  return await promise.then(
    () => {
      throw new Error('expected a rejection');
    },
    (e: unknown) => e,
  );
}

/** `src:v1` of a registry: what most tests copy from. */
const srcV1 = (registry: Registry) => ({ registry, repository: 'src', reference: 'v1' });

/** A memory registry holding a random image (of `options`) as `src:v1`. */
async function seeded(options?: Parameters<typeof randomImage>[0]) {
  const registry = createMemoryRegistry();
  const image = randomImage(options);
  await pushImage(registry, 'src', image, 'v1');
  return { registry, image };
}

describe('copyImage', () => {
  it('copies a single image with identical bytes and digests', async () => {
    const from = createMemoryRegistry();
    const to = createMemoryRegistry();
    const image = randomImage({ layers: 3 });
    await pushImage(from, 'src', image, 'v1');
    const result = await copyImage(srcV1(from), { registry: to, repository: 'dst', tag: 'copied' });
    expect(result).toEqual({
      digest: image.manifest.digest,
      sourceDigest: image.manifest.digest,
      mediaType: image.manifest.mediaType,
      indexRewritten: false,
      sparse: false,
      manifests: 1,
      blobsCopied: 4,
      blobsSkipped: 0,
      blobsMounted: 0,
      bytesCopied: image.blobs.reduce((sum, b) => sum + b.descriptor.size, 0),
    });
    const got = await to.getManifest('dst', 'copied');
    expect(Buffer.from(got.bytes).equals(Buffer.from(image.manifest.bytes))).toBe(true);
    for (const blob of image.blobs) {
      const content = await to.getBlob('dst', blob.descriptor.digest);
      expect(digestOf(await collect(content.stream))).toBe(blob.descriptor.digest);
    }
  });

  it('stores by digest only when the destination has no tag', async () => {
    const from = createMemoryRegistry();
    const to = createMemoryRegistry();
    const image = randomImage();
    await pushImage(from, 'src', image, 'v1');
    const result = await copyImage(
      { registry: from, repository: 'src', reference: image.manifest.digest },
      { registry: to, repository: 'dst' },
    );
    expect(result.digest).toBe(image.manifest.digest);
    expect((await to.headManifest('dst', image.manifest.digest))?.digest).toBe(image.manifest.digest);
    expect((await to.listTags('dst')).items).toEqual([]);
  });

  it('copies a two-platform index, each shared blob read and written once, children before the tag', async () => {
    const from = spyRegistry(createMemoryRegistry());
    const to = spyRegistry(createMemoryRegistry());
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

    const reads = from.calls.filter((c) => c.method === 'getBlob').map((c) => c.args[1]);
    const puts = to.calls
      .filter((c) => c.method === 'putBlob')
      .map((c) => (c.args[2] as { digest: Digest }).digest);
    const unique = new Set(index.images.flatMap((i) => i.blobs.map((b) => b.descriptor.digest)));
    expect(unique.size).toBe(6);
    expect(reads.sort()).toEqual([...unique].sort());
    expect(puts.sort()).toEqual([...unique].sort());
    // streamed, never handed over as one buffer
    for (const call of to.calls.filter((c) => c.method === 'putBlob')) {
      expect(call.args[1]).not.toBeInstanceOf(Uint8Array);
    }

    const manifestPuts = to.calls.filter((c) => c.method === 'putManifest').map((c) => c.args[1]);
    expect(manifestPuts.slice(0, 2).sort()).toEqual(index.images.map((i) => i.manifest.digest).sort());
    expect(manifestPuts[2]).toBe('multi');

    const done = events.filter((e) => e.type === 'blob-done');
    expect(done).toHaveLength(6);
    const sizes = new Map(
      index.images.flatMap((i) => i.blobs).map((b) => [b.descriptor.digest, b.descriptor.size]),
    );
    const lastProgress = new Map<string, number>();
    for (const e of events) if (e.type === 'blob-progress') lastProgress.set(e.digest, e.bytes);
    expect(lastProgress.size).toBe(6);
    for (const [digest, bytes] of lastProgress) expect(bytes).toBe(sizes.get(digest as Digest));
    expect(result.bytesCopied).toBe([...sizes.values()].reduce((a, b) => a + b, 0));
    expect(events.filter((e) => e.type === 'manifest-done').map((e) => e.digest)).toContain(
      index.index.digest,
    );
  });

  it('skips blobs the destination already has', async () => {
    const from = createMemoryRegistry();
    const to = createMemoryRegistry();
    const image = randomImage({ layers: 2 });
    await pushImage(from, 'src', image, 'v1');
    await pushImage(to, 'dst', image, 'old');
    const events: CopyProgressEvent[] = [];
    const result = await copyImage(
      srcV1(from),
      { registry: to, repository: 'dst', tag: 'v1' },
      { onProgress: (e) => events.push(e) },
    );
    expect(result).toMatchObject({ blobsCopied: 0, blobsSkipped: 3, bytesCopied: 0 });
    expect(events.filter((e) => e.type === 'blob-skipped')).toHaveLength(3);
  });

  it('into a repository that does not exist yet, asks one tag listing instead of a HEAD per blob', async () => {
    const from = createMemoryRegistry();
    const store = createMemoryRegistry();
    const image = randomImage({ layers: 3 });
    await pushImage(from, 'src', image, 'v1');
    const fresh = spyRegistry(store);
    expect(await copyImage(srcV1(from), { registry: fresh, repository: 'dst', tag: 'v1' })).toMatchObject({
      blobsCopied: 4,
    });
    expect(fresh.count('listTags')).toBe(1);
    expect(fresh.count('headBlob')).toBe(0);
    // Once it exists, each blob is asked about (and skipped), as before.
    const again = spyRegistry(store);
    expect(await copyImage(srcV1(from), { registry: again, repository: 'dst', tag: 'v2' })).toMatchObject({
      blobsCopied: 0,
      blobsSkipped: 4,
    });
    expect(again.count('headBlob')).toBe(4);
  });

  describe('mounts', () => {
    it('mounts between two repositories of one store object', async () => {
      const { registry, image } = await seeded({ layers: 2 });
      const result = await copyImage(srcV1(registry), { registry, repository: 'dst', tag: 'v1' });
      expect(result).toMatchObject({ blobsMounted: 3, blobsCopied: 0 });
      expect((await registry.getManifest('dst', 'v1')).digest).toBe(image.manifest.digest);
    });

    it('mounts between two objects of the same origin (not the same object)', async () => {
      const store = createMemoryRegistry();
      const from = spyRegistry(store);
      const to = spyRegistry(store);
      const image = randomImage({ layers: 2 });
      await pushImage(store, 'src', image, 'v1');
      const result = await copyImage(srcV1(from), { registry: to, repository: 'dst', tag: 'v1' });
      expect(result).toMatchObject({ blobsMounted: 3, blobsCopied: 0 });
      expect(from.count('getBlob')).toBe(0);
      for (const call of to.calls.filter((c) => c.method === 'mountBlob')) {
        expect(call.args[2]).toMatchObject({ from: 'src' });
      }
    });

    it('never mounts across origins unless forced, and a refused mount falls back to a transfer', async () => {
      const from = createMemoryRegistry();
      const to = spyRegistry(createMemoryRegistry());
      const image = randomImage({ layers: 1 });
      await pushImage(from, 'src', image, 'v1');
      const plain = await copyImage(srcV1(from), { registry: to, repository: 'a', tag: 'v1' });
      expect(plain).toMatchObject({ blobsMounted: 0, blobsCopied: 2 });
      expect(to.count('mountBlob')).toBe(0);
      const forced = await copyImage(
        srcV1(from),
        { registry: to, repository: 'b', tag: 'v1' },
        { mount: true },
      );
      // the destination has no repository `src` to mount from: it answers undefined, the bytes move
      expect(to.count('mountBlob')).toBe(2);
      expect(forced).toMatchObject({ blobsMounted: 0, blobsCopied: 2 });
    });

    it('mount: false moves bytes within one origin; a mount answering undefined moves them too', async () => {
      const { registry: store } = await seeded({ layers: 1 });
      const off = spyRegistry(store);
      expect(
        await copyImage(srcV1(store), { registry: off, repository: 'off', tag: 'v1' }, { mount: false }),
      ).toMatchObject({ blobsMounted: 0, blobsCopied: 2 });
      expect(off.count('mountBlob')).toBe(0);
      const refusing = spyRegistry(store, { hooks: { mountBlob: async () => undefined } });
      expect(
        await copyImage(srcV1(store), { registry: refusing, repository: 'refused', tag: 'v1' }),
      ).toMatchObject({ blobsMounted: 0, blobsCopied: 2 });
      expect(refusing.count('mountBlob')).toBe(2);
    });

    it('does not mount by default into a store whose capabilities say it cannot', async () => {
      const { registry: store } = await seeded({ layers: 1 });
      const to = spyRegistry(store, { capabilities: { mount: false } });
      expect(await copyImage(srcV1(store), { registry: to, repository: 'dst', tag: 'v1' })).toMatchObject({
        blobsMounted: 0,
        blobsCopied: 2,
      });
      expect(to.count('mountBlob')).toBe(0);
    });

    it('within one repository of one origin, only the tag is pushed', async () => {
      const store = createMemoryRegistry();
      const index = randomIndex();
      await pushIndex(store, 'src', index, 'v1');
      const from = spyRegistry(store);
      const to = spyRegistry(store);
      const result = await copyImage(
        srcV1(from),
        { registry: to, repository: 'src', tag: 'v2' },
        { platforms: ['linux/arm64'] },
      );
      // the filter still decides which blobs are counted: the arm64 child's config and layer
      expect(result).toMatchObject({
        digest: index.index.digest,
        manifests: 1,
        blobsSkipped: 2,
        blobsCopied: 0,
      });
      expect(from.count('getBlob')).toBe(0);
      expect(wrote(to).map((c) => [c.method, c.args[1]])).toEqual([['putManifest', 'v2']]);
      expect((await store.getManifest('src', 'v2')).digest).toBe(index.index.digest);
    });
  });

  describe('platform filter', () => {
    const platforms = ['linux/amd64', 'linux/arm64', 'linux/arm/v7'];

    /** An index of `platforms` as `src:multi` in a memory registry, and `copy` of it into `dst:<tag>` of a spied one. */
    async function multi(capabilities?: Partial<RegistryCapabilities>) {
      const from = createMemoryRegistry();
      const to = spyRegistry(createMemoryRegistry(), capabilities ? { capabilities } : {});
      const index = randomIndex({ platforms });
      await pushIndex(from, 'src', index, 'multi');
      const copy = (tag: string, options: CopyOptions) =>
        copyImage(
          { registry: from, repository: 'src', reference: 'multi' },
          { registry: to, repository: 'dst', tag },
          options,
        );
      return { from, to, index, copy };
    }

    it('into a store that takes a sparse index: the original bytes and digest, the other children not copied', async () => {
      const { to, index, copy } = await multi({ sparseIndex: true });
      const result = await copy('arm', { platforms: ['linux/arm64'] });
      expect(result).toMatchObject({
        digest: index.index.digest,
        sourceDigest: index.index.digest,
        sparse: true,
        indexRewritten: false,
        manifests: 2,
        blobsCopied: 2,
      });
      const copied = await to.getManifest('dst', 'arm');
      expect(Buffer.from(copied.bytes).equals(Buffer.from(index.index.bytes))).toBe(true);
      expect(await to.headManifest('dst', index.images[1]!.manifest.digest)).toBeDefined();
      expect(await to.headManifest('dst', index.images[0]!.manifest.digest)).toBeUndefined();
      expect(await to.headBlob('dst', index.images[0]!.config.descriptor.digest)).toBeUndefined();
      const pushes = to.calls.filter((c) => c.method === 'putManifest');
      expect(pushes.map((c) => [c.args[1], (c.args[2] as PutManifestOptions).sparse])).toEqual([
        [index.images[1]!.manifest.digest, undefined],
        ['arm', true],
      ]);
    });

    it('into a store that cannot: refused before anything is written, naming rewriteIndex', async () => {
      const { to, copy } = await multi({ sparseIndex: false });
      const refused = await error(copy('arm', { platforms: ['linux/arm64'] }));
      expect(isStowageError(refused, 'SPARSE_INDEX_UNSUPPORTED')).toBe(true);
      expect((refused as Error).name).toBe('CopyError');
      expect((refused as Error).message).toContain('rewriteIndex: true');
      expect(wrote(to)).toEqual([]);
      expect(to.count('headBlob')).toBe(0);
      expect((await to.listRepositories()).items).toEqual([]);
    });

    it('with rewriteIndex into a store that cannot: a filtered index with a new digest, reported', async () => {
      const { to, index, copy } = await multi({ sparseIndex: false });
      const result = await copy('arm', { platforms: ['linux/arm64', 'linux/arm/v7'], rewriteIndex: true });
      expect(result).toMatchObject({ sourceDigest: index.index.digest, indexRewritten: true, sparse: false });
      expect(result.digest).not.toBe(index.index.digest);
      const copied = await to.getManifest('dst', 'arm');
      expect(copied.digest).toBe(result.digest);
      expect(digestOf(copied.bytes)).toBe(result.digest);
      const original = json(index.index.bytes);
      expect(json(copied.bytes)).toEqual({ ...original, manifests: original.manifests.slice(1) });
      expect(await to.headManifest('dst', index.images[0]!.manifest.digest)).toBeUndefined();
      for (const call of to.calls.filter((c) => c.method === 'putManifest')) {
        expect((call.args[2] as PutManifestOptions).sparse).toBeUndefined();
      }
    });

    it('a store that takes sparse indexes gets the original even with rewriteIndex', async () => {
      const { index, copy } = await multi({ sparseIndex: true });
      const result = await copy('arm', { platforms: ['linux/arm64'], rewriteIndex: true });
      expect(result).toMatchObject({ digest: index.index.digest, sparse: true, indexRewritten: false });
    });

    it('when every child matches, the index is pushed unchanged and not as sparse', async () => {
      const { to, index, copy } = await multi({ sparseIndex: false });
      const result = await copy('all', { platforms });
      expect(result).toMatchObject({
        digest: index.index.digest,
        sparse: false,
        indexRewritten: false,
        manifests: 4,
      });
      for (const call of to.calls.filter((c) => c.method === 'putManifest')) {
        expect((call.args[2] as PutManifestOptions).sparse).toBeUndefined();
      }
    });

    it('a filter matching no child fails before anything is written', async () => {
      const { to, copy } = await multi();
      const refused = await error(copy('x', { platforms: ['windows/amd64'] }));
      expect(isStowageError(refused, 'NO_MATCHING_PLATFORM')).toBe(true);
      expect(wrote(to)).toEqual([]);
    });

    it('follows child indexes; a rewritten child index makes its parent point at the new digest', async () => {
      const from = createMemoryRegistry();
      const to = spyRegistry(createMemoryRegistry(), { capabilities: { sparseIndex: false } });
      const inner = randomIndex({ platforms });
      await pushIndex(from, 'src', inner);
      const mediaType = 'application/vnd.oci.image.index.v1+json';
      const outer = new TextEncoder().encode(
        JSON.stringify({ schemaVersion: 2, mediaType, manifests: [inner.descriptor] }),
      );
      await from.putManifest('src', 'outer', { bytes: outer, mediaType });
      const refused = await error(
        copyImage(
          { registry: from, repository: 'src', reference: 'outer' },
          { registry: to, repository: 'dst', tag: 'outer' },
          { platforms: ['linux/arm64'] },
        ),
      );
      expect(isStowageError(refused, 'SPARSE_INDEX_UNSUPPORTED')).toBe(true);
      expect((refused as { details: { indexes: string[] } }).details.indexes).toEqual([inner.index.digest]);
      expect(wrote(to)).toEqual([]);

      const result = await copyImage(
        { registry: from, repository: 'src', reference: 'outer' },
        { registry: to, repository: 'dst', tag: 'outer' },
        { platforms: ['linux/arm64'], rewriteIndex: true },
      );
      expect(result).toMatchObject({ indexRewritten: true, sourceDigest: digestOf(outer), manifests: 3 });
      const copied = await to.getManifest('dst', 'outer');
      expect(copied.digest).toBe(result.digest);
      const [child] = JSON.parse(Buffer.from(copied.bytes).toString()).manifests as {
        digest: Digest;
        size: number;
      }[];
      expect(child!.digest).not.toBe(inner.index.digest);
      const rewrittenInner = await to.getManifest('dst', child!.digest);
      expect(rewrittenInner.size).toBe(child!.size);
      expect(json(rewrittenInner.bytes).manifests.map((m) => m.digest)).toEqual([
        inner.images[1]!.manifest.digest,
      ]);
    });

    it('a sparse index copies onward with the same filter; without one its absent child is MANIFEST_UNKNOWN', async () => {
      const first = spyRegistry(createMemoryRegistry(), { capabilities: { sparseIndex: true } });
      const index = randomIndex({ platforms });
      await pushIndex(first, 'src', index, 'multi');
      await copyImage(
        { registry: first, repository: 'src', reference: 'multi' },
        { registry: first, repository: 'sparse', tag: 'multi' },
        { platforms: ['linux/arm64'] },
      );
      const onward = createMemoryRegistry();
      const failed = await error(
        copyImage(
          { registry: first, repository: 'sparse', reference: 'multi' },
          { registry: onward, repository: 'dst', tag: 'multi' },
        ),
      );
      expect(isStowageError(failed, 'MANIFEST_UNKNOWN')).toBe(true);
      const again = spyRegistry(onward, { capabilities: { sparseIndex: true } });
      const result = await copyImage(
        { registry: first, repository: 'sparse', reference: 'multi' },
        { registry: again, repository: 'dst', tag: 'multi' },
        { platforms: ['linux/arm64'] },
      );
      expect(result).toMatchObject({ digest: index.index.digest, sparse: true });
      // and within its own repository, under another tag
      const retag = await copyImage(
        { registry: first, repository: 'sparse', reference: 'multi' },
        { registry: first, repository: 'sparse', tag: 'again' },
        { platforms: ['linux/arm64'] },
      );
      expect(retag).toMatchObject({ digest: index.index.digest, manifests: 1, sparse: true });
    });

    it('single images are copied whatever their platform', async () => {
      const from = createMemoryRegistry();
      const to = createMemoryRegistry();
      const image = randomImage({ platform: 'linux/s390x' });
      await pushImage(from, 'src', image, 'v1');
      const result = await copyImage(
        srcV1(from),
        { registry: to, repository: 'dst', tag: 'v1' },
        { platforms: ['linux/amd64'] },
      );
      expect(result.digest).toBe(image.manifest.digest);
    });
  });

  describe('referrers', () => {
    it('copies referrers recursively only when asked', async () => {
      const from = createMemoryRegistry();
      const to = createMemoryRegistry();
      const image = randomImage();
      await pushImage(from, 'src', image, 'v1');
      const sbom = randomArtifact({
        subject: image.descriptor,
        artifactType: 'application/vnd.example.sbom',
      });
      await pushImage(from, 'src', sbom);
      const signature = randomArtifact({
        subject: sbom.descriptor,
        artifactType: 'application/vnd.example.sig',
      });
      await pushImage(from, 'src', signature);
      const plain = await copyImage(srcV1(from), { registry: to, repository: 'plain', tag: 'v1' });
      expect(plain.manifests).toBe(1);
      expect((await to.listReferrers('plain', image.manifest.digest)).manifests).toEqual([]);
      const result = await copyImage(
        srcV1(from),
        { registry: to, repository: 'dst', tag: 'v1' },
        { referrers: true },
      );
      expect(result.manifests).toBe(3);
      expect((await to.listReferrers('dst', image.manifest.digest)).manifests.map((m) => m.digest)).toEqual([
        sbom.manifest.digest,
      ]);
      expect((await to.listReferrers('dst', sbom.manifest.digest)).manifests.map((m) => m.digest)).toEqual([
        signature.manifest.digest,
      ]);
    });

    it('a referrer that lists the top manifest as a child goes after it, without deadlock', async () => {
      const from = createMemoryRegistry();
      const to = spyRegistry(createMemoryRegistry());
      const image = randomImage();
      await pushImage(from, 'src', image, 'v1');
      const bytes = new TextEncoder().encode(
        JSON.stringify({
          schemaVersion: 2,
          mediaType: 'application/vnd.oci.image.index.v1+json',
          artifactType: 'application/vnd.example.bundle',
          manifests: [image.descriptor],
          subject: image.descriptor,
        }),
      );
      await from.putManifest('src', digestOf(bytes), {
        bytes,
        mediaType: 'application/vnd.oci.image.index.v1+json',
      });
      const result = await copyImage(
        srcV1(from),
        { registry: to, repository: 'dst', tag: 'v1' },
        { referrers: true },
      );
      expect(result.manifests).toBe(2);
      const pushes = to.calls.filter((c) => c.method === 'putManifest').map((c) => c.args[1]);
      expect(pushes).toEqual(['v1', digestOf(bytes)]);
    });
  });

  describe('cancellation', () => {
    it('an aborted signal stops before anything is read', async () => {
      const from = spyRegistry(createMemoryRegistry());
      await pushImage(from, 'src', randomImage(), 'v1');
      const calls = from.calls.length;
      const controller = new AbortController();
      const reason = new Error('stop');
      controller.abort(reason);
      const stopped = await error(
        copyImage(
          srcV1(from),
          { registry: createMemoryRegistry(), repository: 'dst', tag: 'v1' },
          { signal: controller.signal },
        ),
      );
      expect(stopped).toBe(reason);
      expect(from.calls.length).toBe(calls);
    });

    it('an abort midway stops the copy, nothing is written after it returns, and no tag or index is visible', async () => {
      const from = createMemoryRegistry();
      const index = randomIndex({ layersPerImage: 3, sharedLayers: 1 });
      await pushIndex(from, 'src', index, 'multi');
      const controller = new AbortController();
      const reason = new Error('stop');
      const store = createMemoryRegistry();
      let blobs = 0;
      const to = spyRegistry(store, {
        hooks: {
          putBlob: (async (repository: string, body: never, options: never) => {
            if (++blobs === 3) controller.abort(reason);
            return await store.putBlob(repository, body, options);
          }) as never,
        },
      });
      const stopped = await error(
        copyImage(
          { registry: from, repository: 'src', reference: 'multi' },
          { registry: to, repository: 'dst', tag: 'multi' },
          { signal: controller.signal, concurrency: 2 },
        ),
      );
      expect(stopped).toBe(reason);
      const after = to.calls.length;
      await new Promise((resolve) => setTimeout(resolve, 20));
      expect(to.calls.length).toBe(after);
      // 1 shared + 6 own layers + 2 configs: far from all of them went through
      expect(to.count('putBlob')).toBeLessThan(9);
      expect(await store.headManifest('dst', 'multi')).toBeUndefined();
      expect(await store.headManifest('dst', index.index.digest)).toBeUndefined();
      expect(to.calls.filter((c) => c.method === 'putManifest').map((c) => c.args[1])).not.toContain('multi');
    });

    it('a failing store stops the siblings, and its error reaches the caller unchanged', async () => {
      const from = createMemoryRegistry();
      const index = randomIndex({ layersPerImage: 3 });
      await pushIndex(from, 'src', index, 'multi');
      const store = createMemoryRegistry();
      const denied = new RegistryError('DENIED', 'no room');
      let blobs = 0;
      const to = spyRegistry(store, {
        hooks: {
          putBlob: (async (repository: string, body: never, options: never) => {
            if (++blobs === 2) throw denied;
            return await store.putBlob(repository, body, options);
          }) as never,
        },
      });
      const failed = await error(
        copyImage(
          { registry: from, repository: 'src', reference: 'multi' },
          { registry: to, repository: 'dst', tag: 'multi' },
          { concurrency: 1 },
        ),
      );
      expect(failed).toBe(denied);
      // concurrency 1: the blob after the failing one never started
      expect(to.count('putBlob')).toBe(2);
      expect(to.count('putManifest')).toBe(0);
      expect((await store.listRepositories()).items).toEqual([]);
    });
  });

  describe('bounded concurrency', () => {
    async function peak(concurrency: number | undefined): Promise<number> {
      const from = createMemoryRegistry();
      const index = randomIndex({ layersPerImage: 4 });
      await pushIndex(from, 'src', index, 'multi');
      const store = createMemoryRegistry();
      let active = 0;
      let max = 0;
      const to = spyRegistry(store, {
        hooks: {
          // The destination repository is new, so no blob is asked about: each one is a put.
          putBlob: (async (...args: Parameters<Registry['putBlob']>) => {
            max = Math.max(max, ++active);
            try {
              await new Promise((resolve) => setImmediate(resolve));
              return await store.putBlob(...args);
            } finally {
              active--;
            }
          }) as never,
        },
      });
      await copyImage(
        { registry: from, repository: 'src', reference: 'multi' },
        { registry: to, repository: 'dst', tag: 'multi' },
        concurrency === undefined ? {} : { concurrency },
      );
      return max;
    }

    it('a wide copy whose operations each listen on its signal raises no listener-leak warning', async () => {
      const from = createMemoryRegistry();
      const store = createMemoryRegistry();
      await pushImage(from, 'src', randomImage({ layers: 20 }), 'v1');
      const to = spyRegistry(store, {
        hooks: {
          putBlob: (async (...args: Parameters<Registry['putBlob']>) => {
            // as the registry client does while a request is out
            const onAbort = () => {};
            args[2]?.signal?.addEventListener('abort', onAbort);
            await new Promise((resolve) => setImmediate(resolve));
            args[2]?.signal?.removeEventListener('abort', onAbort);
            return await store.putBlob(...args);
          }) as never,
        },
      });
      const warnings: Error[] = [];
      const onWarning = (warning: Error) => warnings.push(warning);
      process.on('warning', onWarning);
      try {
        await copyImage(srcV1(from), { registry: to, repository: 'dst', tag: 'v1' }, { concurrency: 16 });
        await new Promise((resolve) => setImmediate(resolve));
      } finally {
        process.off('warning', onWarning);
      }
      expect(warnings.map((w) => w.name)).not.toContain('MaxListenersExceededWarning');
      expect(to.count('putBlob')).toBe(21);
    });

    it('moves at most `concurrency` blobs at once (default 4)', async () => {
      expect(await peak(1)).toBe(1);
      expect(await peak(2)).toBe(2);
      expect(await peak(undefined)).toBe(4);
    });
  });

  describe('options and errors', () => {
    it('refuses bad options before any call', async () => {
      const from = spyRegistry(createMemoryRegistry());
      const source = srcV1(from);
      const destination = { registry: createMemoryRegistry(), repository: 'dst' };
      for (const concurrency of [0, -1, 1.5, Number.NaN]) {
        expect(
          isStowageError(await error(copyImage(source, destination, { concurrency })), 'OPTIONS_INVALID'),
        ).toBe(true);
      }
      expect(
        isStowageError(await error(copyImage(source, destination, { platforms: [] })), 'OPTIONS_INVALID'),
      ).toBe(true);
      expect(
        isStowageError(
          await error(copyImage(source, destination, { platforms: ['linux'] })),
          'PLATFORM_INVALID',
        ),
      ).toBe(true);
      expect(from.calls).toEqual([]);
    });

    it('logs one debug line per blob and manifest to the logger given, nothing else', async () => {
      const { registry: from, image } = await seeded({ layers: 1 });
      const lines: { level: string; fields: object; message?: string }[] = [];
      const logger = {
        debug: (fields: object, message?: string) => lines.push({ level: 'debug', fields, message }),
        info: (fields: object, message?: string) => lines.push({ level: 'info', fields, message }),
      };
      await copyImage(
        srcV1(from),
        { registry: createMemoryRegistry(), repository: 'dst', tag: 'v1' },
        { logger },
      );
      expect(lines.map((l) => [l.level, l.message])).toEqual([
        ['debug', 'blob copied'],
        ['debug', 'blob copied'],
        ['debug', 'manifest pushed'],
      ]);
      expect(lines[2]!.fields).toMatchObject({
        reference: 'v1',
        digest: image.manifest.digest,
        repository: 'dst',
      });
    });

    it('passes the source store error through for an unknown reference', async () => {
      const from = createMemoryRegistry();
      await pushImage(from, 'src', randomImage(), 'v1');
      const failed = await error(
        copyImage(
          { registry: from, repository: 'src', reference: 'nope' },
          { registry: createMemoryRegistry(), repository: 'dst' },
        ),
      );
      expect(isStowageError(failed, 'MANIFEST_UNKNOWN')).toBe(true);
    });
  });

  describe('diagnostics', () => {
    const blobs: CopyBlobMessage[] = [];
    const manifests: CopyManifestMessage[] = [];
    const onBlob = (message: unknown) => blobs.push(message as CopyBlobMessage);
    const onManifest = (message: unknown) => manifests.push(message as CopyManifestMessage);
    afterEach(() => {
      unsubscribe(COPY_BLOB_CHANNEL, onBlob);
      unsubscribe(COPY_MANIFEST_CHANNEL, onManifest);
    });

    it('publishes one message per blob and per manifest on stowage:copy:*', async () => {
      expect(COPY_BLOB_CHANNEL).toBe('stowage:copy:blob');
      expect(COPY_MANIFEST_CHANNEL).toBe('stowage:copy:manifest');
      subscribe(COPY_BLOB_CHANNEL, onBlob);
      subscribe(COPY_MANIFEST_CHANNEL, onManifest);
      const from = createMemoryRegistry();
      const to = spyRegistry(createMemoryRegistry(), { capabilities: { sparseIndex: false } });
      const index = randomIndex({ platforms: ['linux/amd64', 'linux/arm64'], sharedLayers: 1 });
      await pushIndex(from, 'src', index, 'multi');
      await pushImage(to, 'dst', index.images[1]!, 'old');
      const result = await copyImage(
        { registry: from, repository: 'src', reference: 'multi' },
        { registry: to, repository: 'dst', tag: 'multi' },
        { platforms: ['linux/arm64'], rewriteIndex: true },
      );
      expect(blobs.map((m) => m.outcome).sort()).toEqual(['skipped', 'skipped', 'skipped']);
      expect(blobs[0]).toMatchObject({
        source: { origin: from.origin, repository: 'src' },
        destination: { origin: to.origin, repository: 'dst' },
        bytes: 0,
      });
      expect(manifests.map((m) => [m.reference, m.rewritten, m.sparse])).toEqual([
        [index.images[1]!.manifest.digest, false, false],
        ['multi', true, false],
      ]);
      expect(manifests[1]).toMatchObject({ digest: result.digest, sourceDigest: index.index.digest });
    });
  });
});
