import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createImageStore, type ImageStore } from '@stowage/image-store';
import type { Registry } from '@stowage/oci';
import { createRegistryClient } from '@stowage/registry-client';
import { createRegistryHandler } from '@stowage/registry-server';
import {
  type CountingProxy,
  type DockerRegistry,
  freePort,
  requirePeers,
  startCountingProxy,
  startDockerRegistry,
} from '@stowage/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  corruptBlob,
  MANY_TAGS_REPOSITORY,
  populateUpstream,
  SEMVER_TAGS,
  type UpstreamPopulation,
} from '../test/upstream-fixture.js';
import { parseSyncConfig, runSyncPass, type SyncReport } from './index.js';

describe('runSyncPass from a docker-registry filled by skopeo', () => {
  if (!requirePeers('docker-registry', 'skopeo')) return;
  let upstream: DockerRegistry;
  let proxy: CountingProxy;
  let population: UpstreamPopulation;
  const cleanups: (() => Promise<unknown>)[] = [];

  beforeAll(async () => {
    upstream = await startDockerRegistry();
    cleanups.push(() => upstream.stop());
    population = await populateUpstream(upstream);
    proxy = await startCountingProxy({ target: upstream.url });
    cleanups.push(() => proxy.close());
  }, 120_000);
  afterAll(async () => {
    for (const cleanup of cleanups.reverse()) await cleanup();
  });

  async function imageStore(): Promise<ImageStore> {
    const root = await mkdtemp(join(tmpdir(), 'stowage-sync-dest-'));
    const store = await createImageStore({ root });
    cleanups.push(async () => {
      await store.close();
      await rm(root, { recursive: true, force: true });
    });
    return store;
  }

  /** Our server over an image store, and a client of it: a remote destination. */
  async function server(): Promise<Registry> {
    const store = await imageStore();
    const handler = createRegistryHandler({ registry: store });
    const http: Server = createServer((request, response) => void handler(request, response));
    await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
    cleanups.push(
      () =>
        new Promise<void>((resolve) => {
          http.closeAllConnections();
          http.close(() => resolve());
        }),
    );
    const client = createRegistryClient({
      registry: `127.0.0.1:${(http.address() as AddressInfo).port}`,
      auth: { useConfigFiles: false },
    });
    cleanups.push(() => client.close());
    return client;
  }

  async function sync(destination: Registry, registry: Record<string, unknown>): Promise<SyncReport> {
    const config = await parseSyncConfig({
      registries: [{ urls: [proxy.url], retryDelay: '20ms', ...registry }],
    });
    return await runSyncPass({ config, destination });
  }

  /** Local repository → its tags, every repository of the store. */
  async function contents(store: Registry): Promise<Record<string, string[]>> {
    const out: Record<string, string[]> = {};
    for (const repository of (await store.listRepositories()).items) {
      const tags = (await store.listTags(repository)).items;
      if (tags.length > 0) out[repository] = [...tags].sort();
    }
    return out;
  }

  const tagsOf = (repository: string) => Object.keys(population.repositories[repository] ?? {}).sort();

  describe('content rules: exactly what is and is not synced', () => {
    it('prefix: `*` stands for one path segment', async () => {
      const store = await imageStore();
      const report = await sync(store, { content: [{ prefix: '*/oci' }] });
      expect(report.failed).toBe(0);
      expect(await contents(store)).toEqual({
        'multi/oci': tagsOf('multi/oci'),
        'single/oci': tagsOf('single/oci'),
      });
    });

    it('prefix: `**` stands for any number of segments, a leading / is ignored', async () => {
      const store = await imageStore();
      await sync(store, { content: [{ prefix: '/team/**' }] });
      expect(await contents(store)).toEqual({
        'team/app/api': tagsOf('team/app/api'),
        'team/app/web': tagsOf('team/app/web'),
      });
    });

    it('tags.regex keeps matching tags only', async () => {
      const store = await imageStore();
      await sync(store, { content: [{ prefix: MANY_TAGS_REPOSITORY, tags: { regex: '^v1\\.' } }] });
      expect(await contents(store)).toEqual({
        [MANY_TAGS_REPOSITORY]: ['v1.0.0', 'v1.1.0', 'v1.2.0', 'v1.2.3', 'v1.2.4'],
      });
    });

    it('tags.excludeRegex drops what regex kept', async () => {
      const store = await imageStore();
      await sync(store, {
        content: [{ prefix: MANY_TAGS_REPOSITORY, tags: { regex: '^v', excludeRegex: '-|^v0' } }],
      });
      expect(await contents(store)).toEqual({
        [MANY_TAGS_REPOSITORY]: ['v1.0.0', 'v1.1.0', 'v1.2.0', 'v1.2.3', 'v1.2.4', 'v2.0.0'],
      });
    });

    it('tags.semver keeps semver tags only', async () => {
      const store = await imageStore();
      await sync(store, { content: [{ prefix: MANY_TAGS_REPOSITORY, tags: { semver: true } }] });
      // As zot's semver library: a date tag is major 2026 with pre-release `01-15`.
      expect(await contents(store)).toEqual({
        [MANY_TAGS_REPOSITORY]: [...SEMVER_TAGS, '2026-01-15'].sort(),
      });
    });

    it('destination puts the repositories under another name', async () => {
      const store = await imageStore();
      await sync(store, { content: [{ prefix: 'other/tool', destination: '/mirror' }] });
      expect(await contents(store)).toEqual({ 'mirror/other/tool': tagsOf('other/tool') });
    });

    it('stripPrefix drops the literal part of the prefix before the destination is joined', async () => {
      const store = await imageStore();
      await sync(store, { content: [{ prefix: 'team/**', destination: '/local', stripPrefix: true }] });
      expect(await contents(store)).toEqual({
        'local/app/api': tagsOf('team/app/api'),
        'local/app/web': tagsOf('team/app/web'),
      });
    });

    it('platforms: the index keeps its bytes and digest, only the selected platform is fetched', async () => {
      const store = await imageStore();
      await sync(store, { content: [{ prefix: 'multi/oci', platforms: ['linux/arm64'] }] });
      const tag = population.tag('multi/oci', 'v1');
      expect((await store.headManifest('multi/oci', 'v1'))?.digest).toBe(tag.digest);
      const arm = tag.images.find((image) => image.platform === 'linux/arm64');
      const amd = tag.images.find((image) => image.platform === 'linux/amd64');
      expect(arm && amd).toBeTruthy();
      expect(await store.headManifest('multi/oci', arm?.digest as string)).toBeDefined();
      expect(await store.headManifest('multi/oci', amd?.digest as string)).toBeUndefined();
      for (const blob of arm?.blobs ?? []) expect(await store.headBlob('multi/oci', blob)).toBeDefined();
      const amdOnly = (amd?.blobs ?? []).filter((blob) => !arm?.blobs.includes(blob));
      expect(amdOnly.length).toBeGreaterThan(0);
      for (const blob of amdOnly) expect(await store.headBlob('multi/oci', blob)).toBeUndefined();
    });
  });

  it('mirrors everything into the image store and into our server, digests preserved', async () => {
    for (const destination of [await imageStore(), await server()]) {
      const report = await sync(destination, { content: [{ prefix: '**' }] });
      expect(report.errors).toEqual([]);
      expect(report.failed).toBe(0);
      expect(report.synced).toBe(population.tags.length);
      for (const tag of population.tags) {
        expect(
          (await destination.headManifest(tag.repository, tag.tag))?.digest,
          `${tag.repository}:${tag.tag}`,
        ).toBe(tag.digest);
      }
    }
  }, 120_000);

  it('a second pass with no upstream change makes no blob request and one manifest HEAD per tag', async () => {
    const store = await imageStore();
    const all = { content: [{ prefix: '**' }] };
    expect((await sync(store, all)).failed).toBe(0);
    proxy.reset();
    const again = await sync(store, all);
    expect(again).toMatchObject({ synced: 0, failed: 0, skipped: population.tags.length, bytesCopied: 0 });
    expect(proxy.count({ path: /\/blobs\// })).toBe(0);
    expect(proxy.count({ method: 'GET', path: /\/manifests\// })).toBe(0);
    expect(proxy.count({ method: 'HEAD', path: /\/manifests\// })).toBe(population.tags.length);
  }, 120_000);

  it('a changed tag re-syncs only what changed', async () => {
    const local = await startDockerRegistry();
    cleanups.push(() => local.stop());
    const specs = [
      { repository: 'app/one', tags: ['v1'], layers: 2, shared: { group: 'g', layers: 2 } },
      { repository: 'app/two', tags: ['v1'], layers: 1 },
    ];
    const before = await populateUpstream(local, { specs, seed: 5 });
    const counting = await startCountingProxy({ target: local.url });
    cleanups.push(() => counting.close());
    const store = await imageStore();
    const config = await parseSyncConfig({
      registries: [{ urls: [counting.url], content: [{ prefix: 'app/**' }] }],
    });
    expect((await runSyncPass({ config, destination: store })).synced).toBe(2);
    // app/one:v1 moves to an image with the same shared layers and a new own one (another size, other bytes).
    const moved = await populateUpstream(local, {
      specs: [
        {
          repository: 'app/one',
          tags: ['v1'],
          layers: 1,
          layerSize: 3000,
          shared: { group: 'g', layers: 2 },
        },
      ],
      seed: 5,
    });
    counting.reset();
    const report = await runSyncPass({ config, destination: store });
    expect(report).toMatchObject({ synced: 1, skipped: 1, failed: 0 });
    const tag = moved.tag('app/one', 'v1');
    expect((await store.headManifest('app/one', 'v1'))?.digest).toBe(tag.digest);
    const fetched = counting
      .requests()
      .filter((r) => r.method === 'GET' && r.path.includes('/blobs/'))
      .map((r) => r.path.split('/blobs/')[1])
      .sort();
    const had = new Set(before.tag('app/one', 'v1').blobs);
    const changed = tag.blobs.filter((blob) => !had.has(blob));
    expect(changed.length).toBeGreaterThan(0);
    expect(tag.blobs.length - changed.length).toBeGreaterThanOrEqual(2);
    expect(fetched).toEqual([...changed].sort());
  }, 120_000);

  describe('faults', () => {
    it('retries upstream 5xx and 429 with Retry-After', async () => {
      const store = await imageStore();
      proxy.reset();
      proxy.failNext({ status: 503, times: 2, match: { method: 'GET', path: /\/blobs\// } });
      proxy.failNext({
        status: 429,
        times: 1,
        retryAfter: 1,
        match: { method: 'HEAD', path: /\/manifests\// },
      });
      const report = await sync(store, { content: [{ prefix: 'single/**' }] });
      expect(report).toMatchObject({
        failed: 0,
        synced: tagsOf('single/oci').length + tagsOf('single/docker').length,
      });
      expect(proxy.count({ injected: true, status: 503 })).toBe(2);
      expect(proxy.count({ injected: true, status: 429 })).toBe(1);
    }, 60_000);

    it('falls back to a mirror when the origin is unreachable', async () => {
      const store = await imageStore();
      const dead = `http://127.0.0.1:${await freePort()}`;
      const config = await parseSyncConfig({
        registries: [
          { urls: [dead, proxy.url], retryDelay: '10ms', maxRetries: 1, content: [{ prefix: 'other/**' }] },
        ],
      });
      const report = await runSyncPass({ config, destination: store });
      expect(report).toMatchObject({ failed: 0, synced: 1 });
      expect(report.images[0]?.upstream).toBe(proxy.url);
    }, 60_000);

    it('refuses a corrupted upstream blob and commits nothing of that image', async () => {
      const broken = await startDockerRegistry();
      cleanups.push(() => broken.stop());
      const filled = await populateUpstream(broken, {
        specs: [
          { repository: 'bad/image', tags: ['v1'], layers: 3 },
          { repository: 'good/image', tags: ['v1'], layers: 1 },
        ],
        seed: 9,
      });
      const bad = filled.tag('bad/image', 'v1');
      await corruptBlob(broken, bad.images[0]?.layers[1] as string);
      const store = await imageStore();
      const config = await parseSyncConfig({
        registries: [{ urls: [broken.url], retryDelay: '10ms', maxRetries: 1, content: [{ prefix: '**' }] }],
      });
      const report = await runSyncPass({ config, destination: store });
      expect(report).toMatchObject({ failed: 1, synced: 1 });
      expect(report.images.find((i) => i.status === 'failed')).toMatchObject({
        repository: 'bad/image',
        error: { code: 'DIGEST_INVALID' },
      });
      expect(await store.headManifest('bad/image', 'v1')).toBeUndefined();
      for (const blob of bad.blobs) expect(await store.headBlob('bad/image', blob)).toBeUndefined();
      expect((await store.headManifest('good/image', 'v1'))?.digest).toBe(
        filled.tag('good/image', 'v1').digest,
      );
    }, 60_000);
  });
});
