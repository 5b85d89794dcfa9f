// Test images built by hand from the spec, independent of the package's own
// writers: werf stage images (Docker schema 2 or OCI, service labels in the
// config) and werf record images in both placeholder-layer variants (spec
// A.6), plus the checks the suite and the fixture share.
import { createHash, randomBytes } from 'node:crypto';
import { gunzipSync, gzipSync } from 'node:zlib';
import { type Digest, digestOf, MediaType, type Registry } from '@stowage/oci';
import { collect } from '@stowage/testing';
import { expect } from 'vitest';
import type { ImageInfo } from '../src/types.js';

const enc = new TextEncoder();

/** A blob as pushed: bytes and descriptor fields. */
export interface BuiltBlob {
  readonly bytes: Uint8Array;
  readonly digest: Digest;
  readonly size: number;
  readonly mediaType: string;
}

/** A single-platform image: manifest, config (bytes and parsed), layers. */
export interface BuiltImage {
  readonly manifest: BuiltBlob;
  readonly config: BuiltBlob;
  readonly configJson: Record<string, unknown>;
  readonly layers: readonly BuiltBlob[];
  readonly platform: { readonly os: string; readonly architecture: string; readonly variant?: string };
}

/** A manifest list over built images. */
export interface BuiltIndex {
  readonly manifest: BuiltBlob;
  readonly images: readonly BuiltImage[];
}

function blob(bytes: Uint8Array, mediaType: string): BuiltBlob {
  return { bytes, digest: digestOf(bytes), size: bytes.byteLength, mediaType };
}

export interface StageImageSpec {
  readonly labels: Readonly<Record<string, string>>;
  readonly platform?: string;
  readonly created?: string;
  readonly env?: readonly string[];
  readonly onBuild?: readonly string[];
  readonly volumes?: Readonly<Record<string, Record<string, never>>>;
  /** `config.Image` (docker's parent image ID). */
  readonly parentImage?: string;
  readonly format?: 'docker' | 'oci';
  readonly layers?: number;
  readonly layerSize?: number;
}

/** A stage image the way a werf build leaves it: labels in `config.Labels`, gzip-typed layers. */
export function buildStageImage(spec: StageImageSpec): BuiltImage {
  const format = spec.format ?? 'docker';
  const [os = 'linux', architecture = 'amd64', variant] = (spec.platform ?? 'linux/amd64').split('/');
  const layerType = format === 'docker' ? MediaType.DockerLayerGzip : MediaType.OciLayerGzip;
  const layers = Array.from({ length: spec.layers ?? 2 }, () =>
    blob(new Uint8Array(randomBytes(spec.layerSize ?? 300 + Math.floor(Math.random() * 200))), layerType),
  );
  const inner: Record<string, unknown> = { Labels: { ...spec.labels } };
  if (spec.env) inner.Env = [...spec.env];
  if (spec.onBuild) inner.OnBuild = [...spec.onBuild];
  if (spec.volumes) inner.Volumes = { ...spec.volumes };
  if (spec.parentImage) inner.Image = spec.parentImage;
  const configJson: Record<string, unknown> = {
    architecture,
    created: spec.created ?? '2024-05-06T07:08:09.123456789Z',
    os,
    ...(variant ? { variant } : {}),
    config: inner,
    rootfs: { type: 'layers', diff_ids: layers.map(() => `sha256:${randomBytes(32).toString('hex')}`) },
    history: layers.map(() => ({ created: '2024-05-06T07:08:09Z', created_by: 'werf stage' })),
  };
  const config = blob(
    enc.encode(JSON.stringify(configJson)),
    format === 'docker' ? MediaType.DockerConfig : MediaType.OciConfig,
  );
  const mediaType = format === 'docker' ? MediaType.DockerManifest : MediaType.OciManifest;
  const manifest = blob(
    enc.encode(
      JSON.stringify({
        schemaVersion: 2,
        mediaType,
        config: { mediaType: config.mediaType, size: config.size, digest: config.digest },
        layers: layers.map((l) => ({ mediaType: l.mediaType, size: l.size, digest: l.digest })),
      }),
    ),
    mediaType,
  );
  return {
    manifest,
    config,
    configJson,
    layers,
    platform: { os, architecture, ...(variant ? { variant } : {}) },
  };
}

/** A Docker manifest list over `images` (their manifests must be in the repository first). */
export function buildManifestList(images: readonly BuiltImage[]): BuiltIndex {
  const manifest = blob(
    enc.encode(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: MediaType.DockerManifestList,
        manifests: images.map((image) => ({
          mediaType: image.manifest.mediaType,
          size: image.manifest.size,
          digest: image.manifest.digest,
          platform: image.platform,
        })),
      }),
    ),
    MediaType.DockerManifestList,
  );
  return { manifest, images };
}

async function putBlobs(registry: Registry, repository: string, blobs: readonly BuiltBlob[]): Promise<void> {
  for (const b of blobs) {
    if (await registry.headBlob(repository, b.digest)) continue;
    await registry.putBlob(repository, b.bytes, { digest: b.digest, size: b.size });
  }
}

/** Pushes an image's blobs and its manifest under `tag`. */
export async function pushBuilt(
  registry: Registry,
  repository: string,
  image: BuiltImage,
  tag: string,
): Promise<void> {
  await putBlobs(registry, repository, [image.config, ...image.layers]);
  await registry.putManifest(repository, tag, {
    bytes: image.manifest.bytes,
    mediaType: image.manifest.mediaType,
  });
}

/** Pushes every child by digest, then the list under `tag`. */
export async function pushBuiltIndex(
  registry: Registry,
  repository: string,
  index: BuiltIndex,
  tag: string,
): Promise<void> {
  for (const image of index.images) await pushBuilt(registry, repository, image, image.manifest.digest);
  await registry.putManifest(repository, tag, {
    bytes: index.manifest.bytes,
    mediaType: index.manifest.mediaType,
  });
}

// --- record images (spec A.6) ---

/** sha256 of nothing: the diffID of werf < v2.75.4's zero-byte placeholder layer. */
export const EMPTY_DIFF_ID = 'sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';
/** sha256 of the 1024 zero bytes of an empty tar: the diffID of werf >= v2.75.4's layer. */
export const EMPTY_TAR_DIFF_ID = 'sha256:5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef';

/**
 * Which placeholder layer a record image carries: `empty-tar` (werf >= v2.75.4,
 * gzip of 1024 zero bytes), `zero-byte` (werf < v2.75.4, gzip of nothing), or
 * `raw-zero-byte` (a literally empty blob, as a tolerant reader must take too).
 */
export type RecordLayer = 'empty-tar' | 'zero-byte' | 'raw-zero-byte';

export function buildRecordImage(
  labels: Readonly<Record<string, string>>,
  layerKind: RecordLayer = 'empty-tar',
  created = new Date().toISOString(),
): BuiltImage {
  const content = layerKind === 'empty-tar' ? new Uint8Array(1024) : new Uint8Array(0);
  const layerBytes = layerKind === 'raw-zero-byte' ? content : new Uint8Array(gzipSync(content));
  const layer = blob(layerBytes, MediaType.DockerLayerGzip);
  const sortedLabels = Object.fromEntries(Object.entries(labels).sort(([a], [b]) => (a < b ? -1 : 1)));
  const configJson: Record<string, unknown> = {
    architecture: '',
    created,
    history: [{ created: '0001-01-01T00:00:00Z' }],
    os: '',
    rootfs: { type: 'layers', diff_ids: [layerKind === 'empty-tar' ? EMPTY_TAR_DIFF_ID : EMPTY_DIFF_ID] },
    config: { Labels: sortedLabels },
  };
  const config = blob(enc.encode(JSON.stringify(configJson)), MediaType.DockerConfig);
  const manifest = blob(
    enc.encode(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: MediaType.DockerManifest,
        config: { mediaType: config.mediaType, size: config.size, digest: config.digest },
        layers: [{ mediaType: layer.mediaType, size: layer.size, digest: layer.digest }],
      }),
    ),
    MediaType.DockerManifest,
  );
  return { manifest, config, configJson, layers: [layer], platform: { os: '', architecture: '' } };
}

// --- reading back ---

export async function readBlob(registry: Registry, repository: string, digest: Digest): Promise<Uint8Array> {
  const content = await registry.getBlob(repository, digest);
  return await collect(content.stream);
}

const decode = (bytes: Uint8Array): Record<string, unknown> =>
  JSON.parse(Buffer.from(bytes).toString('utf8')) as Record<string, unknown>;

/**
 * Checks a record image as read raw from the store has spec A.6's shape:
 * Docker schema 2 (ggcr field order), a Docker config with the labels (and
 * nothing else set), exactly one gzip layer that is the empty tar.
 */
export async function expectRecordImage(
  registry: Registry,
  repository: string,
  tag: string,
  labels: Readonly<Record<string, string>>,
): Promise<void> {
  const where = `${repository}:${tag}`;
  const manifest = await registry.getManifest(repository, tag);
  expect(manifest.mediaType, `${where} media type`).toBe(MediaType.DockerManifest);
  const m = decode(manifest.bytes) as {
    schemaVersion: number;
    mediaType: string;
    config: { mediaType: string; size: number; digest: Digest };
    layers: { mediaType: string; size: number; digest: Digest }[];
  };
  expect(Object.keys(m), `${where} manifest fields`).toEqual([
    'schemaVersion',
    'mediaType',
    'config',
    'layers',
  ]);
  expect(m.schemaVersion).toBe(2);
  expect(m.mediaType).toBe(MediaType.DockerManifest);
  expect(m.config.mediaType, `${where} config media type`).toBe(MediaType.DockerConfig);
  expect(m.layers, `${where} layers`).toHaveLength(1);
  const layer = m.layers[0]!;
  expect(layer.mediaType, `${where} layer media type`).toBe(MediaType.DockerLayerGzip);

  const configBytes = await readBlob(registry, repository, m.config.digest);
  expect(digestOf(configBytes)).toBe(m.config.digest);
  expect(configBytes.byteLength).toBe(m.config.size);
  const config = decode(configBytes) as {
    architecture: string;
    os: string;
    created: string;
    history: unknown;
    rootfs: { type: string; diff_ids: string[] };
    config: { Labels?: Record<string, string> };
  };
  expect(config.config?.Labels ?? {}, `${where} labels`).toEqual(labels);
  expect(Object.keys(config.config), `${where} config.config fields`).toEqual(['Labels']);
  expect(config.architecture, `${where} architecture`).toBe('');
  expect(config.os, `${where} os`).toBe('');
  expect(config.history, `${where} history`).toEqual([{ created: '0001-01-01T00:00:00Z' }]);
  expect(Number.isNaN(Date.parse(config.created)), `${where} created ${config.created}`).toBe(false);
  expect(config.rootfs, `${where} rootfs`).toEqual({ type: 'layers', diff_ids: [EMPTY_TAR_DIFF_ID] });

  const layerBytes = await readBlob(registry, repository, layer.digest);
  expect(digestOf(layerBytes)).toBe(layer.digest);
  expect(layerBytes.byteLength).toBe(layer.size);
  const tar = new Uint8Array(gunzipSync(layerBytes));
  expect(tar.byteLength, `${where} layer is the 1024-byte empty tar`).toBe(1024);
  expect(tar.every((b) => b === 0)).toBe(true);
  expect(`sha256:${createHash('sha256').update(tar).digest('hex')}`).toBe(EMPTY_TAR_DIFF_ID);
}

/**
 * The `ImageInfo` a stage image must be described with (spec A.10), computed
 * from what was pushed: `address` names the image (`<address>:<tag>`).
 */
export function expectedStageInfo(image: BuiltImage, address: string, tag: string): ImageInfo {
  const inner = (image.configJson.config ?? {}) as {
    Labels?: Record<string, string>;
    Env?: string[];
    OnBuild?: string[];
    Volumes?: Record<string, unknown>;
    Image?: string;
  };
  const created = Date.parse(String(image.configJson.created));
  return {
    name: `${address}:${tag}`,
    repository: address,
    tag,
    repoDigest: `${address}@${image.manifest.digest}`,
    onBuild: inner.OnBuild ?? null,
    env: inner.Env ?? null,
    id: image.config.digest,
    parentId: inner.Image || inner.Labels?.['werf.io/base-image-id'] || '',
    labels: inner.Labels ?? null,
    size: image.layers.reduce((sum, l) => sum + l.size, 0),
    createdAtUnixNano: Math.floor(created / 1000) * 1e9,
    volumes: inner.Volumes ?? null,
    isIndex: false,
    index: null,
  };
}

/** A fresh UUID-looking client ID (v4 shape). */
export function uuid(): string {
  return globalThis.crypto.randomUUID();
}
