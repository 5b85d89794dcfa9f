// stowage-server as a pull-through cache, with real clients and a real upstream:
// docker-registry filled with images, a counting proxy in front of it (so every
// request the server sends upstream is seen), and the server configured with
// distribution's proxy: section (or an on-demand sync: upstream). skopeo and
// podman pull through it: the first pull fetches from upstream, ten concurrent
// pulls of one image fetch each blob once, and a pull within the check
// interval asks the upstream nothing.
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { type Digest, digestOf } from '@stowage/oci';
import { createRegistryClient } from '@stowage/registry-client';
import {
  type CountingProxy,
  type DockerRegistry,
  pushImage,
  type RandomImage,
  randomImage,
  requirePeers,
  startCountingProxy,
  startDockerRegistry,
} from '@stowage/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from './config.js';
import { type RunningServer, startServer } from './server.js';

const run = promisify(execFile);

async function tool(command: string, ...args: string[]): Promise<string> {
  const { stdout } = await run(command, args, { maxBuffer: 64 << 20 });
  return stdout;
}

describe('stowage-server as a pull-through cache', () => {
  if (!requirePeers('docker-registry', 'skopeo', 'podman')) return;

  let work: string;
  let upstream: DockerRegistry;
  let proxy: CountingProxy;
  let server: RunningServer;
  /** An empty auth file: neither client finds stored credentials. */
  let authfile: string;
  const images = new Map<string, RandomImage>();
  const podmanLocal = `localhost/stowage-pull-through:${randomBytes(4).toString('hex')}`;
  const podmanPulled: string[] = [];

  async function serve(section: string): Promise<RunningServer> {
    const root = join(work, `store-${randomBytes(4).toString('hex')}`);
    const file = join(work, `config-${randomBytes(4).toString('hex')}.yml`);
    await writeFile(
      file,
      `storage:\n  filesystem:\n    rootdirectory: ${root}\nhttp:\n  addr: 127.0.0.1:0\nlog:\n  level: silent\n${section}`,
    );
    return startServer(await loadConfig({ configFile: file }), {});
  }

  /** `skopeo copy` out of the server into a fresh dir: layout; the digest of the manifest it wrote. */
  async function skopeoPull(reference: string): Promise<Digest> {
    const out = await mkdtemp(join(work, 'skopeo-'));
    await tool(
      'skopeo',
      'copy',
      '--quiet',
      '--preserve-digests',
      '--src-tls-verify=false',
      '--src-no-creds',
      '--src-authfile',
      authfile,
      `docker://${new URL(server.url).host}/${reference}`,
      `dir:${out}`,
    );
    return digestOf(await readFile(join(out, 'manifest.json')));
  }

  const blobGets = (repository: string, digest: Digest) =>
    proxy.count({ method: 'GET', path: `/v2/${repository}/blobs/${digest}` });

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'stowage-pull-through-'));
    authfile = join(work, 'auth.json');
    await writeFile(authfile, '{"auths":{}}');
    upstream = await startDockerRegistry();
    proxy = await startCountingProxy({ target: upstream.url });
    const client = createRegistryClient({ registry: upstream.host, auth: { useConfigFiles: false } });
    try {
      const specs: [string, RandomImage][] = [
        ['app/first:v1', randomImage({ layers: 2, layerSize: 256 * 1024 })],
        ['app/crowd:v1', randomImage({ layers: 3, layerSize: 2 * 1024 * 1024 })],
        ['app/docker:v1', randomImage({ layers: 1, format: 'docker' })],
      ];
      for (const [name, image] of specs) {
        const [repository, tag] = name.split(':') as [string, string];
        await pushImage(client, repository, image, tag);
        images.set(name, image);
      }
    } finally {
      await client.close?.();
    }
    // a real image for podman, which unpacks its layers: made from a tar of a small tree
    const tree = join(work, 'tree');
    await mkdir(join(tree, 'etc'), { recursive: true });
    await writeFile(join(tree, 'etc', 'stowage'), `${randomBytes(16).toString('hex')}\n`);
    await run('tar', ['-C', tree, '-cf', join(work, 'rootfs.tar'), '.']);
    await tool('podman', 'import', '--quiet', join(work, 'rootfs.tar'), podmanLocal);
    await tool(
      'podman',
      'push',
      '--quiet',
      '--tls-verify=false',
      '--authfile',
      authfile,
      podmanLocal,
      `${upstream.host}/podman/app:v1`,
    );
    server = await serve(`proxy:\n  remoteurl: ${proxy.url}\n  ttl: 1h\n`);
  }, 180_000);

  afterAll(async () => {
    for (const image of [podmanLocal, ...podmanPulled]) {
      await run('podman', ['rmi', '-f', image]).catch(() => undefined);
    }
    await server?.close();
    await proxy?.close();
    await upstream?.stop();
    if (work) await rm(work, { recursive: true, force: true });
  });

  it('fetches a first pull from upstream, keeps it, and serves it again without asking upstream', async () => {
    const image = images.get('app/first:v1') as RandomImage;
    expect(server.pullThrough).toBeDefined();
    expect(server.sync).toBeUndefined();
    proxy.reset();
    expect(await skopeoPull('app/first:v1')).toBe(image.manifest.digest);
    expect(proxy.count({ path: '/v2/app/first/manifests/v1' })).toBeGreaterThan(0);
    await server.pullThrough?.settled();
    for (const blob of image.blobs) expect(blobGets('app/first', blob.descriptor.digest)).toBe(1);
    // the store holds it now, by tag and digest
    expect((await server.store.getManifest('app/first', 'v1')).digest).toBe(image.manifest.digest);
    for (const blob of image.blobs) {
      expect(await server.store.headBlob('app/first', blob.descriptor.digest)).toMatchObject({
        size: blob.descriptor.size,
      });
    }

    // within the check interval (ttl 1h): by tag and by digest, nothing goes upstream
    proxy.reset();
    expect(await skopeoPull('app/first:v1')).toBe(image.manifest.digest);
    expect(await skopeoPull(`app/first@${image.manifest.digest}`)).toBe(image.manifest.digest);
    expect(proxy.requests()).toEqual([]);
  }, 120_000);

  it('makes one upstream GET per blob for ten concurrent pulls of one image', async () => {
    const image = images.get('app/crowd:v1') as RandomImage;
    proxy.reset();
    const digests = await Promise.all(Array.from({ length: 10 }, () => skopeoPull('app/crowd:v1')));
    expect(digests).toEqual(Array(10).fill(image.manifest.digest));
    await server.pullThrough?.settled();
    for (const blob of image.blobs) {
      expect(blobGets('app/crowd', blob.descriptor.digest), blob.descriptor.digest).toBe(1);
    }
    // the manifest too is fetched once (a HEAD or GET by tag, then at most one GET)
    expect(proxy.count({ method: 'GET', path: '/v2/app/crowd/manifests/v1' })).toBeLessThanOrEqual(1);
  }, 180_000);

  it('serves podman: a first pull through upstream, after rmi a pull that asks upstream nothing', async () => {
    const reference = `${new URL(server.url).host}/podman/app:v1`;
    podmanPulled.push(reference);
    const pull = () =>
      tool('podman', 'pull', '--quiet', '--tls-verify=false', '--authfile', authfile, reference);
    proxy.reset();
    await pull();
    await server.pullThrough?.settled();
    expect(proxy.count({ path: /^\/v2\/podman\/app\/blobs\// })).toBeGreaterThan(0);
    const stored = await server.store.getManifest('podman/app', 'v1');
    const inspected = JSON.parse(await tool('podman', 'image', 'inspect', '--format', 'json', reference));
    expect(inspected[0].RepoDigests).toContain(`${new URL(server.url).host}/podman/app@${stored.digest}`);
    await tool('podman', 'rmi', '-f', reference);
    proxy.reset();
    await pull();
    expect(proxy.requests()).toEqual([]);
  }, 180_000);

  it('refuses pushes in proxy mode, and sends nothing upstream for them', async () => {
    proxy.reset();
    const response = await fetch(`${server.url}/v2/app/pushed/blobs/uploads/`, { method: 'POST' });
    expect(response.status).toBeGreaterThanOrEqual(400);
    expect(response.status).toBeLessThan(500);
    expect(proxy.count({ method: 'POST' })).toBe(0);
  });

  it('pulls through an on-demand sync: upstream too, and keeps the store writable there', async () => {
    const synced = await serve(
      `sync:\n  registries:\n    - urls: [${proxy.url}]\n      onDemand: true\n      checkInterval: 1h\n`,
    );
    const before = server;
    server = synced;
    try {
      const image = images.get('app/docker:v1') as RandomImage;
      proxy.reset();
      expect(await skopeoPull('app/docker:v1')).toBe(image.manifest.digest);
      await synced.pullThrough?.settled();
      for (const blob of image.blobs) expect(blobGets('app/docker', blob.descriptor.digest)).toBe(1);
      proxy.reset();
      expect(await skopeoPull('app/docker:v1')).toBe(image.manifest.digest);
      expect(proxy.requests()).toEqual([]);
      const response = await fetch(`${synced.url}/v2/local/pushed/blobs/uploads/`, { method: 'POST' });
      expect(response.status).toBe(202);
      expect(proxy.count({ method: 'POST' })).toBe(0);
    } finally {
      server = before;
      await synced.close();
    }
  }, 120_000);
});
