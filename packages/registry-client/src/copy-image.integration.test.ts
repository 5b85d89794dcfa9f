import { isIndexMediaType } from '@stowage/oci';
import {
  createMemoryRegistry,
  type DockerRegistry,
  pushIndex,
  randomIndex,
  requirePeers,
  startDockerRegistry,
} from '@stowage/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRegistryClient, type RegistryClient } from './client.js';
import { copyImage } from './copy-image.js';

describe('copyImage with docker-registry', () => {
  if (!requirePeers('docker-registry')) return;

  let registry: DockerRegistry;
  let client: RegistryClient;
  const index = randomIndex({
    platforms: ['linux/amd64', 'linux/arm64'],
    sharedLayers: 2,
    layersPerImage: 1,
    layerSize: 32 * 1024,
  });

  beforeAll(async () => {
    registry = await startDockerRegistry();
    client = createRegistryClient({ registry: registry.host });
    await pushIndex(client, 'copy/source', index, 'multi');
  });

  afterAll(async () => {
    await client?.close();
    await registry?.stop();
  });

  it('copies a two-platform index between repositories by mounting, with identical digests', async () => {
    const result = await copyImage(
      { registry: client, repository: 'copy/source', reference: 'multi' },
      { registry: client, repository: 'copy/target', tag: 'multi' },
    );
    expect(result.digest).toBe(index.index.digest);
    expect(result.blobsCopied).toBe(0);
    expect(result.blobsMounted).toBe(6);
    expect(result.manifests).toBe(3);
    const copied = await client.getManifest('copy/target', 'multi');
    expect(isIndexMediaType(copied.mediaType)).toBe(true);
    expect(Buffer.from(copied.bytes).equals(Buffer.from(index.index.bytes))).toBe(true);
    for (const image of index.images) {
      expect((await client.getManifest('copy/target', image.manifest.digest)).digest).toBe(
        image.manifest.digest,
      );
    }
    const again = await copyImage(
      { registry: client, repository: 'copy/source', reference: 'multi' },
      { registry: client, repository: 'copy/target', tag: 'again' },
    );
    expect(again).toMatchObject({ blobsCopied: 0, blobsMounted: 0, blobsSkipped: 6 });
  });

  it('copies from docker-registry into the in-memory registry byte for byte', async () => {
    const memory = createMemoryRegistry();
    const result = await copyImage(
      { registry: client, repository: 'copy/source', reference: 'multi' },
      { registry: memory, repository: 'mirror/copy', tag: 'multi' },
    );
    expect(result).toMatchObject({ digest: index.index.digest, blobsCopied: 6, blobsMounted: 0 });
    const copied = await memory.getManifest('mirror/copy', 'multi');
    expect(Buffer.from(copied.bytes).equals(Buffer.from(index.index.bytes))).toBe(true);
    const back = await copyImage(
      { registry: memory, repository: 'mirror/copy', reference: 'multi' },
      { registry: client, repository: 'copy/back', tag: 'multi' },
    );
    expect(back.digest).toBe(index.index.digest);
  });
});
