import { Readable } from 'node:stream';
import {
  type BlobContent,
  type Digest,
  digestOf,
  isStowageError,
  type Logger,
  MediaType,
  type Registry,
  RegistryError,
} from '@stowage/oci';
import {
  collect,
  createMemoryRegistry,
  type MemoryRegistry,
  pushImage,
  pushIndex,
  randomArtifact,
  randomBytes,
  randomImage,
  randomIndex,
  type SpyOptions,
  type SpyRegistry,
  spyRegistry,
} from '@stowage/testing';
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { ContentRule, SyncConfig, UpstreamConfig } from './config.js';
import { createPullThroughRegistry, type PullThroughOptions, type PullThroughRegistry } from './on-demand.js';
import type { RuleMatch } from './rules.js';

// A tiny stand-in for `matchLocalRepository` until rules.ts lands: the first
// rule whose pattern matches the local name, mirrored under the same name.
vi.mock('./rules.js', () => ({
  matchLocalRepository(upstream: UpstreamConfig, local: string): RuleMatch | undefined {
    if (upstream.content.length === 0)
      return { rule: undefined as unknown as ContentRule, remote: local, local };
    const rule = upstream.content.find((r) => r.pattern.test(local));
    return rule ? { rule, remote: local, local } : undefined;
  },
}));

const INTERVAL = 60_000;

function upstreamConfig(overrides: Partial<UpstreamConfig> = {}): UpstreamConfig {
  return {
    index: 0,
    urls: ['https://upstream.test'],
    onDemand: true,
    tlsVerify: true,
    maxRetries: 0,
    retryDelayMs: 0,
    content: [],
    referrers: false,
    concurrency: 4,
    checkIntervalMs: INTERVAL,
    credentials: {},
    ...overrides,
  };
}

function rule(pattern: RegExp, overrides: Partial<ContentRule> = {}): ContentRule {
  return {
    prefix: String(pattern),
    pattern,
    tags: { semver: false },
    stripPrefix: false,
    referrers: false,
    ...overrides,
  };
}

function configOf(...upstreams: UpstreamConfig[]): SyncConfig {
  return { enabled: true, upstreams };
}

interface Fixture {
  readonly upstream: MemoryRegistry;
  readonly spy: SpyRegistry;
  readonly local: MemoryRegistry;
  readonly proxy: PullThroughRegistry;
  readonly clock: { now: number };
  readonly warnings: string[];
}

const open: PullThroughRegistry[] = [];

afterEach(async () => {
  await Promise.all(open.splice(0).map((p) => p.close()));
});

function fixture(
  options: {
    upstream?: UpstreamConfig;
    /** The spy's hooks, made from the upstream registry they wrap. */
    hooks?: (upstream: MemoryRegistry) => SpyOptions['hooks'];
    extra?: Partial<PullThroughOptions>;
  } = {},
): Fixture {
  const upstream = createMemoryRegistry();
  const hooks = options.hooks?.(upstream);
  const spy = spyRegistry(upstream, hooks ? { hooks } : {});
  const local = createMemoryRegistry();
  const clock = { now: 1_000_000 };
  const warnings: string[] = [];
  const logger: Logger = { warn: (_fields, message) => warnings.push(message ?? '') };
  const proxy = createPullThroughRegistry({
    local,
    config: configOf(options.upstream ?? upstreamConfig()),
    connect: () => spy,
    now: () => clock.now,
    logger,
    ...options.extra,
  });
  open.push(proxy);
  return { upstream, spy, local, proxy, clock, warnings };
}

/** A client's pull: the manifest by tag, then every blob read to the end. */
async function pull(registry: Registry, repository: string, tag: string, blobs: readonly Digest[]) {
  const manifest = await registry.getManifest(repository, tag);
  const contents: Uint8Array[] = [];
  for (const digest of blobs)
    contents.push(await collect((await registry.getBlob(repository, digest)).stream));
  return { manifest, contents };
}

/** Upstream `getBlob` calls, by digest. */
function blobCalls(spy: SpyRegistry): Map<string, number> {
  const counts = new Map<string, number>();
  for (const call of spy.calls) {
    if (call.method !== 'getBlob') continue;
    const digest = String(call.args[1]);
    counts.set(digest, (counts.get(digest) ?? 0) + 1);
  }
  return counts;
}

/** A `getBlob` hook answering other bytes (same length) for one digest. */
function corrupting(upstream: Registry, bad: Digest) {
  return async (repository: string, digest: Digest, opts?: object): Promise<BlobContent> => {
    const real = await upstream.getBlob(repository, digest, opts);
    if (digest !== bad) return real;
    const original = await collect(real.stream);
    const other = Buffer.from(original);
    other[other.length - 1] = (other[other.length - 1] ?? 0) ^ 0xff;
    // Three chunks, so the client sees bytes before the store's verdict.
    const third = Math.ceil(other.length / 3);
    return {
      digest,
      size: real.size,
      stream: Readable.from([
        other.subarray(0, third),
        other.subarray(third, 2 * third),
        other.subarray(2 * third),
      ]),
    };
  };
}

describe('createPullThroughRegistry', () => {
  it('fetches an image on the first pull and commits it locally, tag last', async () => {
    const f = fixture();
    const image = randomImage({ layers: 2 });
    await pushImage(f.upstream, 'library/alpine', image, '3.20');
    f.spy.reset();

    const { manifest, contents } = await pull(
      f.proxy,
      'library/alpine',
      '3.20',
      image.blobs.map((b) => b.descriptor.digest),
    );
    expect(manifest.digest).toBe(image.manifest.digest);
    expect(Buffer.from(manifest.bytes)).toEqual(Buffer.from(image.manifest.bytes));
    expect(contents.map((c) => digestOf(c))).toEqual(image.blobs.map((b) => b.descriptor.digest));
    await f.proxy.settled();

    expect((await f.local.headManifest('library/alpine', '3.20'))?.digest).toBe(image.manifest.digest);
    for (const blob of image.blobs)
      expect(await f.local.headBlob('library/alpine', blob.descriptor.digest)).toBeDefined();
    // One HEAD for the tag, the manifest once (by digest), every blob once.
    expect(f.spy.count('headManifest')).toBe(1);
    expect(f.spy.count('getManifest')).toBe(1);
    expect(f.spy.calls.find((c) => c.method === 'getManifest')?.args[1]).toBe(image.manifest.digest);
    expect([...blobCalls(f.spy).values()]).toEqual(image.blobs.map(() => 1));
  });

  it('asks the upstream nothing for a second pull within the interval, one HEAD after it', async () => {
    const f = fixture();
    const image = randomImage({ layers: 2 });
    await pushImage(f.upstream, 'library/alpine', image, 'latest');
    const blobs = image.blobs.map((b) => b.descriptor.digest);
    await pull(f.proxy, 'library/alpine', 'latest', blobs);
    await f.proxy.settled();

    f.spy.reset();
    f.clock.now += INTERVAL - 1;
    const again = await pull(f.proxy, 'library/alpine', 'latest', blobs);
    expect(again.manifest.digest).toBe(image.manifest.digest);
    expect(await f.proxy.headManifest('library/alpine', 'latest')).toMatchObject({
      digest: image.manifest.digest,
    });
    expect(f.spy.calls).toEqual([]);

    f.clock.now += 2;
    await pull(f.proxy, 'library/alpine', 'latest', blobs);
    expect(f.spy.calls.map((c) => c.method)).toEqual(['headManifest']);

    // Checked again just now: the next pull asks nothing.
    f.spy.reset();
    await f.proxy.getManifest('library/alpine', 'latest');
    expect(f.spy.calls).toEqual([]);
  });

  it('remembers at most checkedTagsMax tag checks: a forgotten one costs one HEAD, never a wrong answer', async () => {
    const f = fixture({ extra: { checkedTagsMax: 10 } });
    const image = randomImage({ layers: 1 });
    const tags = Array.from({ length: 12 }, (_, i) => `t${i}`);
    for (const tag of tags) await pushImage(f.upstream, 'library/many', image, tag);
    for (const tag of tags) {
      await f.proxy.getManifest('library/many', tag);
      // one at a time, so the checks are remembered in this order
      await f.proxy.settled();
    }
    f.spy.reset();
    // Past ten, the oldest went (down to nine): the last nine are remembered, t0..t2 are not.
    const asked = () => f.spy.calls.filter((c) => c.method === 'headManifest').map((c) => String(c.args[1]));
    for (const tag of tags.slice(3)) {
      expect((await f.proxy.getManifest('library/many', tag)).digest).toBe(image.manifest.digest);
    }
    expect(asked()).toEqual([]);
    expect((await f.proxy.getManifest('library/many', 't0')).digest).toBe(image.manifest.digest);
    expect(asked()).toEqual(['t0']);
    expect(() =>
      createPullThroughRegistry({
        local: f.local,
        config: configOf(upstreamConfig()),
        checkedTagsMax: 0,
      }),
    ).toThrow(expect.objectContaining({ code: 'OPTIONS_INVALID' }));
  });

  it('fetches the new image when the upstream tag moved after the interval', async () => {
    const f = fixture();
    const first = randomImage();
    const second = randomImage();
    await pushImage(f.upstream, 'app', first, 'v1');
    await f.proxy.getManifest('app', 'v1');
    await f.proxy.settled();
    await pushImage(f.upstream, 'app', second, 'v1');

    // Within the interval the cached image is served.
    expect((await f.proxy.getManifest('app', 'v1')).digest).toBe(first.manifest.digest);
    f.clock.now += INTERVAL;
    expect((await f.proxy.getManifest('app', 'v1')).digest).toBe(second.manifest.digest);
    await f.proxy.settled();
    expect((await f.local.headManifest('app', 'v1'))?.digest).toBe(second.manifest.digest);
  });

  it('shares one fetch between ten concurrent pulls: one upstream getBlob per digest', async () => {
    const f = fixture();
    const image = randomImage({ layers: 3, layerSize: 64 * 1024 });
    await pushImage(f.upstream, 'library/busybox', image, 'stable');
    f.spy.reset();
    const blobs = image.blobs.map((b) => b.descriptor.digest);

    const pulls = await Promise.all(
      Array.from({ length: 10 }, () => pull(f.proxy, 'library/busybox', 'stable', blobs)),
    );
    for (const { manifest, contents } of pulls) {
      expect(manifest.digest).toBe(image.manifest.digest);
      expect(contents.map((c) => digestOf(c))).toEqual(blobs);
    }
    await f.proxy.settled();
    const calls = blobCalls(f.spy);
    expect([...calls.keys()].sort()).toEqual([...blobs].sort());
    expect([...calls.values()]).toEqual(blobs.map(() => 1));
    expect(f.spy.count('getManifest')).toBe(1);
    expect(f.spy.count('headManifest')).toBe(1);
  });

  it('streams a blob to the client while storing it, and errors the stream on a corrupt upstream blob', async () => {
    const image = randomImage({ layers: 1, layerSize: 30_000 });
    const bad = image.layers[0]?.descriptor.digest as Digest;
    const f = fixture({ hooks: (upstream) => ({ getBlob: corrupting(upstream, bad) as never }) });
    await pushImage(f.upstream, 'lib/app', image, 'v1');

    // A good blob the local store lacks, outside any fetch: streamed and stored.
    const config = image.config.descriptor.digest;
    const good = await f.proxy.getBlob('lib/app', config);
    expect(digestOf(await collect(good.stream))).toBe(config);
    expect(await f.local.headBlob('lib/app', config)).toBeDefined();

    // The corrupt one: bytes flow while it is stored, the last chunk is held back,
    // and the stream errors (never ends cleanly); nothing is stored.
    const served = await f.proxy.getBlob('lib/app', bad);
    let received = 0;
    const failure = await (async () => {
      for await (const chunk of served.stream) received += (chunk as Buffer).byteLength;
    })().catch((error: unknown) => error);
    expect(isStowageError(failure, 'DIGEST_INVALID')).toBe(true);
    expect(received).toBeGreaterThan(0);
    expect(received).toBeLessThan(served.size);
    await f.proxy.settled();
    expect(await f.local.headBlob('lib/app', bad)).toBeUndefined();
  });

  it('commits neither blob nor manifest nor tag of an image whose upstream blob is corrupt', async () => {
    const image = randomImage({ layers: 2, layerSize: 20_000 });
    const bad = image.layers[1]?.descriptor.digest as Digest;
    const f = fixture({ hooks: (upstream) => ({ getBlob: corrupting(upstream, bad) as never }) });
    await pushImage(f.upstream, 'lib/app', image, 'v1');

    const manifest = await f.proxy.getManifest('lib/app', 'v1');
    expect(manifest.digest).toBe(image.manifest.digest);
    // Served at once or after the background transfer failed: either way the client never gets clean bytes.
    const read = f.proxy.getBlob('lib/app', bad).then((content) => collect(content.stream));
    const failure = await read.catch((error: unknown) => error);
    expect(isStowageError(failure, 'DIGEST_INVALID')).toBe(true);
    await f.proxy.settled();

    expect(await f.local.headBlob('lib/app', bad)).toBeUndefined();
    expect(await f.local.headManifest('lib/app', image.manifest.digest)).toBeUndefined();
    expect(await f.local.headManifest('lib/app', 'v1')).toBeUndefined();
    expect(f.warnings).toContain('on-demand fetch failed');
  });

  it('finishes storing a blob whose client went away', async () => {
    const f = fixture();
    const image = randomImage({ layers: 1, layerSize: 256 * 1024 });
    await pushImage(f.upstream, 'lib/app', image);
    const layer = image.layers[0]?.descriptor.digest as Digest;
    const served = await f.proxy.getBlob('lib/app', layer);
    served.stream.destroy();
    await f.proxy.settled();
    expect(await f.local.headBlob('lib/app', layer)).toEqual({ digest: layer, size: 256 * 1024 });
  });

  it('keeps storing a blob whose client aborted its request, and close() does not wait for a stalled reader', async () => {
    const chunked = (upstream: Registry) => ({
      // Many small chunks, so a reader that stops reading holds the transfer up.
      getBlob: (async (repository: string, digest: Digest, opts?: object) => {
        const real = await upstream.getBlob(repository, digest, opts);
        const bytes = Buffer.from(await collect(real.stream));
        const chunks = Array.from({ length: Math.ceil(bytes.length / 1024) }, (_, i) =>
          bytes.subarray(i * 1024, (i + 1) * 1024),
        );
        return { digest, size: real.size, stream: Readable.from(chunks) };
      }) as never,
    });
    const f = fixture({ hooks: chunked });
    const image = randomImage({ layers: 2, layerSize: 512 * 1024 });
    await pushImage(f.upstream, 'lib/app', image);
    const [first, second] = image.layers.map((l) => l.descriptor.digest) as [Digest, Digest];

    const request = new AbortController();
    const served = await f.proxy.getBlob('lib/app', first, { signal: request.signal });
    for await (const _chunk of served.stream) {
      request.abort();
      break;
    }
    await f.proxy.settled();
    expect(await f.local.headBlob('lib/app', first)).toEqual({ digest: first, size: 512 * 1024 });

    // A reader that never reads: close() aborts the transfer instead of waiting for it.
    const stalled = await f.proxy.getBlob('lib/app', second);
    await f.proxy.close();
    expect(stalled.stream.destroyed).toBe(true);
    expect(await f.local.headBlob('lib/app', second)).toBeUndefined();
  });

  it('serves a cached tag when the upstream is down, and refuses what is not cached', async () => {
    const f = fixture();
    const image = randomImage();
    await pushImage(f.upstream, 'library/alpine', image, 'latest');
    await pushImage(f.upstream, 'library/alpine', randomImage(), 'edge');
    await f.proxy.getManifest('library/alpine', 'latest');
    await f.proxy.settled();

    await f.upstream.close();
    f.clock.now += INTERVAL * 10;
    expect((await f.proxy.getManifest('library/alpine', 'latest')).digest).toBe(image.manifest.digest);
    expect(f.warnings).toContain('upstream failed; serving the cached tag');
    const blob = await f.proxy.getBlob('library/alpine', image.config.descriptor.digest);
    expect(digestOf(await collect(blob.stream))).toBe(image.config.descriptor.digest);

    const missing = await f.proxy.getManifest('library/alpine', 'edge').catch((error: unknown) => error);
    expect(isStowageError(missing, 'UNAVAILABLE')).toBe(true);
  });

  it('serves a cached tag the upstream no longer has', async () => {
    const f = fixture();
    const image = randomImage();
    await pushImage(f.upstream, 'app', image, 'v1');
    await f.proxy.getManifest('app', 'v1');
    await f.proxy.settled();
    await f.upstream.deleteTag('app', 'v1');
    f.clock.now += INTERVAL;
    expect((await f.proxy.getManifest('app', 'v1')).digest).toBe(image.manifest.digest);
    expect(await f.proxy.headManifest('app', 'v2')).toBeUndefined();
    const missing = await f.proxy.getManifest('app', 'v2').catch((error: unknown) => error);
    expect(isStowageError(missing, 'MANIFEST_UNKNOWN')).toBe(true);
  });

  it('keeps a platform-filtered index sparse with its digest, and fetches another platform on demand', async () => {
    const f = fixture({ upstream: upstreamConfig({ platforms: [{ os: 'linux', architecture: 'amd64' }] }) });
    const index = randomIndex({ platforms: ['linux/amd64', 'linux/arm64'] });
    await pushIndex(f.upstream, 'multi', index, 'v1');
    const [amd64, arm64] = index.images as [(typeof index.images)[0], (typeof index.images)[0]];

    const top = await f.proxy.getManifest('multi', 'v1');
    expect(top.digest).toBe(index.index.digest);
    // The child is served from the pending fetch before anything is committed.
    expect((await f.proxy.getManifest('multi', amd64.manifest.digest)).digest).toBe(amd64.manifest.digest);
    await f.proxy.settled();

    expect((await f.local.headManifest('multi', 'v1'))?.digest).toBe(index.index.digest);
    expect(await f.local.headManifest('multi', amd64.manifest.digest)).toBeDefined();
    for (const blob of amd64.blobs)
      expect(await f.local.headBlob('multi', blob.descriptor.digest)).toBeDefined();
    expect(await f.local.headManifest('multi', arm64.manifest.digest)).toBeUndefined();
    expect(blobCalls(f.spy).has(arm64.layers[0]?.descriptor.digest as string)).toBe(false);

    // Another platform's child by digest: a local miss, fetched like any digest.
    const other = await f.proxy.getManifest('multi', arm64.manifest.digest);
    expect(other.digest).toBe(arm64.manifest.digest);
    await f.proxy.settled();
    expect(await f.local.headManifest('multi', arm64.manifest.digest)).toBeDefined();
    for (const blob of arm64.blobs)
      expect(await f.local.headBlob('multi', blob.descriptor.digest)).toBeDefined();
  });

  it('takes the content rule platforms over the upstream ones', async () => {
    const f = fixture({
      upstream: upstreamConfig({
        platforms: [{ os: 'linux', architecture: 'amd64' }],
        content: [rule(/^multi$/, { platforms: [{ os: 'linux', architecture: 'arm64' }] })],
      }),
    });
    const index = randomIndex({ platforms: ['linux/amd64', 'linux/arm64'] });
    await pushIndex(f.upstream, 'multi', index, 'v1');
    await f.proxy.getManifest('multi', 'v1');
    await f.proxy.settled();
    expect(await f.local.headManifest('multi', index.images[0]?.manifest.digest as Digest)).toBeUndefined();
    expect(await f.local.headManifest('multi', index.images[1]?.manifest.digest as Digest)).toBeDefined();
  });

  it('fetches every child when the local store has no sparse indexes', async () => {
    const upstream = createMemoryRegistry();
    const local = spyRegistry(createMemoryRegistry(), { capabilities: { sparseIndex: false } });
    const proxy = createPullThroughRegistry({
      local,
      config: configOf(upstreamConfig({ platforms: [{ os: 'linux', architecture: 'amd64' }] })),
      connect: () => upstream,
    });
    open.push(proxy);
    const index = randomIndex({ platforms: ['linux/amd64', 'linux/arm64'] });
    await pushIndex(upstream, 'multi', index, 'v1');
    await proxy.getManifest('multi', 'v1');
    await proxy.settled();
    for (const image of index.images)
      expect(await local.headManifest('multi', image.manifest.digest)).toBeDefined();
    const puts = local.calls.filter((c) => c.method === 'putManifest');
    expect(puts.some((c) => (c.args[2] as { sparse?: boolean }).sparse)).toBe(false);
  });

  it('falls back to the next URL when the first fails to connect, and closes what it made', async () => {
    const upstream = createMemoryRegistry();
    const down = createMemoryRegistry();
    await down.close();
    const connected: string[] = [];
    const closed: string[] = [];
    const clock = { now: 0 };
    const proxy = createPullThroughRegistry({
      local: createMemoryRegistry(),
      config: configOf(
        upstreamConfig({ urls: ['https://origin.test', 'https://mirror.test', 'https://third.test'] }),
      ),
      now: () => clock.now,
      connect: (_upstream, url) => {
        connected.push(url);
        const target = url === 'https://origin.test' ? down : upstream;
        return spyRegistry(target, { hooks: { close: async () => void closed.push(url) } });
      },
    });
    open.push(proxy);
    const image = randomImage();
    await pushImage(upstream, 'app', image, 'v1');
    const pulled = await pull(
      proxy,
      'app',
      'v1',
      image.blobs.map((b) => b.descriptor.digest),
    );
    expect(pulled.manifest.digest).toBe(image.manifest.digest);
    expect(connected).toEqual(['https://origin.test', 'https://mirror.test']);
    await proxy.close();
    expect(closed.sort()).toEqual(['https://mirror.test', 'https://origin.test']);
  });

  it('tries a mirror when connecting to the origin throws, and reports an upstream no URL of which answers', async () => {
    const upstream = createMemoryRegistry();
    const image = randomImage();
    await pushImage(upstream, 'app', image, 'v1');
    const proxy = createPullThroughRegistry({
      local: createMemoryRegistry(),
      config: configOf(upstreamConfig({ urls: ['https://origin.test', 'https://mirror.test'] })),
      connect: (_upstream, url) => {
        if (url === 'https://origin.test')
          throw Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' });
        return upstream;
      },
    });
    open.push(proxy);
    expect((await proxy.getManifest('app', 'v1')).digest).toBe(image.manifest.digest);
    await upstream.close();
    const failure = await proxy.getManifest('app', 'v2').catch((error: unknown) => error);
    expect(isStowageError(failure, 'UNAVAILABLE')).toBe(true);
  });

  it('uses the upstreams in order, only those on demand and covering the repository', async () => {
    const first = createMemoryRegistry();
    const second = createMemoryRegistry();
    const offline = spyRegistry(createMemoryRegistry());
    const byUrl: Record<string, Registry> = {
      'https://first.test': first,
      'https://second.test': second,
      'https://periodic.test': offline,
    };
    const proxy = createPullThroughRegistry({
      local: createMemoryRegistry(),
      config: configOf(
        upstreamConfig({ index: 0, urls: ['https://periodic.test'], onDemand: false }),
        upstreamConfig({ index: 1, urls: ['https://first.test'], content: [rule(/^team\//)] }),
        upstreamConfig({ index: 2, urls: ['https://second.test'] }),
      ),
      connect: (_upstream, url) => byUrl[url] as Registry,
    });
    open.push(proxy);
    const fromFirst = randomImage();
    const fromSecond = randomImage();
    const elsewhere = randomImage();
    await pushImage(first, 'team/app', fromFirst, 'v1');
    await pushImage(second, 'team/app', randomImage(), 'v1');
    await pushImage(second, 'team/tool', fromSecond, 'v1');
    await pushImage(second, 'other', elsewhere, 'v1');
    await pushImage(first, 'other', randomImage(), 'v1');
    expect((await proxy.getManifest('team/app', 'v1')).digest).toBe(fromFirst.manifest.digest);
    // Not in the first upstream: the next one is asked.
    expect((await proxy.getManifest('team/tool', 'v1')).digest).toBe(fromSecond.manifest.digest);
    // The first upstream's rule does not cover `other`.
    expect((await proxy.getManifest('other', 'v1')).digest).toBe(elsewhere.manifest.digest);
    expect(offline.calls).toEqual([]);
  });

  it('never fetches non-distributable layers', async () => {
    const f = fixture();
    const image = randomImage();
    const foreign = {
      mediaType: MediaType.OciLayerNonDistributableGzip,
      digest: digestOf(randomBytes(64)),
      size: 64,
      urls: ['https://example.test/layer.tar.gz'],
    };
    const manifest = JSON.parse(Buffer.from(image.manifest.bytes).toString('utf8'));
    manifest.layers.push(foreign);
    const bytes = new TextEncoder().encode(JSON.stringify(manifest));
    for (const blob of image.blobs) {
      await f.upstream.putBlob('app', blob.bytes, {
        digest: blob.descriptor.digest,
        size: blob.descriptor.size,
      });
    }
    await f.upstream.putManifest('app', 'v1', { bytes, mediaType: MediaType.OciManifest });

    await f.proxy.getManifest('app', 'v1');
    const refused = await f.proxy.getBlob('app', foreign.digest).catch((error: unknown) => error);
    expect(isStowageError(refused, 'BLOB_UNKNOWN')).toBe(true);
    expect(await f.proxy.headBlob('app', foreign.digest)).toBeUndefined();
    await f.proxy.settled();
    expect((await f.local.headManifest('app', 'v1'))?.digest).toBe(digestOf(bytes));
    expect(blobCalls(f.spy).has(foreign.digest)).toBe(false);
  });

  it('mirrors referrers when the upstream asks for them', async () => {
    const f = fixture({ upstream: upstreamConfig({ referrers: true }) });
    const image = randomImage();
    await pushImage(f.upstream, 'app', image, 'v1');
    const signature = randomArtifact({
      subject: image.descriptor,
      artifactType: 'application/vnd.test.signature',
    });
    await pushImage(f.upstream, 'app', signature);
    await f.proxy.getManifest('app', 'v1');
    await f.proxy.settled();
    const referrers = await f.local.listReferrers('app', image.manifest.digest);
    expect(referrers.manifests.map((d) => d.digest)).toEqual([signature.manifest.digest]);
    expect(await f.local.headBlob('app', signature.layers[0]?.descriptor.digest as Digest)).toBeDefined();
  });

  it('serves a blob range once the whole blob is stored', async () => {
    const f = fixture();
    const image = randomImage({ layerSize: 4096 });
    await pushImage(f.upstream, 'app', image);
    const layer = image.layers[0] as (typeof image.layers)[0];
    const part = await f.proxy.getBlob('app', layer.descriptor.digest, { range: { start: 10, end: 19 } });
    expect(Buffer.from(await collect(part.stream))).toEqual(Buffer.from(layer.bytes.subarray(10, 20)));
    expect(await f.local.headBlob('app', layer.descriptor.digest)).toBeDefined();
  });

  it('answers headBlob from upstream without fetching, and passes writes to the local store', async () => {
    const f = fixture();
    const image = randomImage();
    await pushImage(f.upstream, 'app', image);
    const config = image.config.descriptor;
    expect(await f.proxy.headBlob('app', config.digest)).toEqual({
      digest: config.digest,
      size: config.size,
    });
    expect(await f.local.headBlob('app', config.digest)).toBeUndefined();

    const other = randomImage();
    await pushImage(f.proxy, 'mine', other, 'v1');
    expect((await f.local.headManifest('mine', 'v1'))?.digest).toBe(other.manifest.digest);
    expect(f.proxy.origin).toBe(f.local.origin);
    expect(await f.proxy.capabilities()).toEqual(await f.local.capabilities());
  });

  it("refuses writes with UNSUPPORTED under writes: 'refuse'", async () => {
    const f = fixture({ extra: { writes: 'refuse' } });
    const image = randomImage();
    const put = await f.proxy
      .putBlob('app', image.config.bytes, { digest: image.config.descriptor.digest })
      .catch((error: unknown) => error);
    expect(isStowageError(put, 'UNSUPPORTED')).toBe(true);
    const upload = await f.proxy.startUpload?.('app').catch((error: unknown) => error);
    expect(isStowageError(upload, 'UNSUPPORTED')).toBe(true);
    const manifest = await f.proxy
      .putManifest('app', 'v1', { bytes: image.manifest.bytes, mediaType: image.manifest.mediaType })
      .catch((error: unknown) => error);
    expect(isStowageError(manifest, 'UNSUPPORTED')).toBe(true);
    expect(await f.local.headBlob('app', image.config.descriptor.digest)).toBeUndefined();
    // Pulls still work.
    await pushImage(f.upstream, 'app', image, 'v1');
    expect((await f.proxy.getManifest('app', 'v1')).digest).toBe(image.manifest.digest);
  });

  it('does not reach upstream for a repository no upstream covers', async () => {
    const f = fixture({ upstream: upstreamConfig({ content: [rule(/^mirrored\//)] }) });
    await pushImage(f.upstream, 'private/app', randomImage(), 'v1');
    f.spy.reset();
    const missing = await f.proxy.getManifest('private/app', 'v1').catch((error: unknown) => error);
    expect(isStowageError(missing, 'MANIFEST_UNKNOWN')).toBe(true);
    expect(f.spy.calls).toEqual([]);
  });

  it('close() aborts background work, waits for it and commits nothing', async () => {
    const image = randomImage();
    let started!: () => void;
    const blobRequested = new Promise<void>((resolve) => {
      started = resolve;
    });
    const f = fixture({
      hooks: () => ({
        // Never answers until aborted.
        getBlob: ((_repository: string, _digest: Digest, opts: { signal?: AbortSignal }) =>
          new Promise((_resolve, reject) => {
            started();
            opts.signal?.addEventListener('abort', () => reject(opts.signal?.reason), { once: true });
          })) as never,
      }),
    });
    await pushImage(f.upstream, 'app', image, 'v1');
    expect((await f.proxy.getManifest('app', 'v1')).digest).toBe(image.manifest.digest);
    await blobRequested;
    await f.proxy.close();
    expect(await f.local.headManifest('app', 'v1')).toBeUndefined();
    const after = await f.proxy.getManifest('app', 'v1').catch((error: unknown) => error);
    expect(isStowageError(after, 'UNAVAILABLE')).toBe(true);
  });

  it('refuses bad options', () => {
    expect(() =>
      createPullThroughRegistry({
        local: createMemoryRegistry(),
        config: configOf(),
        writes: 'sometimes' as 'pass',
      }),
    ).toThrow(expect.objectContaining({ code: 'OPTIONS_INVALID' }));
  });

  it('does not treat a refusal as an outage', async () => {
    const f = fixture({
      hooks: () => ({
        headManifest: async () => {
          throw new RegistryError('DENIED', 'no');
        },
      }),
    });
    const failure = await f.proxy.getManifest('app', 'v1').catch((error: unknown) => error);
    expect(isStowageError(failure, 'DENIED')).toBe(true);
  });
});
