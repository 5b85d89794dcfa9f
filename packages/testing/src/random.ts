import { randomInt } from 'node:crypto';
import {
  type BlobBody,
  type Descriptor,
  type Digest,
  digestOf,
  MediaType,
  type Platform,
  parsePlatform,
  type Registry,
} from '@stowage/oci';

/** A blob built for tests: its descriptor and its bytes. */
export interface RandomBlob {
  readonly descriptor: Descriptor;
  readonly bytes: Uint8Array;
}

/** Manifest bytes serialized once, with the digest of exactly those bytes. */
export interface RandomManifest {
  readonly digest: Digest;
  readonly mediaType: string;
  readonly size: number;
  readonly bytes: Uint8Array;
}

export interface RandomImage {
  readonly manifest: RandomManifest;
  readonly config: RandomBlob;
  readonly layers: readonly RandomBlob[];
  readonly platform: Platform;
  /** Config and layers, in push order. */
  readonly blobs: readonly RandomBlob[];
  /** A descriptor pointing at the manifest (with its platform), for indexes and subjects. */
  readonly descriptor: Descriptor;
}

export interface RandomIndex {
  readonly index: RandomManifest;
  readonly images: readonly RandomImage[];
  readonly descriptor: Descriptor;
}

export interface RandomImageOptions {
  readonly layers?: number;
  /** Bytes per layer. Default 1 KiB. */
  readonly layerSize?: number;
  readonly format?: 'oci' | 'docker';
  readonly platform?: Platform | string;
  /** Same seed, same bytes. Without one every call is different. */
  readonly seed?: number;
  /** Layers to put first, shared with other images (see `randomIndex`'s `sharedLayers`). */
  readonly sharedLayers?: readonly RandomBlob[];
  readonly annotations?: Readonly<Record<string, string>>;
  readonly subject?: Descriptor;
  readonly artifactType?: string;
  /**
   * Each own layer a tar archive holding its random bytes as one file (see
   * `randomTarLayer`), so a container engine (podman) can unpack it.
   */
  readonly tarLayers?: boolean;
}

export interface RandomIndexOptions {
  readonly platforms?: readonly (Platform | string)[];
  readonly format?: 'oci' | 'docker';
  readonly layersPerImage?: number;
  readonly layerSize?: number;
  /** Layers every child image has in common (in addition to its own). */
  readonly sharedLayers?: number;
  readonly seed?: number;
  readonly annotations?: Readonly<Record<string, string>>;
  /** Every layer (shared ones too) a tar archive, as `RandomImageOptions.tarLayers`. */
  readonly tarLayers?: boolean;
}

const encoder = new TextEncoder();

/** A small, fast, seedable PRNG (mulberry32): 32 random bits per call, the same sequence for the same seed. */
export function prng(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  };
}

function freshSeed(): number {
  return randomInt(0, 2 ** 32 - 1);
}

/** `size` pseudo-random (incompressible) bytes; deterministic for a seed. */
export function randomBytes(size: number, seed: number = freshSeed()): Uint8Array {
  const next = prng(seed);
  const bytes = new Uint8Array(size);
  const words = new Uint32Array(bytes.buffer, 0, size >>> 2);
  for (let i = 0; i < words.length; i++) words[i] = next();
  for (let i = words.length * 4; i < size; i++) bytes[i] = next() & 0xff;
  return bytes;
}

/** A random blob with its descriptor. */
export function randomBlob(size: number, options: { seed?: number; mediaType?: string } = {}): RandomBlob {
  const bytes = randomBytes(size, options.seed);
  return {
    bytes,
    descriptor: { mediaType: options.mediaType ?? MediaType.OciLayer, digest: digestOf(bytes), size },
  };
}

/** A ustar header field: `value` as ASCII, NUL-padded to `length`. */
function tarField(header: Uint8Array, offset: number, length: number, value: string): void {
  header.set(encoder.encode(value).subarray(0, length), offset);
}

/**
 * A layer a container engine can unpack: an uncompressed tar archive holding
 * `size` pseudo-random bytes as one regular file (named after their digest, so
 * two layers never write the same path). Its digest is also its diff ID, as the
 * uncompressed `OciLayer` and `DockerLayer` media types say. Deterministic for a seed.
 */
export function randomTarLayer(
  size: number,
  options: { seed?: number; mediaType?: string } = {},
): RandomBlob {
  const content = randomBytes(size, options.seed);
  const header = new Uint8Array(512);
  tarField(header, 0, 100, `stowage-${digestOf(content).slice(7, 39)}`);
  tarField(header, 100, 8, '0000644');
  tarField(header, 108, 8, '0000000');
  tarField(header, 116, 8, '0000000');
  tarField(header, 124, 12, size.toString(8).padStart(11, '0'));
  // 2024-01-01T00:00:00Z, the images' creation time
  tarField(header, 136, 12, (1704067200).toString(8).padStart(11, '0'));
  tarField(header, 148, 8, '        ');
  tarField(header, 156, 1, '0');
  tarField(header, 257, 6, 'ustar');
  tarField(header, 263, 2, '00');
  let checksum = 0;
  for (const byte of header) checksum += byte;
  tarField(header, 148, 8, `${checksum.toString(8).padStart(6, '0')}\0 `);
  // the file padded to a whole block, then the two zero blocks that end an archive
  const bytes = new Uint8Array(512 + Math.ceil(size / 512) * 512 + 1024);
  bytes.set(header, 0);
  bytes.set(content, 512);
  return {
    bytes,
    descriptor: {
      mediaType: options.mediaType ?? MediaType.OciLayer,
      digest: digestOf(bytes),
      size: bytes.byteLength,
    },
  };
}

function manifestOf(value: unknown, mediaType: string): RandomManifest {
  const bytes = encoder.encode(JSON.stringify(value));
  return { digest: digestOf(bytes), mediaType, size: bytes.byteLength, bytes };
}

function toPlatform(platform: Platform | string | undefined): Platform {
  if (platform === undefined) return { os: 'linux', architecture: 'amd64' };
  return typeof platform === 'string' ? parsePlatform(platform) : platform;
}

/** A random single-platform image: config, layers and a manifest serialized once. */
export function randomImage(options: RandomImageOptions = {}): RandomImage {
  const seed = options.seed ?? freshSeed();
  const format = options.format ?? 'oci';
  const platform = toPlatform(options.platform);
  const layerType = format === 'oci' ? MediaType.OciLayer : MediaType.DockerLayer;
  const layerOf = options.tarLayers ? randomTarLayer : randomBlob;
  const own = Array.from({ length: options.layers ?? 1 }, (_, i) =>
    layerOf(options.layerSize ?? 1024, { seed: (seed + 7919 * (i + 1)) >>> 0, mediaType: layerType }),
  );
  const layers = [...(options.sharedLayers ?? []), ...own];
  const configValue = {
    created: '2024-01-01T00:00:00Z',
    architecture: platform.architecture,
    os: platform.os,
    ...(platform.variant ? { variant: platform.variant } : {}),
    config: { Env: ['PATH=/usr/local/bin:/usr/bin:/bin'], Labels: { 'stowage.test.seed': String(seed) } },
    rootfs: { type: 'layers', diff_ids: layers.map((l) => l.descriptor.digest) },
    history: layers.map(() => ({ created: '2024-01-01T00:00:00Z', created_by: 'stowage test' })),
  };
  const configBytes = encoder.encode(JSON.stringify(configValue));
  const config: RandomBlob = {
    bytes: configBytes,
    descriptor: {
      mediaType: format === 'oci' ? MediaType.OciConfig : MediaType.DockerConfig,
      digest: digestOf(configBytes),
      size: configBytes.byteLength,
    },
  };
  const mediaType = format === 'oci' ? MediaType.OciManifest : MediaType.DockerManifest;
  const manifest = manifestOf(
    {
      schemaVersion: 2,
      mediaType,
      ...(options.artifactType ? { artifactType: options.artifactType } : {}),
      config: config.descriptor,
      layers: layers.map((l) => l.descriptor),
      ...(options.subject ? { subject: options.subject } : {}),
      ...(options.annotations ? { annotations: options.annotations } : {}),
    },
    mediaType,
  );
  return {
    manifest,
    config,
    layers,
    platform,
    blobs: [config, ...layers],
    descriptor: { mediaType, digest: manifest.digest, size: manifest.size, platform },
  };
}

/** A multi-platform index whose children may share layers. */
export function randomIndex(options: RandomIndexOptions = {}): RandomIndex {
  const seed = options.seed ?? freshSeed();
  const format = options.format ?? 'oci';
  const layerType = format === 'oci' ? MediaType.OciLayer : MediaType.DockerLayer;
  const layerOf = options.tarLayers ? randomTarLayer : randomBlob;
  const shared = Array.from({ length: options.sharedLayers ?? 0 }, (_, i) =>
    layerOf(options.layerSize ?? 1024, { seed: (seed + 104729 * (i + 1)) >>> 0, mediaType: layerType }),
  );
  const platforms = options.platforms ?? ['linux/amd64', 'linux/arm64'];
  const images = platforms.map((platform, i) =>
    randomImage({
      seed: (seed + 15485863 * (i + 1)) >>> 0,
      format,
      platform,
      sharedLayers: shared,
      layers: options.layersPerImage ?? 1,
      ...(options.tarLayers ? { tarLayers: true } : {}),
      ...(options.layerSize === undefined ? {} : { layerSize: options.layerSize }),
    }),
  );
  const mediaType = format === 'oci' ? MediaType.OciIndex : MediaType.DockerManifestList;
  const index = manifestOf(
    {
      schemaVersion: 2,
      mediaType,
      manifests: images.map((image) => image.descriptor),
      ...(options.annotations ? { annotations: options.annotations } : {}),
    },
    mediaType,
  );
  return { index, images, descriptor: { mediaType, digest: index.digest, size: index.size } };
}

/** The 2-byte `{}` config OCI artifacts use. */
export const emptyConfig: RandomBlob = {
  bytes: encoder.encode('{}'),
  descriptor: { mediaType: MediaType.OciEmpty, digest: digestOf('{}'), size: 2 },
};

/** An OCI artifact manifest (empty config, one small layer) that refers to `subject`. */
export function randomArtifact(options: {
  subject: Descriptor;
  artifactType: string;
  seed?: number;
  annotations?: Readonly<Record<string, string>>;
}): RandomImage {
  const layer = randomBlob(64, {
    mediaType: 'application/vnd.stowage.test.blob',
    ...(options.seed === undefined ? {} : { seed: options.seed }),
  });
  const manifest = manifestOf(
    {
      schemaVersion: 2,
      mediaType: MediaType.OciManifest,
      artifactType: options.artifactType,
      config: emptyConfig.descriptor,
      layers: [layer.descriptor],
      subject: options.subject,
      ...(options.annotations ? { annotations: options.annotations } : {}),
    },
    MediaType.OciManifest,
  );
  return {
    manifest,
    config: emptyConfig,
    layers: [layer],
    platform: { os: 'unknown', architecture: 'unknown' },
    blobs: [emptyConfig, layer],
    descriptor: {
      mediaType: MediaType.OciManifest,
      digest: manifest.digest,
      size: manifest.size,
      artifactType: options.artifactType,
    },
  };
}

/** Pushes an image's blobs (skipping those present), then its manifest under `tag` (or its digest). */
export async function pushImage(
  registry: Registry,
  repository: string,
  image: RandomImage,
  tag?: string,
): Promise<Digest> {
  for (const blob of image.blobs) {
    if (await registry.headBlob(repository, blob.descriptor.digest)) continue;
    await registry.putBlob(repository, blob.bytes, {
      digest: blob.descriptor.digest,
      size: blob.descriptor.size,
    });
  }
  const result = await registry.putManifest(repository, tag ?? image.manifest.digest, {
    bytes: image.manifest.bytes,
    mediaType: image.manifest.mediaType,
  });
  return result.digest;
}

/** Pushes every child image by digest, then the index under `tag` (or its digest). */
export async function pushIndex(
  registry: Registry,
  repository: string,
  index: RandomIndex,
  tag?: string,
): Promise<Digest> {
  for (const image of index.images) await pushImage(registry, repository, image);
  const result = await registry.putManifest(repository, tag ?? index.index.digest, {
    bytes: index.index.bytes,
    mediaType: index.index.mediaType,
  });
  return result.digest;
}

/** Reads a stream (or any async iterable of bytes) to the end. */
export async function collect(stream: AsyncIterable<Uint8Array> | BlobBody): Promise<Uint8Array> {
  if (stream instanceof Uint8Array) return stream;
  const chunks: Uint8Array[] = [];
  let size = 0;
  for await (const chunk of stream) {
    chunks.push(chunk);
    size += chunk.byteLength;
  }
  const out = new Uint8Array(size);
  let offset = 0;
  for (const chunk of chunks) {
    out.set(chunk, offset);
    offset += chunk.byteLength;
  }
  return out;
}
