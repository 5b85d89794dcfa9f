// skopeo against the running server (over the image store): copy in and out,
// a single image and a two-platform index, inspect, list-tags, delete.
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { createImageStore, type ImageStore } from '@stowage/image-store';
import { pushImage, pushIndex, randomImage, randomIndex, requirePeers } from '@stowage/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Served, serve } from '../test/serve.js';
import { withoutSessions } from '../test/without-sessions.js';
import { createHtpasswdAuthorizer } from './auth/htpasswd.js';

const run = promisify(execFile);

async function skopeo(...args: string[]): Promise<string> {
  const { stdout } = await run('skopeo', args, { maxBuffer: 64 << 20 });
  return stdout;
}

describe('skopeo against registry-server', () => {
  if (!requirePeers('skopeo')) return;

  let work: string;
  let store: ImageStore;
  let source: ImageStore;
  let served: Served;

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'stowage-server-skopeo-'));
    store = await createImageStore({ root: join(work, 'server') });
    source = await createImageStore({ root: join(work, 'source') });
    served = await serve({ registry: store });
  });

  afterAll(async () => {
    await served?.close();
    await store?.close();
    await source?.close();
    await rm(work, { recursive: true, force: true });
  });

  const tls = ['--src-tls-verify=false', '--dest-tls-verify=false'];

  /** `skopeo copy --all --preserve-digests` without TLS checks. */
  const copyAll = (from: string, to: string) =>
    skopeo('copy', '--quiet', '--all', '--preserve-digests', ...tls, from, to);

  /** A three-layer image and a two-platform index in the source layout, under `<prefix>single` and `<prefix>multi`. */
  async function sourceImages(prefix: string) {
    const image = randomImage({ layers: 3 });
    const index = randomIndex({ platforms: ['linux/amd64', 'linux/arm64'], sharedLayers: 1 });
    await pushImage(source, `${prefix}single`, image, 'v1');
    await pushIndex(source, `${prefix}multi`, index, 'v1');
    await source.flush();
    return { image, index };
  }

  it('copies a single image and a two-platform index in and out with digests unchanged', async () => {
    const { image, index } = await sourceImages('src/');
    for (const name of ['single', 'multi']) {
      await copyAll(`oci:${join(source.root, `src/${name}`)}:v1`, `docker://${served.host}/apps/${name}:v1`);
    }
    const inspected = JSON.parse(
      await skopeo('inspect', '--tls-verify=false', `docker://${served.host}/apps/single:v1`),
    );
    expect(inspected.Digest).toBe(image.manifest.digest);
    expect(inspected.Layers).toHaveLength(3);
    const raw = await skopeo(
      'inspect',
      '--raw',
      '--tls-verify=false',
      `docker://${served.host}/apps/multi:v1`,
    );
    expect(new TextEncoder().encode(raw)).toEqual(index.index.bytes);
    // out again, into an OCI layout, digests intact
    for (const name of ['single', 'multi']) {
      await copyAll(`docker://${served.host}/apps/${name}:v1`, `oci:${join(work, `out-${name}`)}:v1`);
    }
    const out = await createImageStore({ root: work });
    expect((await out.getManifest('out-single', 'v1')).digest).toBe(image.manifest.digest);
    expect((await out.getManifest('out-multi', 'v1')).digest).toBe(index.index.digest);
    await out.close();
  });

  it('pushes and pulls through a backend without upload sessions (the shared ones, staged in files)', async () => {
    const bare = withoutSessions();
    const shared = await serve({ registry: bare });
    try {
      const { image, index } = await sourceImages('src/bare-');
      for (const name of ['single', 'multi']) {
        await copyAll(
          `oci:${join(source.root, `src/bare-${name}`)}:v1`,
          `docker://${shared.host}/bare/${name}:v1`,
        );
      }
      expect((await bare.getManifest('bare/single', 'v1')).digest).toBe(image.manifest.digest);
      expect((await bare.getManifest('bare/multi', 'v1')).digest).toBe(index.index.digest);
      for (const layer of image.layers) {
        expect(await bare.headBlob('bare/single', layer.descriptor.digest)).toMatchObject({
          size: layer.descriptor.size,
        });
      }
      await copyAll(`docker://${shared.host}/bare/multi:v1`, `oci:${join(work, 'out-bare')}:v1`);
      const out = await createImageStore({ root: work });
      expect((await out.getManifest('out-bare', 'v1')).digest).toBe(index.index.digest);
      await out.close();
    } finally {
      await shared.close();
    }
  });

  it('lists tags and deletes', async () => {
    const image = randomImage();
    await pushImage(store, 'apps/tags', image, 'a');
    for (const tag of ['c', 'b']) {
      await store.putManifest('apps/tags', tag, {
        bytes: image.manifest.bytes,
        mediaType: image.manifest.mediaType,
      });
    }
    const listed = JSON.parse(
      await skopeo('list-tags', '--tls-verify=false', `docker://${served.host}/apps/tags`),
    );
    expect(listed.Tags).toEqual(['a', 'b', 'c']);
    await skopeo('delete', '--tls-verify=false', `docker://${served.host}/apps/tags:a`);
    expect(await store.headManifest('apps/tags', image.manifest.digest)).toBeUndefined();
    const after = JSON.parse(
      await skopeo('list-tags', '--tls-verify=false', `docker://${served.host}/apps/tags`),
    );
    expect(after.Tags).toEqual([]);
  });

  it('does all of it with basic auth, and is refused without credentials', async () => {
    if (!requirePeers('htpasswd')) return;
    await run('htpasswd', ['-B', '-b', '-c', join(work, 'htpasswd'), 'admin', 'adminpw']);
    const guarded = await serve({
      registry: store,
      auth: createHtpasswdAuthorizer({
        realm: 'stowage',
        users: await readFile(join(work, 'htpasswd'), 'utf8'),
      }),
    });
    try {
      const image = randomImage({ layers: 2 });
      await pushImage(source, 'src/auth', image, 'v1');
      await source.flush();
      const from = `oci:${join(source.root, 'src/auth')}:v1`;
      const to = `docker://${guarded.host}/secure/app:v1`;
      await expect(skopeo('copy', '--quiet', ...tls, from, to)).rejects.toThrow(
        /authentication required|unauthorized/i,
      );
      await skopeo(
        'copy',
        '--quiet',
        '--preserve-digests',
        ...tls,
        '--dest-creds',
        'admin:adminpw',
        from,
        to,
      );
      const inspected = JSON.parse(
        await skopeo('inspect', '--tls-verify=false', '--creds', 'admin:adminpw', to),
      );
      expect(inspected.Digest).toBe(image.manifest.digest);
      const tags = JSON.parse(
        await skopeo(
          'list-tags',
          '--tls-verify=false',
          '--creds',
          'admin:adminpw',
          `docker://${guarded.host}/secure/app`,
        ),
      );
      expect(tags.Tags).toEqual(['v1']);
      await expect(skopeo('delete', '--tls-verify=false', '--creds', 'admin:wrong', to)).rejects.toThrow();
      await skopeo('delete', '--tls-verify=false', '--creds', 'admin:adminpw', to);
      expect(await store.headManifest('secure/app', image.manifest.digest)).toBeUndefined();
    } finally {
      await guarded.close();
    }
  });
});
