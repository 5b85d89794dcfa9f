import { digestOf, MediaType, parseImageConfig, parseManifest } from '@stowage/oci';
import { describe, expect, it } from 'vitest';
import { randomArtifact, randomBytes, randomImage, randomIndex, randomTarLayer } from './random.js';

describe('random builders', () => {
  it('are deterministic for a seed and differ without one', () => {
    expect(randomBytes(1000, 42)).toEqual(randomBytes(1000, 42));
    expect(randomBytes(1000, 42)).not.toEqual(randomBytes(1000, 43));
    expect(randomImage({ seed: 7 }).manifest.digest).toBe(randomImage({ seed: 7 }).manifest.digest);
    expect(randomImage().manifest.digest).not.toBe(randomImage().manifest.digest);
  });

  it('builds valid images whose digests match their bytes', () => {
    const image = randomImage({ layers: 3, layerSize: 333, format: 'docker', platform: 'linux/arm64' });
    const parsed = parseManifest(image.manifest.bytes);
    expect(parsed.digest).toBe(image.manifest.digest);
    expect(parsed.kind).toBe('image');
    for (const blob of image.blobs) expect(digestOf(blob.bytes)).toBe(blob.descriptor.digest);
    const config = parseImageConfig(image.config.bytes);
    expect(config.architecture).toBe('arm64');
    expect(config.rootfs.diff_ids).toEqual(image.layers.map((l) => l.descriptor.digest));
  });

  it('builds indexes with shared layers and platforms', () => {
    const index = randomIndex({
      platforms: ['linux/amd64', 'linux/arm/v6'],
      sharedLayers: 2,
      layersPerImage: 1,
    });
    const parsed = parseManifest(index.index.bytes);
    expect(parsed.kind).toBe('index');
    expect(index.images.map((i) => i.platform)).toEqual([
      { os: 'linux', architecture: 'amd64' },
      { os: 'linux', architecture: 'arm', variant: 'v6' },
    ]);
    const [a, b] = index.images;
    expect(a?.layers.slice(0, 2)).toEqual(b?.layers.slice(0, 2));
    expect(a?.layers[2]?.descriptor.digest).not.toBe(b?.layers[2]?.descriptor.digest);
  });

  it('builds tar layers: one regular file of random bytes in a valid ustar archive', () => {
    const layer = randomTarLayer(1500, { seed: 3 });
    expect(randomTarLayer(1500, { seed: 3 })).toEqual(layer);
    const { bytes } = layer;
    // a header block, the file padded to whole blocks, two zero blocks
    expect(bytes.byteLength).toBe(512 + 1536 + 1024);
    expect(layer.descriptor).toEqual({ mediaType: MediaType.OciLayer, digest: digestOf(bytes), size: 3072 });
    const text = (from: number, length: number) =>
      new TextDecoder().decode(bytes.subarray(from, from + length)).replace(/\0.*$/s, '');
    expect(text(0, 100)).toMatch(/^stowage-[0-9a-f]{32}$/);
    expect(Number.parseInt(text(124, 12), 8)).toBe(1500);
    expect(text(156, 1)).toBe('0');
    expect(text(257, 6)).toBe('ustar');
    // the checksum: the sum of the header's bytes with its own field read as spaces
    const header = Uint8Array.from(bytes.subarray(0, 512));
    header.fill(0x20, 148, 156);
    expect(Number.parseInt(text(148, 8), 8)).toBe(header.reduce((sum, byte) => sum + byte, 0));
    expect(bytes.subarray(512, 2012)).toEqual(randomBytes(1500, 3));
    expect(bytes.subarray(2012).every((byte) => byte === 0)).toBe(true);
    // in an image, a layer's digest is its diff ID
    const image = randomImage({ layers: 2, tarLayers: true, format: 'docker' });
    expect(image.layers.map((l) => l.descriptor.mediaType)).toEqual([
      MediaType.DockerLayer,
      MediaType.DockerLayer,
    ]);
    expect(parseImageConfig(image.config.bytes).rootfs.diff_ids).toEqual(
      image.layers.map((l) => l.descriptor.digest),
    );
  });

  it('builds artifacts that refer to a subject', () => {
    const image = randomImage();
    const artifact = randomArtifact({ subject: image.descriptor, artifactType: 'application/vnd.x' });
    const parsed = parseManifest(artifact.manifest.bytes);
    expect(parsed.manifest.subject?.digest).toBe(image.manifest.digest);
    expect(parsed.manifest.artifactType).toBe('application/vnd.x');
  });
});
