import { type Digest, digestOf, isStowageError, MediaType, type Registry } from '@stowage/oci';
import { createMemoryRegistry, randomBlob } from '@stowage/testing';
import { describe, expect, it } from 'vitest';
import { RepoContext } from './context.js';
import { createdAtUnixNano, describeImage, repoDigestOf } from './image-info.js';

const encoder = new TextEncoder();
const ADDRESS = 'registry.example.com/group/project';

interface PushedImage {
  readonly digest: Digest;
  readonly size: number;
  readonly mediaType: string;
  readonly config: Digest;
  readonly layers: readonly { digest: Digest; size: number }[];
}

/** Pushes an image whose config is `config` (plus rootfs), with `layers` random layers. */
async function pushConfigImage(
  registry: Registry,
  repository: string,
  reference: string | undefined,
  setup: { config: Record<string, unknown>; layers?: number[]; format?: 'docker' | 'oci' },
): Promise<PushedImage> {
  const docker = (setup.format ?? 'docker') === 'docker';
  const layers = (setup.layers ?? [100]).map((size) =>
    randomBlob(size, { mediaType: docker ? MediaType.DockerLayerGzip : MediaType.OciLayerGzip }),
  );
  const configBytes = encoder.encode(
    JSON.stringify({
      architecture: 'amd64',
      os: 'linux',
      ...setup.config,
      rootfs: { type: 'layers', diff_ids: layers.map((l) => l.descriptor.digest) },
    }),
  );
  const config = {
    mediaType: docker ? MediaType.DockerConfig : MediaType.OciConfig,
    size: configBytes.byteLength,
    digest: digestOf(configBytes),
  };
  await registry.putBlob(repository, configBytes, { digest: config.digest });
  for (const layer of layers)
    await registry.putBlob(repository, layer.bytes, { digest: layer.descriptor.digest });
  const mediaType = docker ? MediaType.DockerManifest : MediaType.OciManifest;
  const bytes = encoder.encode(
    JSON.stringify({ schemaVersion: 2, mediaType, config, layers: layers.map((l) => l.descriptor) }),
  );
  const digest = digestOf(bytes);
  await registry.putManifest(repository, reference ?? digest, { bytes, mediaType });
  return {
    digest,
    size: bytes.byteLength,
    mediaType,
    config: config.digest,
    layers: layers.map((l) => ({ digest: l.descriptor.digest, size: l.descriptor.size })),
  };
}

function context(registry: Registry, address = ADDRESS): RepoContext {
  return new RepoContext({ registry, repository: 'group/project', address, project: 'myproj' });
}

describe('describeImage', () => {
  it('answers every field of werf image.Info for a Docker schema 2 image', async () => {
    const registry = createMemoryRegistry();
    const image = await pushConfigImage(registry, 'group/project', 'stage-tag', {
      layers: [100, 250],
      config: {
        created: '2024-01-02T03:04:05.987654321Z',
        config: {
          Env: ['PATH=/bin', 'A=1'],
          OnBuild: ['RUN true'],
          Volumes: { '/data': {} },
          Image: 'sha256:parent',
          Labels: { werf: 'myproj', 'werf.io/base-image-id': 'sha256:label-parent' },
        },
      },
    });
    const info = await describeImage(context(registry), 'stage-tag');
    expect(info).toEqual({
      name: `${ADDRESS}:stage-tag`,
      repository: ADDRESS,
      tag: 'stage-tag',
      repoDigest: `${ADDRESS}@${image.digest}`,
      onBuild: ['RUN true'],
      env: ['PATH=/bin', 'A=1'],
      id: image.config,
      parentId: 'sha256:parent',
      labels: { werf: 'myproj', 'werf.io/base-image-id': 'sha256:label-parent' },
      size: 350,
      createdAtUnixNano: Date.UTC(2024, 0, 2, 3, 4, 5) * 1e6,
      volumes: { '/data': {} },
      isIndex: false,
      index: null,
    });
  });

  it('takes the parent from the werf.io/base-image-id label without config.Image; no labels, env, created → null and 0', async () => {
    const registry = createMemoryRegistry();
    await pushConfigImage(registry, 'group/project', 'with-label', {
      format: 'oci',
      config: { config: { Labels: { 'werf.io/base-image-id': 'sha256:from-label' } } },
    });
    await pushConfigImage(registry, 'group/project', 'bare', { config: {} });
    const ctx = context(registry);
    expect(await describeImage(ctx, 'with-label')).toMatchObject({ parentId: 'sha256:from-label' });
    expect(await describeImage(ctx, 'bare')).toMatchObject({
      parentId: '',
      labels: null,
      env: null,
      onBuild: null,
      volumes: null,
      createdAtUnixNano: 0,
    });
  });

  it('describes an index by its own digest with one entry per child, read by digest', async () => {
    const registry = createMemoryRegistry();
    const amd = await pushConfigImage(registry, 'group/project', undefined, {
      layers: [10],
      config: { created: '2024-01-01T00:00:00Z' },
    });
    const arm = await pushConfigImage(registry, 'group/project', undefined, {
      layers: [20, 30],
      config: { architecture: 'arm64', config: { Labels: { a: 'b' } } },
    });
    const bytes = encoder.encode(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: MediaType.DockerManifestList,
        manifests: [amd, arm].map((m, i) => ({
          mediaType: m.mediaType,
          size: m.size,
          digest: m.digest,
          platform: { architecture: i === 0 ? 'amd64' : 'arm64', os: 'linux' },
        })),
      }),
    );
    const digest = digestOf(bytes);
    await registry.putManifest('group/project', 'multi', { bytes, mediaType: MediaType.DockerManifestList });
    const info = await describeImage(context(registry), 'multi');
    expect(info).toMatchObject({
      name: `${ADDRESS}:multi`,
      tag: 'multi',
      repoDigest: `${ADDRESS}@${digest}`,
      id: digest,
      isIndex: true,
      labels: null,
      size: 60,
    });
    expect(info?.index).toHaveLength(2);
    expect(info?.index?.[0]).toMatchObject({
      name: `${ADDRESS}@${amd.digest}`,
      tag: '',
      repoDigest: `${ADDRESS}@${amd.digest}`,
      id: amd.config,
      size: 10,
      createdAtUnixNano: Date.UTC(2024, 0, 1) * 1e6,
      isIndex: false,
    });
    expect(info?.index?.[1]).toMatchObject({ id: arm.config, labels: { a: 'b' }, size: 50 });
  });

  it('is null for a tag or repository that is not there', async () => {
    const registry = createMemoryRegistry();
    expect(await describeImage(context(registry), 'nothing')).toBeNull();
    await pushConfigImage(registry, 'group/project', 'present', { config: {} });
    expect(await describeImage(context(registry), 'nothing')).toBeNull();
  });

  it('a config blob that is gone is BROKEN_IMAGE naming the image and the blob', async () => {
    const registry = createMemoryRegistry();
    const image = await pushConfigImage(registry, 'group/project', 'broken', { config: {} });
    await registry.deleteBlob('group/project', image.config);
    const error = await describeImage(context(registry), 'broken').catch((e: unknown) => e);
    expect(isStowageError(error, 'BROKEN_IMAGE')).toBe(true);
    expect((error as Error).message).toContain(`${ADDRESS}:broken`);
    expect((error as Error).message).toContain(image.config);
  });

  it('a child manifest that is gone is BROKEN_IMAGE naming the index and the child', async () => {
    const registry = createMemoryRegistry();
    const child = await pushConfigImage(registry, 'group/project', undefined, { config: {} });
    const bytes = encoder.encode(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: MediaType.OciIndex,
        manifests: [{ mediaType: child.mediaType, size: child.size, digest: child.digest }],
      }),
    );
    await registry.putManifest('group/project', 'multi', { bytes, mediaType: MediaType.OciIndex });
    await registry.deleteManifest('group/project', child.digest);
    const error = await describeImage(context(registry), 'multi').catch((e: unknown) => e);
    expect(isStowageError(error, 'BROKEN_IMAGE')).toBe(true);
    expect((error as Error).message).toContain(`${ADDRESS}:multi`);
    expect((error as Error).message).toContain(child.digest);
  });

  it('repo digests drop Docker Hub library prefixes as werf does', () => {
    const digest = `sha256:${'a'.repeat(64)}` as Digest;
    expect(repoDigestOf('docker.io/library/alpine', digest)).toBe(`alpine@${digest}`);
    expect(repoDigestOf('index.docker.io/library/alpine', digest)).toBe(`alpine@${digest}`);
    expect(repoDigestOf('docker.io/someone/alpine', digest)).toBe(`docker.io/someone/alpine@${digest}`);
    expect(repoDigestOf(ADDRESS, digest)).toBe(`${ADDRESS}@${digest}`);
  });
});

describe('createdAtUnixNano', () => {
  it('truncates to seconds and counts the offset; 0 for absent, junk and times int64 ns cannot hold', () => {
    expect(createdAtUnixNano('2023-11-14T22:13:20Z')).toBe(1_700_000_000 * 1e9);
    expect(createdAtUnixNano('2023-11-14T22:13:20.999999999Z')).toBe(1_700_000_000 * 1e9);
    expect(createdAtUnixNano('2023-11-15T00:13:20.5+02:00')).toBe(1_700_000_000 * 1e9);
    expect(createdAtUnixNano('2023-11-14T21:13:20-01:00')).toBe(1_700_000_000 * 1e9);
    expect(Number.isInteger(createdAtUnixNano('2023-11-14T22:13:21Z') / 1e9)).toBe(true);
    expect(createdAtUnixNano(undefined)).toBe(0);
    expect(createdAtUnixNano('yesterday')).toBe(0);
    expect(createdAtUnixNano('0001-01-01T00:00:00Z')).toBe(0);
    expect(createdAtUnixNano('1970-01-01T00:00:01Z')).toBe(1e9);
  });
});
