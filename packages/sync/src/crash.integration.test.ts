import { execFile } from 'node:child_process';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { createImageStore } from '@stowage/image-store';
import { createRegistryHandler } from '@stowage/registry-server';
import { type DockerRegistry, requirePeers, spawnSource, startDockerRegistry } from '@stowage/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { populateUpstream, type UpstreamPopulation } from '../test/upstream-fixture.js';
import type { SyncReport } from './index.js';

const exec = promisify(execFile);

/** Runs the sync child; resolves with its report, or `undefined` when it was SIGKILLed. */
function runChild(args: { root: string; upstream: string; stateDir: string; killAtBytes: number }) {
  return new Promise<SyncReport | undefined>((resolve, reject) => {
    const child = spawnSource(
      join(import.meta.dirname, '../test/sync-child.ts'),
      [args.root, args.upstream, args.stateDir, String(args.killAtBytes)],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let out = '';
    let err = '';
    child.stdout?.on('data', (chunk: Buffer) => {
      out += chunk.toString();
    });
    child.stderr?.on('data', (chunk: Buffer) => {
      err += chunk.toString();
    });
    child.once('close', (code, signal) => {
      if (signal === 'SIGKILL') return resolve(undefined);
      const line = out.split('\n').find((l) => l.startsWith('done '));
      if (code === 0 && line) return resolve(JSON.parse(line.slice(5)) as SyncReport);
      reject(new Error(`sync child exited with ${code}: ${err}`));
    });
  });
}

/**
 * Every tag the store lists, read whole by skopeo (every blob of it) through our
 * server over the store: skopeo's `oci:` transport cannot see Docker media types.
 */
async function skopeoReadsEveryTag(root: string): Promise<number> {
  const store = await createImageStore({ root, readOnly: true });
  const handler = createRegistryHandler({ registry: store });
  const http: Server = createServer((request, response) => void handler(request, response));
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
  const host = `127.0.0.1:${(http.address() as AddressInfo).port}`;
  const out = await mkdtemp(join(tmpdir(), 'stowage-sync-read-'));
  try {
    const tags: string[] = [];
    for (const repository of (await store.listRepositories()).items) {
      const listed = await store.listTags(repository).catch(() => ({ items: [] as string[] }));
      for (const tag of listed.items) tags.push(`${repository}:${tag}`);
    }
    for (const [i, tag] of tags.entries()) {
      await exec('skopeo', [
        'copy',
        '--all',
        '--preserve-digests',
        '--src-tls-verify=false',
        `docker://${host}/${tag}`,
        `dir:${join(out, String(i))}`,
      ]);
    }
    return tags.length;
  } finally {
    http.closeAllConnections();
    await new Promise<void>((resolve) => http.close(() => resolve()));
    await store.close();
    await rm(out, { recursive: true, force: true });
  }
}

describe('a sync killed with SIGKILL', () => {
  if (!requirePeers('docker-registry', 'skopeo')) return;
  let upstream: DockerRegistry;
  let population: UpstreamPopulation;
  const dirs: string[] = [];

  beforeAll(async () => {
    upstream = await startDockerRegistry();
    population = await populateUpstream(upstream, { layerSize: 256 * 1024 });
  }, 120_000);
  afterAll(async () => {
    await upstream?.stop();
    for (const dir of dirs) await rm(dir, { recursive: true, force: true });
  });

  it('shows no partial image after any kill, and the next run completes leaving no staging behind', async () => {
    const root = await mkdtemp(join(tmpdir(), 'stowage-sync-crash-'));
    const stateDir = await mkdtemp(join(tmpdir(), 'stowage-sync-crash-state-'));
    dirs.push(root, stateDir);
    const step = Math.floor(population.totalBlobBytes / 4);
    let kills = 0;
    let report: SyncReport | undefined;
    for (let run = 0; run < 12 && !report; run++) {
      report = await runChild({ root, upstream: upstream.url, stateDir, killAtBytes: step });
      if (report) break;
      kills++;
      // After each kill: whatever tag the store lists is whole (skopeo reads every blob of it).
      await skopeoReadsEveryTag(root);
    }
    expect(kills).toBeGreaterThanOrEqual(2);
    expect(report).toBeDefined();
    expect(report?.failed).toBe(0);
    expect(report?.errors).toEqual([]);

    const store = await createImageStore({ root, readOnly: true });
    try {
      for (const tag of population.tags) {
        expect(
          (await store.headManifest(tag.repository, tag.tag))?.digest,
          `${tag.repository}:${tag.tag}`,
        ).toBe(tag.digest);
      }
    } finally {
      await store.close();
    }
    expect(await skopeoReadsEveryTag(root)).toBe(population.tags.length);
    // No staging: no upload session in the store, no journal in the state directory.
    expect(await readdir(join(root, '.stowage', 'uploads')).catch(() => [])).toEqual([]);
    expect(await readdir(join(stateDir, 'staging'))).toEqual([]);
  }, 300_000);
});
