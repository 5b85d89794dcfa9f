import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import {
  type DockerRegistry,
  pushImage,
  pushIndex,
  randomImage,
  randomIndex,
  requirePeers,
  startDockerRegistry,
} from '@stowage/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createImageStore, type ImageStore } from './image-store.js';

const run = promisify(execFile);

describe('skopeo reads and writes repositories of the store as OCI layouts', () => {
  if (!requirePeers('docker-registry', 'skopeo')) return;

  let registry: DockerRegistry;
  let root: string;
  let store: ImageStore;

  beforeAll(async () => {
    registry = await startDockerRegistry();
    root = await mkdtemp(join(tmpdir(), 'stowage-image-store-skopeo-'));
    store = await createImageStore({ root });
  });

  afterAll(async () => {
    await store?.close();
    await registry?.stop();
    await rm(root, { recursive: true, force: true });
  });

  async function digestIn(repository: string, tag: string): Promise<string | null> {
    const response = await fetch(`${registry.url}/v2/${repository}/manifests/${tag}`, {
      method: 'HEAD',
      headers: {
        accept: [
          'application/vnd.oci.image.index.v1+json',
          'application/vnd.oci.image.manifest.v1+json',
          'application/vnd.docker.distribution.manifest.v2+json',
          'application/vnd.docker.distribution.manifest.list.v2+json',
        ].join(', '),
      },
    });
    return response.headers.get('docker-content-digest');
  }

  it('copies an image pushed through the store API to docker-registry with its digest unchanged', async () => {
    const image = randomImage({ layers: 2 });
    await pushImage(store, 'apps/single', image, 'v1');
    await store.flush();
    await run('skopeo', [
      'copy',
      '--quiet',
      '--preserve-digests',
      '--dest-tls-verify=false',
      `oci:${join(root, 'apps/single')}:v1`,
      `docker://${registry.host}/apps/single:v1`,
    ]);
    expect(await digestIn('apps/single', 'v1')).toBe(image.manifest.digest);
  });

  it('copies a two-platform index with identical digests', async () => {
    const index = randomIndex({ platforms: ['linux/amd64', 'linux/arm64'], sharedLayers: 1 });
    await pushIndex(store, 'apps/multi', index, 'v1');
    await store.flush();
    await run('skopeo', [
      'copy',
      '--quiet',
      '--all',
      '--preserve-digests',
      '--dest-tls-verify=false',
      `oci:${join(root, 'apps/multi')}:v1`,
      `docker://${registry.host}/apps/multi:v1`,
    ]);
    expect(await digestIn('apps/multi', 'v1')).toBe(index.index.digest);
  });
  async function skopeo(...args: string[]): Promise<string> {
    const { stdout } = await run('skopeo', args, { maxBuffer: 64 << 20 });
    return stdout;
  }

  it('copies from docker-registry into a repository directory and back out, digests unchanged', async () => {
    // an image and a two-platform index that only docker-registry has
    const source = await createImageStore({ root: join(root, '..', `${root.split('/').pop()}-source`) });
    const image = randomImage({ layers: 3 });
    const index = randomIndex({ platforms: ['linux/amd64', 'linux/arm64'], sharedLayers: 1 });
    await pushImage(source, 'src/single', image, 'v1');
    await pushIndex(source, 'src/multi', index, 'v1');
    await source.flush();
    for (const name of ['single', 'multi']) {
      await skopeo(
        'copy',
        '--quiet',
        '--all',
        '--preserve-digests',
        '--dest-tls-verify=false',
        `oci:${join(source.root, `src/${name}`)}:v1`,
        `docker://${registry.host}/src/${name}:v1`,
      );
    }
    await source.close();
    await rm(source.root, { recursive: true, force: true });

    // docker-registry -> a repository directory of the store, written by skopeo alone
    // (skopeo creates the last path component only)
    await mkdir(join(root, 'imported'), { recursive: true });
    for (const name of ['single', 'multi']) {
      await skopeo(
        'copy',
        '--quiet',
        '--all',
        '--preserve-digests',
        '--src-tls-verify=false',
        `docker://${registry.host}/src/${name}:v1`,
        `oci:${join(root, `imported/${name}`)}:v1`,
      );
    }
    // the store adopts what skopeo wrote: tags, manifests, blobs (verified, stored once)
    expect((await store.listRepositories()).items).toEqual(
      expect.arrayContaining(['imported/multi', 'imported/single']),
    );
    expect((await store.listTags('imported/single')).items).toEqual(['v1']);
    expect((await store.getManifest('imported/single', 'v1')).digest).toBe(image.manifest.digest);
    expect((await store.getManifest('imported/multi', 'v1')).digest).toBe(index.index.digest);
    for (const child of index.images) {
      expect((await store.headManifest('imported/multi', child.manifest.digest))?.digest).toBe(
        child.manifest.digest,
      );
    }
    const layer = image.blobs[0]?.descriptor.digest as string;
    const linked = await stat(join(root, 'imported/single/blobs/sha256', layer.slice(7)));
    const stored = await stat(join(root, '.stowage/blobs/sha256', layer.slice(7)));
    expect(linked.ino).toBe(stored.ino);
    expect((await store.fsck()).problems).toEqual([]);
    // and garbage collection keeps all of it
    const gc = await store.garbageCollect({ gracePeriodMs: 0 });
    expect(gc.blobsRemoved).toEqual([]);

    // the store writes a new tag into the adopted repository; skopeo copies everything back out
    await store.putManifest('imported/multi', 'v2', {
      bytes: (await store.getManifest('imported/multi', 'v1')).bytes,
      mediaType: index.index.mediaType,
    });
    await store.flush();
    for (const [name, tag] of [
      ['single', 'v1'],
      ['multi', 'v1'],
      ['multi', 'v2'],
    ] as const) {
      await skopeo(
        'copy',
        '--quiet',
        '--all',
        '--preserve-digests',
        '--dest-tls-verify=false',
        `oci:${join(root, `imported/${name}`)}:${tag}`,
        `docker://${registry.host}/back/${name}:${tag}`,
      );
    }
    expect(await digestIn('back/single', 'v1')).toBe(image.manifest.digest);
    expect(await digestIn('back/multi', 'v1')).toBe(index.index.digest);
    expect(await digestIn('back/multi', 'v2')).toBe(index.index.digest);
    // skopeo reads the store's view as well: inspect and list-tags of the layout
    const inspected = JSON.parse(await skopeo('inspect', '--raw', `oci:${join(root, 'imported/single')}:v1`));
    expect(inspected.layers).toHaveLength(3);
  }, 120_000);

  it('inspect --raw of a sparse index prints its original bytes', async () => {
    const index = randomIndex({ platforms: ['linux/amd64', 'linux/arm64', 'linux/s390x'] });
    const [kept] = index.images;
    await pushImage(store, 'apps/sparse', kept as (typeof index.images)[number]);
    await store.putManifest('apps/sparse', 'v1', {
      bytes: index.index.bytes,
      mediaType: index.index.mediaType,
      sparse: true,
    });
    await store.flush();
    const raw = await run('skopeo', ['inspect', '--raw', `oci:${join(root, 'apps/sparse')}:v1`], {
      encoding: 'buffer',
      maxBuffer: 64 << 20,
    });
    expect(Buffer.from(raw.stdout).equals(Buffer.from(index.index.bytes))).toBe(true);
  });
});
