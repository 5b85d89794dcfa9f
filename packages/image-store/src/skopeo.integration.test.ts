import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
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

describe('skopeo reads repositories of the store as OCI layouts', () => {
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
});
