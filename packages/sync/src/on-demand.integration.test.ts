import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createImageStore, type ImageStore } from '@stowage/image-store';
import { type Digest, digestOf, type Registry } from '@stowage/oci';
import { createRegistryClient, type RegistryClient } from '@stowage/registry-client';
import {
  collect,
  type DockerRegistry,
  freePort,
  pushImage,
  pushIndex,
  randomImage,
  randomIndex,
  requirePeers,
  type SpyRegistry,
  spyRegistry,
  startDockerRegistry,
} from '@stowage/testing';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { ContentRule, UpstreamConfig } from './config.js';
import { createPullThroughRegistry, type PullThroughRegistry } from './on-demand.js';
import type { RuleMatch } from './rules.js';

// A tiny stand-in for `matchLocalRepository` until rules.ts lands: every name mirrored as it is.
vi.mock('./rules.js', () => ({
  matchLocalRepository: (_upstream: UpstreamConfig, local: string): RuleMatch => ({
    rule: undefined as unknown as ContentRule,
    remote: local,
    local,
  }),
}));

function upstreamConfig(urls: string[], overrides: Partial<UpstreamConfig> = {}): UpstreamConfig {
  return {
    index: 0,
    urls,
    onDemand: true,
    tlsVerify: true,
    maxRetries: 0,
    retryDelayMs: 0,
    content: [],
    referrers: false,
    concurrency: 4,
    checkIntervalMs: 60_000,
    credentials: {},
    ...overrides,
  };
}

const client = (url: string): RegistryClient =>
  createRegistryClient({ registry: url, auth: { useConfigFiles: false }, retry: { retries: 0 } });

describe('pull-through: docker-registry upstream, image store local', () => {
  if (!requirePeers('docker-registry')) return;

  let registry: DockerRegistry;
  let filler: RegistryClient;
  let root: string;
  let store: ImageStore;
  const proxies: PullThroughRegistry[] = [];
  const spies: SpyRegistry[] = [];
  const clock = { now: 1_000_000 };

  beforeAll(async () => {
    registry = await startDockerRegistry();
    filler = client(registry.url);
    root = await mkdtemp(join(tmpdir(), 'stowage-pull-through-'));
    store = await createImageStore({ root });
  });

  afterAll(async () => {
    await Promise.all(proxies.map((p) => p.close()));
    await store?.close();
    await filler?.close();
    await registry?.stop();
    if (root) await rm(root, { recursive: true, force: true });
  });

  function proxyOver(urls: string[], overrides: Partial<UpstreamConfig> = {}): PullThroughRegistry {
    const proxy = createPullThroughRegistry({
      local: store,
      config: { enabled: true, upstreams: [upstreamConfig(urls, overrides)] },
      now: () => clock.now,
      connect: (_upstream, url): Registry => {
        const spy = spyRegistry(client(url));
        spies.push(spy);
        return spy;
      },
    });
    proxies.push(proxy);
    return proxy;
  }

  const upstreamCalls = () => spies.reduce((n, spy) => n + spy.calls.length, 0);

  it('pulls an image through, then serves it without asking the upstream', async () => {
    const proxy = proxyOver([registry.url]);
    const image = randomImage({ layers: 2, layerSize: 300 * 1024 });
    await pushImage(filler, 'library/app', image, 'v1');
    const blobs = image.blobs.map((b) => b.descriptor.digest);

    const manifest = await proxy.getManifest('library/app', 'v1');
    expect(manifest.digest).toBe(image.manifest.digest);
    for (const digest of blobs) {
      const content = await proxy.getBlob('library/app', digest);
      expect(digestOf(await collect(content.stream))).toBe(digest);
    }
    await proxy.settled();
    expect((await store.headManifest('library/app', 'v1'))?.digest).toBe(image.manifest.digest);
    for (const digest of blobs) expect(await store.headBlob('library/app', digest)).toBeDefined();

    for (const spy of spies) spy.reset();
    expect((await proxy.getManifest('library/app', 'v1')).digest).toBe(image.manifest.digest);
    for (const digest of blobs) await collect((await proxy.getBlob('library/app', digest)).stream);
    expect(upstreamCalls()).toBe(0);
  });

  it('stores a platform-filtered index sparse in the image store, and fetches another platform later', async () => {
    const proxy = proxyOver([registry.url], { platforms: [{ os: 'linux', architecture: 'arm64' }] });
    const index = randomIndex({ platforms: ['linux/amd64', 'linux/arm64'] });
    await pushIndex(filler, 'library/multi', index, 'v1');
    const [amd64, arm64] = index.images as [(typeof index.images)[0], (typeof index.images)[0]];

    expect((await proxy.getManifest('library/multi', 'v1')).digest).toBe(index.index.digest);
    await proxy.settled();
    expect((await store.headManifest('library/multi', 'v1'))?.digest).toBe(index.index.digest);
    expect(await store.headManifest('library/multi', arm64.manifest.digest)).toBeDefined();
    expect(await store.headManifest('library/multi', amd64.manifest.digest)).toBeUndefined();

    const other = await proxy.getManifest('library/multi', amd64.manifest.digest);
    expect(other.digest).toBe(amd64.manifest.digest);
    const layer = amd64.layers[0]?.descriptor.digest as Digest;
    expect(digestOf(await collect((await proxy.getBlob('library/multi', layer)).stream))).toBe(layer);
    await proxy.settled();
    expect(await store.headManifest('library/multi', amd64.manifest.digest)).toBeDefined();
    expect(await store.headBlob('library/multi', layer)).toBeDefined();
  });

  it('falls back to a mirror when the origin refuses connections', async () => {
    const dead = `http://127.0.0.1:${await freePort()}`;
    const proxy = proxyOver([dead, registry.url]);
    const image = randomImage();
    await pushImage(filler, 'library/mirrored', image, 'v1');
    expect((await proxy.getManifest('library/mirrored', 'v1')).digest).toBe(image.manifest.digest);
    const config = image.config.descriptor.digest;
    expect(digestOf(await collect((await proxy.getBlob('library/mirrored', config)).stream))).toBe(config);
    await proxy.settled();
    expect((await store.headManifest('library/mirrored', 'v1'))?.digest).toBe(image.manifest.digest);
  });

  it('serves the cached tag once the upstream is gone', async () => {
    const dead = `http://127.0.0.1:${await freePort()}`;
    const image = randomImage();
    await pushImage(store, 'library/cached', image, 'v1');
    const proxy = proxyOver([dead]);
    expect((await proxy.getManifest('library/cached', 'v1')).digest).toBe(image.manifest.digest);
  });
});
