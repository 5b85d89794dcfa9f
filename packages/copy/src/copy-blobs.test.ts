import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { type Digest, digestOf, isStowageError, reopenerOf } from '@stowage/oci';
import {
  collect,
  createMemoryRegistry,
  pushImage,
  randomBlob,
  randomImage,
  spyRegistry,
} from '@stowage/testing';
import { describe, expect, it } from 'vitest';
import { COPY_BLOB_CHANNEL, type CopyBlobMessage, copyBlobs } from './index.js';

async function seeded(layers: number) {
  const registry = createMemoryRegistry();
  const image = randomImage({ layers });
  await pushImage(registry, 'src', image, 'v1');
  return { registry, image, layers: image.layers.map((l) => l.descriptor) };
}

describe('copyBlobs', () => {
  it('streams each blob once across origins (a digest listed twice too) and the bytes arrive whole', async () => {
    const { registry, image, layers } = await seeded(2);
    const from = spyRegistry(registry);
    const to = spyRegistry(createMemoryRegistry());
    const result = await copyBlobs({
      source: { registry: from, repository: 'src' },
      destination: { registry: to, repository: 'dst' },
      blobs: [...layers, ...layers],
    });
    expect(result).toEqual({
      blobsCopied: 2,
      blobsSkipped: 0,
      blobsMounted: 0,
      bytesCopied: layers.reduce((sum, l) => sum + l.size, 0),
    });
    expect(from.count('getBlob')).toBe(2);
    expect(to.count('putBlob')).toBe(2);
    expect(to.count('mountBlob')).toBe(0);
    for (const layer of image.layers) {
      const content = await to.getBlob('dst', layer.descriptor.digest);
      expect(digestOf(await collect(content.stream))).toBe(layer.descriptor.digest);
    }
  });

  it('hands the destination a body it can reopen: a new GET from the source, the same bytes, checked again', async () => {
    const { registry, image, layers } = await seeded(1);
    const from = spyRegistry(registry);
    const sink = createMemoryRegistry();
    const reread: Uint8Array[] = [];
    // a destination that reads the body, then (as a client restarting a broken upload would) reopens it
    const to: typeof sink = Object.assign(Object.create(sink), {
      async putBlob(
        repository: string,
        body: AsyncIterable<Uint8Array>,
        options: { digest: Digest; size?: number },
      ) {
        const reopen = reopenerOf(body);
        expect(reopen).toBeDefined();
        await collect(body);
        reread.push(await collect(await (reopen as NonNullable<typeof reopen>)()));
        return sink.putBlob(repository, reread.at(-1) as Uint8Array, options);
      },
    });
    await copyBlobs({
      source: { registry: from, repository: 'src' },
      destination: { registry: to, repository: 'dst' },
      blobs: layers,
    });
    expect(from.count('getBlob')).toBe(2);
    expect(reread.map((bytes) => digestOf(bytes))).toEqual([image.layers[0]?.descriptor.digest]);
  });

  it('mounts within one origin and moves no bytes', async () => {
    const { registry, layers } = await seeded(3);
    const from = spyRegistry(registry);
    const to = spyRegistry(registry);
    const result = await copyBlobs({
      source: { registry: from, repository: 'src' },
      destination: { registry: to, repository: 'dst' },
      blobs: layers,
    });
    expect(result).toMatchObject({ blobsMounted: 3, blobsCopied: 0, bytesCopied: 0 });
    expect(from.count('getBlob')).toBe(0);
    expect(to.count('putBlob')).toBe(0);
    for (const layer of layers) expect(await registry.headBlob('dst', layer.digest)).toBeDefined();
  });

  it('skips what the destination has, and within one repository touches nothing', async () => {
    const { registry, layers } = await seeded(2);
    const to = spyRegistry(createMemoryRegistry());
    const [first, second] = layers;
    if (!first || !second) throw new Error('two layers expected');
    const content = await registry.getBlob('src', first.digest);
    await to.putBlob('dst', content.stream, { digest: first.digest, size: first.size });
    const result = await copyBlobs({
      source: { registry, repository: 'src' },
      destination: { registry: to, repository: 'dst' },
      blobs: layers,
    });
    expect(result).toMatchObject({ blobsSkipped: 1, blobsCopied: 1 });

    const same = spyRegistry(registry);
    const inPlace = await copyBlobs({
      source: { registry: same, repository: 'src' },
      destination: { registry: same, repository: 'src' },
      blobs: layers,
    });
    expect(inPlace).toMatchObject({ blobsSkipped: 2, blobsCopied: 0, blobsMounted: 0 });
    expect(same.count('headBlob') + same.count('getBlob') + same.count('putBlob')).toBe(0);
  });

  it('a blob the source lacks rejects with its BLOB_UNKNOWN, and nothing queued after it starts', async () => {
    const { registry, layers } = await seeded(2);
    const missing = randomBlob(64).descriptor;
    const to = spyRegistry(createMemoryRegistry());
    const error = await copyBlobs({
      source: { registry, repository: 'src' },
      destination: { registry: to, repository: 'dst' },
      blobs: [missing, ...layers],
      concurrency: 1,
    }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(isStowageError(error, 'BLOB_UNKNOWN')).toBe(true);
    // the upload of the missing blob began with the source's GET (its body failed on the first
    // read); nothing after it started, and the destination holds none of them
    expect(to.count('putBlob')).toBe(1);
    for (const blob of [missing, ...layers]) expect(await to.headBlob('dst', blob.digest)).toBeUndefined();
  });

  it('refuses a bad concurrency before any request, and an empty list makes none', async () => {
    const { registry, layers } = await seeded(1);
    const to = spyRegistry(createMemoryRegistry());
    const bad = await copyBlobs({
      source: { registry, repository: 'src' },
      destination: { registry: to, repository: 'dst' },
      blobs: layers,
      concurrency: 0,
    }).catch((e: unknown) => e);
    expect(isStowageError(bad, 'OPTIONS_INVALID')).toBe(true);
    const none = await copyBlobs({
      source: { registry, repository: 'src' },
      destination: { registry: to, repository: 'dst' },
      blobs: [],
    });
    expect(none).toEqual({ blobsCopied: 0, blobsSkipped: 0, blobsMounted: 0, bytesCopied: 0 });
    expect(to.count('capabilities') + to.count('headBlob') + to.count('putBlob')).toBe(0);
  });

  it('publishes one stowage:copy:blob message per blob, as copyImage does', async () => {
    const { registry, layers } = await seeded(2);
    const messages: CopyBlobMessage[] = [];
    const listener = (message: unknown) => messages.push(message as CopyBlobMessage);
    subscribe(COPY_BLOB_CHANNEL, listener);
    try {
      await copyBlobs({
        source: { registry, repository: 'src' },
        destination: { registry: createMemoryRegistry(), repository: 'dst' },
        blobs: layers,
      });
    } finally {
      unsubscribe(COPY_BLOB_CHANNEL, listener);
    }
    expect(messages.map((m) => [m.digest, m.outcome]).sort()).toEqual(
      layers.map((l) => [l.digest, 'copied']).sort(),
    );
  });
});
