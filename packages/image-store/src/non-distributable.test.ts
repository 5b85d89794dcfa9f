import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { type Descriptor, digestOf, MediaType } from '@stowage/oci';
import { type RandomBlob, randomBlob, randomImage } from '@stowage/testing';
import { describe, expect, it } from 'vitest';
import { refusalCode, tempRoots } from '../test/temp-roots.js';
import { createImageStore, type ImageStore } from './image-store.js';

const freshRoot = tempRoots('stowage-image-store-nondist-');
const code = refusalCode;

/**
 * An image whose second layer is non-distributable (no `urls`, so only its
 * media type says so): the config and first layer a store must hold, the
 * non-distributable layer it may lack, and the manifest.
 */
function nonDistributableImage(mediaType: string = MediaType.OciLayerNonDistributableGzip) {
  const image = randomImage({ layers: 1 });
  const layer = image.layers[0]!;
  const foreign = randomBlob(300, { mediaType });
  const value = {
    schemaVersion: 2,
    mediaType: MediaType.OciManifest,
    config: image.config.descriptor,
    layers: [layer.descriptor, foreign.descriptor],
  };
  const bytes = new TextEncoder().encode(JSON.stringify(value));
  const manifest = { mediaType: MediaType.OciManifest, digest: digestOf(bytes), size: bytes.byteLength };
  return { config: image.config, layer, foreign, manifest: { ...manifest, bytes } };
}

type Image = ReturnType<typeof nonDistributableImage>;

async function putBlobs(store: ImageStore, repository: string, blobs: readonly RandomBlob[]) {
  for (const blob of blobs) {
    await store.putBlob(repository, blob.bytes, {
      digest: blob.descriptor.digest,
      size: blob.descriptor.size,
    });
  }
}

function putManifest(store: ImageStore, repository: string, image: Image, tag = 'v1') {
  return store.putManifest(repository, tag, {
    bytes: image.manifest.bytes,
    mediaType: image.manifest.mediaType,
  });
}

describe('non-distributable layers in the image store', () => {
  it('accepts a manifest whose non-distributable layer (without urls) is absent; fsck and GC are content', async () => {
    const store = await createImageStore({ root: await freshRoot() });
    for (const mediaType of [MediaType.OciLayerNonDistributable, MediaType.DockerForeignLayer]) {
      const image = nonDistributableImage(mediaType);
      const repository = `nondist/absent-${mediaType === MediaType.DockerForeignLayer ? 'docker' : 'oci'}`;
      await putBlobs(store, repository, [image.config, image.layer]);
      expect((await putManifest(store, repository, image)).digest).toBe(image.manifest.digest);
      expect((await store.getManifest(repository, 'v1')).digest).toBe(image.manifest.digest);
      expect(await store.headBlob(repository, image.foreign.descriptor.digest)).toBeUndefined();
    }
    expect((await store.fsck()).problems).toEqual([]);
    expect((await store.garbageCollect({ gracePeriodMs: 0 })).blobsRemoved).toEqual([]);
    await store.close();
  });

  it('still refuses a manifest whose config or distributable layer is missing', async () => {
    const store = await createImageStore({ root: await freshRoot() });
    const image = nonDistributableImage();
    // the non-distributable layer being present does not stand in for the others
    await putBlobs(store, 'nondist/missing', [image.config, image.foreign]);
    expect(await code(putManifest(store, 'nondist/missing', image))).toBe('MANIFEST_BLOB_UNKNOWN');
    const other = nonDistributableImage();
    await putBlobs(store, 'nondist/missing', [other.layer]);
    expect(await code(putManifest(store, 'nondist/missing', other))).toBe('MANIFEST_BLOB_UNKNOWN');
    expect(await store.headManifest('nondist/missing', 'v1')).toBeUndefined();
    await store.close();
  });

  it('keeps a non-distributable layer that is present while a manifest needs it, and collects it after', async () => {
    const store = await createImageStore({ root: await freshRoot() });
    const image = nonDistributableImage();
    await putBlobs(store, 'nondist/present', [image.config, image.layer, image.foreign]);
    await putManifest(store, 'nondist/present', image);
    expect((await store.garbageCollect({ gracePeriodMs: 0 })).blobsRemoved).toEqual([]);
    expect(await store.headBlob('nondist/present', image.foreign.descriptor.digest)).toBeDefined();
    expect((await store.fsck()).problems).toEqual([]);

    // once no manifest needs it, it is an ordinary unreferenced blob
    await store.deleteManifest('nondist/present', image.manifest.digest);
    const report = await store.garbageCollect({ gracePeriodMs: 0 });
    expect(report.blobsRemoved).toContain(image.foreign.descriptor.digest);
    expect(await store.headBlob('nondist/present', image.foreign.descriptor.digest)).toBeUndefined();
    await store.close();
  });

  it('adopts a layout another tool wrote, with the non-distributable layer absent or present', async () => {
    const root = await freshRoot();
    const absent = nonDistributableImage();
    const present = nonDistributableImage();
    const write = async (
      dir: string,
      image: Image,
      blobs: readonly { bytes: Uint8Array; descriptor: Descriptor }[],
    ) => {
      await mkdir(join(dir, 'blobs/sha256'), { recursive: true });
      await writeFile(join(dir, 'oci-layout'), '{"imageLayoutVersion":"1.0.0"}');
      for (const blob of [...blobs, { bytes: image.manifest.bytes, descriptor: image.manifest }]) {
        await writeFile(
          join(dir, 'blobs/sha256', blob.descriptor.digest.slice('sha256:'.length)),
          blob.bytes,
        );
      }
      const { bytes: _, ...descriptor } = image.manifest;
      await writeFile(
        join(dir, 'index.json'),
        JSON.stringify({
          schemaVersion: 2,
          manifests: [{ ...descriptor, annotations: { 'org.opencontainers.image.ref.name': 'v1' } }],
        }),
      );
    };
    await write(join(root, 'ext/absent'), absent, [absent.config, absent.layer]);
    await write(join(root, 'ext/present'), present, [present.config, present.layer, present.foreign]);
    const store = await createImageStore({ root });
    expect((await store.getManifest('ext/absent', 'v1')).digest).toBe(absent.manifest.digest);
    expect((await store.getManifest('ext/present', 'v1')).digest).toBe(present.manifest.digest);
    expect((await store.garbageCollect({ gracePeriodMs: 0 })).blobsRemoved).toEqual([]);
    expect(await store.headBlob('ext/present', present.foreign.descriptor.digest)).toBeDefined();
    // adopted into the content store like the other blobs, so it mounts elsewhere
    const mounted = await store.mountBlob('ext/mounted', present.foreign.descriptor.digest, {
      from: 'ext/present',
    });
    expect(mounted?.digest).toBe(present.foreign.descriptor.digest);
    expect((await store.fsck()).problems).toEqual([]);
    await store.close();
  });
});
