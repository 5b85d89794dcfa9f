import { type Descriptor, digestOf, MediaType } from '@stowage/oci';
import { createMemoryRegistry, type MemoryRegistry, randomBlob, spyRegistry } from '@stowage/testing';
import { describe, expect, it } from 'vitest';
import { copyImage } from './index.js';

/** `src:v1`: an OCI image whose second layer is non-distributable without urls; that layer is pushed only when `withForeign`. */
async function seeded(withForeign: boolean) {
  const registry: MemoryRegistry = createMemoryRegistry();
  const config = new TextEncoder().encode(JSON.stringify({ architecture: 'amd64', os: 'linux' }));
  const layer = randomBlob(2048, { seed: 1, mediaType: MediaType.OciLayer });
  const foreign = randomBlob(4096, { seed: 2, mediaType: MediaType.OciLayerNonDistributableGzip });
  const configDescriptor: Descriptor = {
    mediaType: MediaType.OciConfig,
    digest: digestOf(config),
    size: config.byteLength,
  };
  await registry.putBlob('src', config, { digest: configDescriptor.digest });
  await registry.putBlob('src', layer.bytes, { digest: layer.descriptor.digest });
  if (withForeign) await registry.putBlob('src', foreign.bytes, { digest: foreign.descriptor.digest });
  const bytes = new TextEncoder().encode(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: MediaType.OciManifest,
      config: configDescriptor,
      layers: [layer.descriptor, foreign.descriptor],
    }),
  );
  await registry.putManifest('src', 'v1', { bytes, mediaType: MediaType.OciManifest });
  return { registry, foreign: foreign.descriptor.digest };
}

describe('copyImage and non-distributable layers', () => {
  it('moves one the source holds, by default', async () => {
    const { registry, foreign } = await seeded(true);
    const to = createMemoryRegistry();
    await copyImage(
      { registry, repository: 'src', reference: 'v1' },
      { registry: to, repository: 'dst', tag: 'v1' },
    );
    expect(await to.headBlob('dst', foreign)).toBeDefined();
  });

  it('leaves out one the source lacks, and the copy still succeeds', async () => {
    const { registry, foreign } = await seeded(false);
    const to = createMemoryRegistry();
    const result = await copyImage(
      { registry, repository: 'src', reference: 'v1' },
      { registry: to, repository: 'dst', tag: 'v1' },
    );
    expect(result.blobsSkipped).toBe(1);
    expect(await to.headBlob('dst', foreign)).toBeUndefined();
    expect(await to.headManifest('dst', 'v1')).toBeDefined();
  });

  it("never fetches one with nonDistributable: 'skip', even when the source holds it (zot's sync)", async () => {
    const { registry, foreign } = await seeded(true);
    const source = spyRegistry(registry);
    const to = createMemoryRegistry();
    for (const staged of [false, true]) {
      await copyImage(
        { registry: source, repository: 'src', reference: 'v1' },
        { registry: to, repository: `dst${staged}`, tag: 'v1' },
        { nonDistributable: 'skip', staged },
      );
      expect(await to.headBlob(`dst${staged}`, foreign)).toBeUndefined();
    }
    const touched = source.calls.filter((c) => c.args[1] === foreign);
    expect(touched).toEqual([]);
  });
});
