import { digestOf, parseImageConfig, parseManifest } from '@stowage/oci';
import { describe, expect, it } from 'vitest';
import { randomArtifact, randomBytes, randomImage, randomIndex } from './random.js';

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

  it('builds artifacts that refer to a subject', () => {
    const image = randomImage();
    const artifact = randomArtifact({ subject: image.descriptor, artifactType: 'application/vnd.x' });
    const parsed = parseManifest(artifact.manifest.bytes);
    expect(parsed.manifest.subject?.digest).toBe(image.manifest.digest);
    expect(parsed.manifest.artifactType).toBe('application/vnd.x');
  });
});
