import { writeFileSync } from 'node:fs';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { isStowageError, type Registry } from '@stowage/oci';
import {
  createMemoryRegistry,
  type MemoryRegistry,
  pushImage,
  pushIndex,
  randomImage,
  randomIndex,
  type SpyRegistry,
  spyRegistry,
} from '@stowage/testing';
import { afterEach, describe, expect, it } from 'vitest';
import { parseSyncConfig, runSyncPass, type SyncConfig, type SyncEvent } from './index.js';

const dirs: string[] = [];
afterEach(async () => {
  for (const dir of dirs.splice(0)) await rm(dir, { recursive: true, force: true });
});

/** An upstream of memory registries by URL, each behind a spy that counts its calls. */
function upstreams(byUrl: Record<string, Registry>) {
  const spies = new Map<string, SpyRegistry>();
  for (const [url, registry] of Object.entries(byUrl)) spies.set(url, spyRegistry(registry));
  return {
    spies,
    connect: (_upstream: unknown, url: string) => {
      const spy = spies.get(url);
      if (!spy) throw Object.assign(new Error(`connect ECONNREFUSED ${url}`), { code: 'UNAVAILABLE' });
      return spy;
    },
  };
}

async function config(section: unknown): Promise<SyncConfig> {
  return await parseSyncConfig(section);
}

async function filled(): Promise<{ upstream: MemoryRegistry; images: Record<string, string> }> {
  const upstream = createMemoryRegistry();
  const images: Record<string, string> = {};
  images['app:v1'] = await pushImage(upstream, 'app', randomImage({ layers: 2, seed: 1 }), 'v1');
  images['app:v2'] = await pushImage(upstream, 'app', randomImage({ layers: 2, seed: 2 }), 'v2');
  images['team/web:latest'] = await pushIndex(
    upstream,
    'team/web',
    randomIndex({ platforms: ['linux/amd64', 'linux/arm64'], seed: 3 }),
    'latest',
  );
  images['other:x'] = await pushImage(upstream, 'other', randomImage({ seed: 4 }), 'x');
  return { upstream, images };
}

describe('runSyncPass', () => {
  it('mirrors what the rules cover, and a second pass makes one manifest HEAD per tag and nothing else', async () => {
    const { upstream, images } = await filled();
    const { spies, connect } = upstreams({ 'http://up.example': upstream });
    const spy = spies.get('http://up.example') as SpyRegistry;
    const local = createMemoryRegistry();
    const cfg = await config({
      registries: [{ urls: ['http://up.example'], content: [{ prefix: 'app' }, { prefix: 'team/**' }] }],
    });
    const events: SyncEvent[] = [];
    const first = await runSyncPass({
      config: cfg,
      destination: local,
      connect,
      onEvent: (e) => events.push(e),
    });
    expect(first.failed).toBe(0);
    expect(first.synced).toBe(3);
    // the plan events add up to the images of the pass (each repository's listing adds its own)
    const planned = events.reduce((sum, e) => sum + (e.type === 'plan' ? e.images : 0), 0);
    expect(planned).toBe(3);
    expect(events.filter((e) => e.type === 'image-done')).toHaveLength(3);
    expect((await local.headManifest('app', 'v1'))?.digest).toBe(images['app:v1']);
    expect((await local.headManifest('team/web', 'latest'))?.digest).toBe(images['team/web:latest']);
    expect(await local.headManifest('other', 'x')).toBeUndefined();

    spy.reset();
    const second = await runSyncPass({ config: cfg, destination: local, connect });
    expect(second).toMatchObject({ synced: 0, skipped: 3, failed: 0, bytesCopied: 0 });
    const methods = spy.calls.map((c) => c.method);
    expect(methods.filter((m) => m === 'headManifest')).toHaveLength(3);
    expect(methods.filter((m) => m === 'getBlob' || m === 'headBlob' || m === 'getManifest')).toEqual([]);
  });

  it('re-syncs only what changed when a tag moves', async () => {
    const { upstream } = await filled();
    const { spies, connect } = upstreams({ 'http://up.example': upstream });
    const spy = spies.get('http://up.example') as SpyRegistry;
    const local = createMemoryRegistry();
    const cfg = await config({ registries: [{ urls: ['http://up.example'], content: [{ prefix: 'app' }] }] });
    await runSyncPass({ config: cfg, destination: local, connect });
    // v2 now shares v1's layers and adds one of its own.
    const v1 = randomImage({ layers: 2, seed: 1 });
    const moved = randomImage({ layers: 1, seed: 9, sharedLayers: v1.layers });
    const digest = await pushImage(upstream, 'app', moved, 'v2');
    spy.reset();
    const report = await runSyncPass({ config: cfg, destination: local, connect });
    expect(report).toMatchObject({ synced: 1, skipped: 1, failed: 0 });
    expect((await local.headManifest('app', 'v2'))?.digest).toBe(digest);
    const fetched = spy.calls.filter((c) => c.method === 'getBlob').map((c) => c.args[1]);
    // The new config and the new layer; the two shared layers were already local.
    expect(fetched.sort()).toEqual(
      [moved.config.descriptor.digest, moved.layers[2]?.descriptor.digest].sort(),
    );
  });

  it('keeps a failure with its image: a corrupt blob fails that image alone and commits nothing of it', async () => {
    const { upstream, images } = await filled();
    const bad = randomImage({ layers: 3, seed: 11 });
    await pushImage(upstream, 'app', bad, 'broken');
    const badLayer = bad.layers[1]?.descriptor.digest;
    const corrupt = spyRegistry(upstream, {
      hooks: {
        getBlob: (async (repository: string, digest: string, options: never) => {
          const content = await upstream.getBlob(repository, digest as never, options);
          if (digest !== badLayer) return content;
          const bytes = Buffer.from(await Buffer.concat(await content.stream.toArray()));
          bytes[0] = (bytes[0] ?? 0) ^ 1;
          return { ...content, stream: Readable.from([bytes]) };
        }) as never,
      },
    });
    const local = createMemoryRegistry();
    const cfg = await config({ registries: [{ urls: ['http://up.example'], content: [{ prefix: 'app' }] }] });
    const report = await runSyncPass({ config: cfg, destination: local, connect: () => corrupt });
    expect(report).toMatchObject({ synced: 2, failed: 1 });
    const failed = report.images.find((i) => i.status === 'failed');
    expect(failed).toMatchObject({
      repository: 'app',
      reference: 'broken',
      error: { code: 'DIGEST_INVALID' },
    });
    expect(await local.headManifest('app', 'broken')).toBeUndefined();
    for (const blob of bad.blobs) expect(await local.headBlob('app', blob.descriptor.digest)).toBeUndefined();
    expect((await local.headManifest('app', 'v1'))?.digest).toBe(images['app:v1']);
  });

  it('uses the next URL when the origin does not answer', async () => {
    const { upstream } = await filled();
    const { spies, connect } = upstreams({ 'http://mirror.example': upstream });
    const local = createMemoryRegistry();
    const cfg = await config({
      registries: [
        { urls: ['http://origin.example', 'http://mirror.example'], content: [{ prefix: 'app' }] },
      ],
    });
    const report = await runSyncPass({ config: cfg, destination: local, connect });
    expect(report).toMatchObject({ synced: 2, failed: 0 });
    expect(report.images.every((i) => i.upstream === 'http://mirror.example')).toBe(true);
    expect(spies.get('http://mirror.example')?.count('listTags')).toBe(1);
  });

  it('reports an upstream none of whose URLs answers, and syncs the others', async () => {
    const { upstream } = await filled();
    const { connect } = upstreams({ 'http://up.example': upstream });
    const local = createMemoryRegistry();
    const cfg = await config({
      registries: [
        { urls: ['http://down.example'], content: [{ prefix: 'app' }] },
        { urls: ['http://up.example'], content: [{ prefix: 'other' }] },
      ],
    });
    const report = await runSyncPass({ config: cfg, destination: local, connect });
    expect(report.errors).toEqual([expect.objectContaining({ code: 'UPSTREAM_UNREACHABLE' })]);
    expect(report).toMatchObject({ synced: 1, failed: 0 });
  });

  it('cancels the upload sessions a dead run journalled, and leaves no journal behind', async () => {
    const { upstream } = await filled();
    const { connect } = upstreams({ 'http://up.example': upstream });
    const local = createMemoryRegistry();
    const stateDir = await mkdtemp(join(tmpdir(), 'stowage-sync-state-'));
    dirs.push(stateDir);
    const orphan = await local.startUpload('app');
    const finished = await local.startUpload('app');
    await local.cancelUpload('app', finished.id);
    // A run that died (no such process): one session still open, one closed.
    const journal = join(stateDir, 'staging');
    await import('node:fs/promises').then((fs) => fs.mkdir(journal, { recursive: true }));
    writeFileSync(
      join(journal, 'journal-2147483646-dead.log'),
      `+ app ${orphan.id}\n+ app ${finished.id}\n- app ${finished.id}\n+ app`,
    );
    const cfg = await config({ registries: [{ urls: ['http://up.example'], content: [{ prefix: 'app' }] }] });
    const report = await runSyncPass({ config: cfg, destination: local, connect, stateDir });
    expect(report.failed).toBe(0);
    const error = await local.getUpload('app', orphan.id).catch((e: unknown) => e);
    expect(isStowageError(error, 'BLOB_UPLOAD_UNKNOWN')).toBe(true);
    expect(await readdir(journal)).toEqual([]);
  });
});
