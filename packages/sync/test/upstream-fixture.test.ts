import { createHash } from 'node:crypto';
import { stat } from 'node:fs/promises';
import { createRegistryClient, type RegistryClient } from '@stowage/registry-client';
import {
  type CountingProxy,
  collect,
  type DockerRegistry,
  pushImage,
  randomImage,
  requirePeers,
  startCountingProxy,
  startDockerRegistry,
} from '@stowage/testing';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import {
  blobDataPath,
  corruptBlob,
  MANY_TAGS_ALIASES,
  MANY_TAGS_REPOSITORY,
  NON_SEMVER_TAGS,
  populateUpstream,
  SEMVER_TAGS,
  type UpstreamPopulation,
} from './upstream-fixture.js';

const ACCEPT = [
  'application/vnd.oci.image.index.v1+json',
  'application/vnd.oci.image.manifest.v1+json',
  'application/vnd.docker.distribution.manifest.v2+json',
  'application/vnd.docker.distribution.manifest.list.v2+json',
].join(', ');

// Everything is checked over plain fetch, not our registry client: the fixture is
// what the client's tests are measured against.
async function manifest(registry: DockerRegistry, repository: string, reference: string) {
  const response = await fetch(`${registry.url}/v2/${repository}/manifests/${reference}`, {
    headers: { accept: ACCEPT },
  });
  const bytes = new Uint8Array(await response.arrayBuffer());
  return {
    status: response.status,
    digest: response.headers.get('docker-content-digest'),
    mediaType: response.headers.get('content-type'),
    computed: `sha256:${createHash('sha256').update(bytes).digest('hex')}`,
    json: response.status === 200 ? JSON.parse(new TextDecoder().decode(bytes)) : undefined,
  };
}

async function blob(registry: DockerRegistry, repository: string, digest: string) {
  const response = await fetch(`${registry.url}/v2/${repository}/blobs/${digest}`);
  const bytes = new Uint8Array(await response.arrayBuffer());
  return {
    status: response.status,
    size: bytes.byteLength,
    computed: `sha256:${createHash('sha256').update(bytes).digest('hex')}`,
  };
}

describe('populateUpstream fills a docker-registry with skopeo', () => {
  if (!requirePeers('docker-registry', 'skopeo')) return;

  let registry: DockerRegistry;
  let upstream: UpstreamPopulation;

  beforeAll(async () => {
    registry = await startDockerRegistry();
    upstream = await populateUpstream(registry);
  });
  afterAll(async () => {
    await registry?.stop();
  });

  it('lists every repository of the description in the catalog', async () => {
    const response = await fetch(`${registry.url}/v2/_catalog?n=1000`);
    const { repositories } = (await response.json()) as { repositories: string[] };
    expect([...repositories].sort()).toEqual(Object.keys(upstream.repositories).sort());
    expect(repositories).toEqual(expect.arrayContaining(['team/app/api', 'team/app/web', 'other/tool']));
  });

  it('serves every tag with the described digest and media type', async () => {
    for (const entry of upstream.tags) {
      const got = await manifest(registry, entry.repository, entry.tag);
      expect(got.status, `${entry.repository}:${entry.tag}`).toBe(200);
      expect(got.digest, `${entry.repository}:${entry.tag}`).toBe(entry.digest);
      expect(got.computed).toBe(entry.digest);
      expect(got.mediaType).toBe(entry.mediaType);
    }
  });

  it('has two two-platform indexes (OCI and Docker), each child and blob present', async () => {
    const indexes = upstream.tags.filter((t) => t.isIndex);
    const distinct = new Map(indexes.map((t) => [t.digest, t]));
    expect(distinct.size).toBe(2);
    expect(new Set([...distinct.values()].map((t) => t.mediaType))).toEqual(
      new Set([
        'application/vnd.oci.image.index.v1+json',
        'application/vnd.docker.distribution.manifest.list.v2+json',
      ]),
    );
    for (const entry of distinct.values()) {
      expect(entry.platforms).toEqual(['linux/amd64', 'linux/arm64']);
      const index = await manifest(registry, entry.repository, entry.digest);
      expect(index.json.manifests.map((m: { digest: string }) => m.digest)).toEqual(
        entry.images.map((i) => i.digest),
      );
      for (const child of entry.images) {
        const got = await manifest(registry, entry.repository, child.digest);
        expect(got.status).toBe(200);
        expect(got.json.config.digest).toBe(child.config);
        expect(got.json.layers.map((l: { digest: string }) => l.digest)).toEqual(child.layers);
        for (const digest of child.blobs) {
          const b = await blob(registry, entry.repository, digest);
          expect(b.status).toBe(200);
          expect(b.computed).toBe(digest);
          expect(b.size).toBe(upstream.blobSizes.get(digest));
        }
      }
      // the children share a layer, so the tag's blob list is shorter than the children's together
      expect(entry.blobs.length).toBeLessThan(entry.images.flatMap((i) => i.blobs).length);
    }
  });

  it('describes every blob of a single image, and each is served', async () => {
    const entry = upstream.tag('single/oci', 'v1');
    expect(entry.isIndex).toBe(false);
    expect(entry.images).toHaveLength(1);
    const got = await manifest(registry, 'single/oci', 'v1');
    expect([got.json.config.digest, ...got.json.layers.map((l: { digest: string }) => l.digest)]).toEqual(
      entry.blobs,
    );
    for (const digest of entry.blobs)
      expect((await blob(registry, 'single/oci', digest)).computed).toBe(digest);
  });

  it('has images that share layers across repositories', () => {
    const base = upstream.tag('shared/base', 'v1');
    const derived = upstream.tag('shared/derived', 'v1');
    const baseLayers = base.images[0]?.layers ?? [];
    expect(baseLayers).toHaveLength(2);
    expect(derived.images[0]?.layers.slice(0, 2)).toEqual(baseLayers);
    expect(derived.digest).not.toBe(base.digest);
    const api = upstream.tag('team/app/api', 'v1.0.0').images[0]?.layers[0];
    expect(upstream.tag('team/app/web', 'v1.0.0').images[0]?.layers[0]).toBe(api);
  });

  it('has one repository with 30 tags, semver and not, aliases sharing a manifest', async () => {
    const response = await fetch(`${registry.url}/v2/${MANY_TAGS_REPOSITORY}/tags/list`);
    const { tags } = (await response.json()) as { tags: string[] };
    expect(tags).toHaveLength(30);
    expect([...tags].sort()).toEqual([...SEMVER_TAGS, ...NON_SEMVER_TAGS].sort());
    expect(tags).toEqual(
      expect.arrayContaining(['v1.2.3', '1.2', '1.2.3-rc.1', 'latest', 'dev-abc', 'nightly-2026']),
    );
    for (const [alias, target] of Object.entries(MANY_TAGS_ALIASES))
      expect(upstream.tag(MANY_TAGS_REPOSITORY, alias).digest).toBe(
        upstream.tag(MANY_TAGS_REPOSITORY, target).digest,
      );
    const distinct = new Set(
      Object.values(upstream.repositories[MANY_TAGS_REPOSITORY] ?? {}).map((t) => t.digest),
    );
    expect(distinct.size).toBe(30 - Object.keys(MANY_TAGS_ALIASES).length);
  });

  it('corruptBlob keeps the length and changes the bytes the registry serves', async () => {
    const entry = upstream.tag('other/tool', '1.0');
    const layer = entry.images[0]?.layers[0] as string;
    const before = (await stat(blobDataPath(registry, layer))).size;
    await corruptBlob(registry, layer);
    expect((await stat(blobDataPath(registry, layer))).size).toBe(before);
    const served = await blob(registry, 'other/tool', layer);
    expect(served.status).toBe(200);
    expect(served.size).toBe(before);
    expect(served.computed).not.toBe(layer);
  });
});

describe('populateUpstream options', () => {
  if (!requirePeers('docker-registry', 'skopeo')) return;

  let registry: DockerRegistry;
  beforeAll(async () => {
    registry = await startDockerRegistry();
  });
  afterAll(async () => {
    await registry?.stop();
  });

  it('pushes custom specs with their sizes; the same seed gives the same digests, another seed others', async () => {
    const specs = [
      { repository: 'bench/a', tags: ['v1'], layers: 2, layerSize: 300_000 },
      { repository: 'bench/b', tags: ['v1'], platforms: ['linux/amd64', 'linux/arm64'], layerSize: 5000 },
    ];
    const first = await populateUpstream(registry, { specs, seed: 7 });
    expect(Object.keys(first.repositories).sort()).toEqual(['bench/a', 'bench/b']);
    const a = first.tag('bench/a', 'v1');
    const layerSizes = a.images[0]?.layers.map((d) => first.blobSizes.get(d as `sha256:${string}`));
    expect(layerSizes).toEqual([300_000, 300_000]);
    expect((await manifest(registry, 'bench/a', 'v1')).digest).toBe(a.digest);
    expect(first.tag('bench/b', 'v1').isIndex).toBe(true);

    const again = await populateUpstream(registry, { specs, seed: 7 });
    expect(again.tag('bench/a', 'v1').digest).toBe(a.digest);
    expect(again.tag('bench/b', 'v1').digest).toBe(first.tag('bench/b', 'v1').digest);

    const other = await populateUpstream(registry, { specs: [specs[0] as (typeof specs)[0]], seed: 8 });
    expect(other.tag('bench/a', 'v1').digest).not.toBe(a.digest);
    expect((await manifest(registry, 'bench/a', 'v1')).digest).toBe(other.tag('bench/a', 'v1').digest);
  });

  it('refuses a tag named twice before pushing anything', async () => {
    await expect(
      populateUpstream(registry, {
        specs: [
          { repository: 'dup/x', tags: ['v1'] },
          { repository: 'dup/x', tags: ['v1'] },
        ],
      }),
    ).rejects.toThrow(/dup\/x:v1 is named twice/);
    expect((await manifest(registry, 'dup/x', 'v1')).status).toBe(404);
  });
});

// The counting proxy (in @stowage/testing, which cannot depend on the registry
// client) driven by the client the sync uses, in front of the fixture.
describe('the counting proxy in front of the upstream fixture, through the registry client', () => {
  if (!requirePeers('docker-registry', 'skopeo')) return;

  let registry: DockerRegistry;
  let upstream: UpstreamPopulation;
  let proxy: CountingProxy;
  let client: RegistryClient;
  /** The client's clock: no real waits; it records what the retry loops asked to wait. */
  let slept: number[];

  beforeAll(async () => {
    registry = await startDockerRegistry();
    upstream = await populateUpstream(registry, {
      specs: [
        { repository: 'proxied/index', tags: ['v1'], platforms: ['linux/amd64', 'linux/arm64'] },
        { repository: 'proxied/tags', tags: ['a'] },
        { repository: 'proxied/tags', tags: ['b'] },
      ],
    });
    proxy = await startCountingProxy({ target: registry.url });
    slept = [];
    client = createRegistryClient({
      registry: proxy.host,
      retry: {
        retries: 3,
        minDelayMs: 10,
        maxDelayMs: 50,
        maxRetryAfterMs: 60_000,
        clock: { now: () => 0, sleep: async (ms: number) => void slept.push(ms) },
      },
    });
  });
  afterAll(async () => {
    await client?.close();
    await proxy?.close();
    await registry?.stop();
  });
  beforeEach(() => {
    proxy.reset();
    slept.length = 0;
  });

  it('counts what the client asks: one tag listing, one manifest GET per manifest', async () => {
    expect((await client.listTags('proxied/tags')).items).toEqual(['a', 'b']);
    const index = await client.getManifest('proxied/index', 'v1');
    expect(index.digest).toBe(upstream.tag('proxied/index', 'v1').digest);
    for (const child of upstream.tag('proxied/index', 'v1').images)
      expect((await client.headManifest('proxied/index', child.digest))?.digest).toBe(child.digest);
    expect(proxy.count({ method: 'GET', path: '/v2/proxied/tags/tags/list' })).toBe(1);
    expect(proxy.count({ method: 'GET', path: /\/manifests\// })).toBe(1);
    expect(proxy.count({ method: 'HEAD', path: /\/manifests\/sha256:/ })).toBe(2);
    expect(proxy.count({ path: /\/blobs\// })).toBe(0);
  });

  it('a 429 with Retry-After is waited out by the client, and the retry goes through', async () => {
    const entry = upstream.tag('proxied/tags', 'a');
    proxy.failNext({
      status: 429,
      retryAfter: 3,
      match: { method: 'GET', path: '/v2/proxied/tags/manifests/a' },
    });
    expect((await client.getManifest('proxied/tags', 'a')).digest).toBe(entry.digest);
    expect(slept).toEqual([3000]);
    expect(proxy.requests().map((r) => [r.method, r.status, r.injected])).toEqual([
      ['GET', 429, true],
      ['GET', 200, false],
    ]);
  });

  it('a 503 on a blob is retried; the blob arrives whole', async () => {
    const layer = upstream.tag('proxied/tags', 'b').images[0]?.layers[0] as `sha256:${string}`;
    proxy.failNext({
      status: 503,
      times: 2,
      match: { method: 'GET', path: `/v2/proxied/tags/blobs/${layer}` },
    });
    const blob = await client.getBlob('proxied/tags', layer);
    const bytes = await collect(blob.stream);
    expect(`sha256:${createHash('sha256').update(bytes).digest('hex')}`).toBe(layer);
    expect(slept).toHaveLength(2);
    expect(proxy.count({ path: `/v2/proxied/tags/blobs/${layer}`, injected: true })).toBe(2);
    expect(proxy.count({ path: `/v2/proxied/tags/blobs/${layer}`, status: 200 })).toBe(1);
  });

  it('a chunked push follows the rewritten Locations through the proxy', async () => {
    const chunked = createRegistryClient({
      registry: proxy.host,
      chunkSize: 256 * 1024,
      monolithicMaxBytes: 256 * 1024,
      singleRequestMaxBytes: 0,
    });
    try {
      const image = randomImage({ layers: 1, layerSize: 1024 * 1024 + 5 });
      await pushImage(chunked, 'proxied/pushed', image, 'v1');
      expect((await manifest(registry, 'proxied/pushed', 'v1')).digest).toBe(image.manifest.digest);
      // every upload request after the POST came back to the proxy
      expect(
        proxy.count({ method: 'PATCH', path: /^\/v2\/proxied\/pushed\/blobs\/uploads\// }),
      ).toBeGreaterThanOrEqual(4);
      expect(proxy.count({ method: 'PUT', path: /^\/v2\/proxied\/pushed\/blobs\/uploads\// })).toBe(2);
      expect(proxy.count({ method: 'PUT', path: '/v2/proxied/pushed/manifests/v1', status: 201 })).toBe(1);
    } finally {
      await chunked.close();
    }
  });
});
