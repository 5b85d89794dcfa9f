import { digestOf, isStowageError, MediaType } from '@stowage/oci';
import { describe, expect, it } from 'vitest';
import { createMemoryRegistry, type MemoryRegistry } from './memory-registry.js';
import { type RandomBlob, randomBlob, randomImage } from './random.js';

/** A Docker image whose second layer is a foreign layer without `urls`. */
function foreignLayerImage() {
  const image = randomImage({ layers: 1, format: 'docker' });
  const layer = image.layers[0]!;
  const foreign = randomBlob(300, { mediaType: MediaType.DockerForeignLayer });
  const bytes = new TextEncoder().encode(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: MediaType.DockerManifest,
      config: image.config.descriptor,
      layers: [layer.descriptor, foreign.descriptor],
    }),
  );
  return { config: image.config, layer, foreign, bytes, digest: digestOf(bytes) };
}

type Image = ReturnType<typeof foreignLayerImage>;

async function putBlobs(registry: MemoryRegistry, repository: string, blobs: readonly RandomBlob[]) {
  for (const blob of blobs)
    await registry.putBlob(repository, blob.bytes, { digest: blob.descriptor.digest });
}

function putManifest(registry: MemoryRegistry, repository: string, image: Image) {
  return registry.putManifest(repository, 'v1', { bytes: image.bytes, mediaType: MediaType.DockerManifest });
}

async function refusal(promise: Promise<unknown>): Promise<string | undefined> {
  try {
    await promise;
  } catch (error) {
    if (isStowageError(error)) return error.code;
    throw error;
  }
  return undefined;
}

describe('non-distributable layers in the memory registry', () => {
  it('accepts a manifest without its foreign layer (no urls), refuses one without a distributable blob', async () => {
    const registry = createMemoryRegistry();
    const image = foreignLayerImage();
    await putBlobs(registry, 'a', [image.config, image.layer]);
    expect((await putManifest(registry, 'a', image)).digest).toBe(image.digest);
    expect((await registry.getManifest('a', 'v1')).digest).toBe(image.digest);

    const noLayer = foreignLayerImage();
    await putBlobs(registry, 'b', [noLayer.config, noLayer.foreign]);
    expect(await refusal(putManifest(registry, 'b', noLayer))).toBe('MANIFEST_BLOB_UNKNOWN');
    const noConfig = foreignLayerImage();
    await putBlobs(registry, 'c', [noConfig.layer]);
    expect(await refusal(putManifest(registry, 'c', noConfig))).toBe('MANIFEST_BLOB_UNKNOWN');
  });

  it('keeps a foreign layer that is present while a manifest refers to it', async () => {
    const registry = createMemoryRegistry();
    const image = foreignLayerImage();
    await putBlobs(registry, 'a', [image.config, image.layer, image.foreign]);
    await putManifest(registry, 'a', image);
    expect((await registry.garbageCollect({ gracePeriodMs: 0 })).blobsRemoved).toEqual([]);
    expect(await registry.headBlob('a', image.foreign.descriptor.digest)).toBeDefined();

    await registry.deleteManifest('a', image.digest);
    const report = await registry.garbageCollect({ gracePeriodMs: 0 });
    expect(report.blobsRemoved).toContain(image.foreign.descriptor.digest);
    expect(await registry.headBlob('a', image.foreign.descriptor.digest)).toBeUndefined();
  });
});
