import { type Digest, digestOf, isStowageError, MediaType, type Registry } from '@stowage/oci';
import { collect, createMemoryRegistry, randomBlob, spyRegistry } from '@stowage/testing';
import { describe, expect, it } from 'vitest';
import { RepoContext } from './context.js';
import { exportStage } from './export.js';
import { describeStage } from './stages.js';

const encoder = new TextEncoder();
const REPO = 'group/project';
const D = '7d391a82ee3f0e574361c594fe737dc6db627be9667a470ab7581da7';

const count = (r: { calls: { method: string }[] }, method: string) =>
  r.calls.filter((c) => c.method === method).length;

const stageLabels = {
  werf: 'myproj',
  'werf-version': 'v2.77.1',
  'werf-stage-content-digest': 'abc',
  'werf.io/base-image-id': 'sha256:parent',
  'werf.io/parent-stage-id': `${D}-1`,
  'werf-cache-version': '1.2',
  'org.opencontainers.image.title': 'kept',
};

/** A stage image with werf's service labels; its manifest pushed under `tag` (or by digest). */
async function pushStage(
  registry: Registry,
  tag: string | undefined,
  setup: { layers: ReturnType<typeof randomBlob>[]; architecture?: string; format?: 'docker' | 'oci' },
) {
  const docker = (setup.format ?? 'docker') === 'docker';
  const config = {
    architecture: setup.architecture ?? 'amd64',
    os: 'linux',
    created: '2024-05-06T07:08:09Z',
    author: 'werf',
    config: { Env: ['PATH=/bin'], Cmd: ['/app'], Labels: stageLabels },
    rootfs: { type: 'layers', diff_ids: setup.layers.map((l) => l.descriptor.digest) },
    history: [{ created: '2024-05-06T07:08:09Z', created_by: 'werf' }],
  };
  const configBytes = encoder.encode(JSON.stringify(config));
  const configDescriptor = {
    mediaType: docker ? MediaType.DockerConfig : MediaType.OciConfig,
    size: configBytes.byteLength,
    digest: digestOf(configBytes),
  };
  await registry.putBlob(REPO, configBytes, { digest: configDescriptor.digest });
  for (const layer of setup.layers) {
    if (!(await registry.headBlob(REPO, layer.descriptor.digest)))
      await registry.putBlob(REPO, layer.bytes, { digest: layer.descriptor.digest });
  }
  const mediaType = docker ? MediaType.DockerManifest : MediaType.OciManifest;
  const bytes = encoder.encode(
    JSON.stringify({
      schemaVersion: 2,
      mediaType,
      config: configDescriptor,
      layers: setup.layers.map((l) => l.descriptor),
      annotations: { 'stowage.test': 'manifest annotation' },
    }),
  );
  const digest = digestOf(bytes);
  await registry.putManifest(REPO, tag ?? digest, { bytes, mediaType });
  return { config, digest, mediaType, size: bytes.byteLength };
}

const layerOf = (size: number) => randomBlob(size, { mediaType: MediaType.DockerLayerGzip });

function context(registry: Registry): RepoContext {
  return new RepoContext({ registry, repository: REPO, address: `example.com/${REPO}`, project: 'myproj' });
}

async function json(registry: Registry, repository: string, reference: string) {
  const manifest = await registry.getManifest(repository, reference);
  return { manifest, value: JSON.parse(Buffer.from(manifest.bytes).toString()) };
}

async function blobJson(registry: Registry, repository: string, digest: Digest) {
  return JSON.parse(
    Buffer.from(await collect((await registry.getBlob(repository, digest)).stream)).toString(),
  );
}

describe('exportStage', () => {
  it('strips every werf* label, applies the mutation, keeps the rest, and mounts the layers within one origin', async () => {
    const store = createMemoryRegistry();
    const layers = [layerOf(300), layerOf(400)];
    const pushed = await pushStage(store, `${D}-1700000000001`, { layers });
    const ctx = context(store);
    const desc = await describeStage(ctx, { digest: D, creationTs: 1700000000001 });
    if (!desc) throw new Error('stage expected');
    const destination = spyRegistry(store);
    const result = await exportStage(ctx, desc, {
      destination: { registry: destination, repository: 'app', tag: 'v1' },
      mutateConfig: (config) => ({ ...config, Env: [...((config.Env as string[]) ?? []), 'MODE=prod'] }),
    });

    const { manifest, value } = await json(store, 'app', 'v1');
    expect(result).toEqual({ digest: manifest.digest, mediaType: MediaType.DockerManifest });
    expect(manifest.mediaType).toBe(MediaType.DockerManifest);
    expect(value.layers).toEqual(layers.map((l) => l.descriptor));
    expect(value.annotations).toEqual({ 'stowage.test': 'manifest annotation' });
    expect(value.config.mediaType).toBe(MediaType.DockerConfig);
    const config = await blobJson(store, 'app', value.config.digest);
    expect(config).toEqual({
      ...pushed.config,
      config: {
        Env: ['PATH=/bin', 'MODE=prod'],
        Cmd: ['/app'],
        Labels: { 'org.opencontainers.image.title': 'kept' },
      },
    });
    expect(count(destination, 'mountBlob')).toBe(2);
    expect(destination.calls.filter((c) => c.method === 'putBlob').map((c) => c.args[2])).toEqual([
      expect.objectContaining({ digest: value.config.digest }),
    ]);
    // the stage itself is unchanged
    expect((await store.getManifest(REPO, `${D}-1700000000001`)).digest).toBe(pushed.digest);
  });

  it('across origins streams each layer once, and a second export moves nothing new', async () => {
    const source = spyRegistry(createMemoryRegistry());
    await pushStage(source, `${D}-1700000000001`, { layers: [layerOf(500)], format: 'oci' });
    const ctx = context(source);
    const desc = await describeStage(ctx, { digest: D, creationTs: 1700000000001 });
    if (!desc) throw new Error('stage expected');
    const target = spyRegistry(createMemoryRegistry());
    const first = await exportStage(ctx, desc, {
      destination: { registry: target, repository: 'app', tag: 'v1' },
    });
    expect(first.mediaType).toBe(MediaType.OciManifest);
    expect(count(target, 'putBlob')).toBe(2); // the layer and the new config
    expect(count(target, 'mountBlob')).toBe(0);
    const second = await exportStage(ctx, desc, {
      destination: { registry: target, repository: 'app', tag: 'v2' },
    });
    expect(second.digest).toBe(first.digest);
    expect(count(target, 'putBlob')).toBe(2);
    const { value } = await json(target, 'app', 'v2');
    expect((await blobJson(target, 'app', value.config.digest)).config.Labels).toEqual({
      'org.opencontainers.image.title': 'kept',
    });
  });

  it('exports a multiplatform stage child by child under a new index of the same type, platforms kept, shared layers sent once', async () => {
    const source = createMemoryRegistry();
    const shared = layerOf(600);
    const amd = await pushStage(source, undefined, { layers: [shared, layerOf(10)] });
    const arm = await pushStage(source, undefined, { layers: [shared, layerOf(20)], architecture: 'arm64' });
    const platforms = [
      { architecture: 'amd64', os: 'linux' },
      { architecture: 'arm64', os: 'linux' },
    ];
    const indexBytes = encoder.encode(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: MediaType.DockerManifestList,
        manifests: [amd, arm].map((m, i) => ({
          mediaType: m.mediaType,
          size: m.size,
          digest: m.digest,
          platform: platforms[i],
        })),
      }),
    );
    await source.putManifest(REPO, D, { bytes: indexBytes, mediaType: MediaType.DockerManifestList });
    const ctx = context(source);
    const desc = await describeStage(ctx, { digest: D, creationTs: 0 });
    if (!desc) throw new Error('stage expected');
    const target = spyRegistry(createMemoryRegistry());
    const result = await exportStage(ctx, desc, {
      destination: { registry: target, repository: 'app', tag: 'v1' },
    });

    const { manifest, value } = await json(target, 'app', 'v1');
    expect(result).toEqual({ digest: manifest.digest, mediaType: MediaType.DockerManifestList });
    expect(value.manifests.map((m: { platform: unknown }) => m.platform)).toEqual(platforms);
    expect(value.manifests.map((m: { digest: string }) => m.digest)).not.toContain(amd.digest);
    for (const child of value.manifests as { digest: Digest; size: number }[]) {
      const { manifest: pushedChild, value: childValue } = await json(target, 'app', child.digest);
      expect(pushedChild.size).toBe(child.size);
      const config = await blobJson(target, 'app', childValue.config.digest);
      expect(Object.keys(config.config.Labels)).toEqual(['org.opencontainers.image.title']);
    }
    const sharedPuts = target.calls.filter(
      (c) => c.method === 'putBlob' && (c.args[2] as { digest: string }).digest === shared.descriptor.digest,
    );
    expect(sharedPuts).toHaveLength(1);
  });

  it('a layer that is gone at the source is BROKEN_IMAGE, and no manifest is pushed', async () => {
    const source = createMemoryRegistry();
    const layer = layerOf(100);
    await pushStage(source, `${D}-1700000000001`, { layers: [layer] });
    const ctx = context(source);
    const desc = await describeStage(ctx, { digest: D, creationTs: 1700000000001 });
    if (!desc) throw new Error('stage expected');
    await source.deleteBlob(REPO, layer.descriptor.digest);
    const target = spyRegistry(createMemoryRegistry());
    const error = await exportStage(ctx, desc, {
      destination: { registry: target, repository: 'app', tag: 'v1' },
    }).catch((e: unknown) => e);
    expect(isStowageError(error, 'BROKEN_IMAGE')).toBe(true);
    expect(count(target, 'putManifest')).toBe(0);
  });
});
