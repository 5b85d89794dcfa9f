// stowage-server in database mode on the PostgreSQL server: the conformance
// suite through the HTTP API, readiness that follows the database, the pool
// and GC in /metrics, and the online GC workers removing what nothing
// references once its review is due.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createPostgresDatabase, migrate } from '@stowage/metadata-db';
import { createRegistryClient } from '@stowage/registry-client';
import {
  createTestDatabase,
  postgresPeer,
  pushImage,
  randomBlob,
  randomImage,
  registryConformance,
  requirePeers,
  type TestDatabase,
} from '@stowage/testing';
import { pino } from 'pino';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { loadConfig } from './config.js';
import { type RunningServer, startServer } from './server.js';

const postgres = await postgresPeer();
const cleanups: (() => Promise<void>)[] = [];
afterAll(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup().catch(() => undefined);
});

/** A fresh, migrated database, dropped after the file. */
async function migratedDatabase(): Promise<TestDatabase> {
  const test = await createTestDatabase('stowage_server_db');
  cleanups.push(() => test.drop());
  const db = createPostgresDatabase({ connectionString: test.url });
  try {
    await migrate(db);
  } finally {
    await db.close();
  }
  return test;
}

async function startDatabaseServer(
  databaseUrl: string,
  overrides: Record<string, unknown> = {},
): Promise<{ running: RunningServer; root: string }> {
  const root = await mkdtemp(join(tmpdir(), 'stowage-server-database-'));
  cleanups.push(() => rm(root, { recursive: true, force: true }));
  const config = await loadConfig({
    overrides: {
      'storage.filesystem.rootdirectory': root,
      'http.addr': '127.0.0.1:0',
      'database.url': databaseUrl,
      ...overrides,
    },
  });
  const running = await startServer(config, { logger: pino({ level: 'silent' }) });
  cleanups.push(() => running.close());
  return { running, root };
}

describe('stowage-server in database mode', () => {
  if (!requirePeers(postgres)) return;

  registryConformance({
    name: 'registry-client → stowage-server in database mode (PostgreSQL)',
    create: async () => {
      const test = await migratedDatabase();
      const { running } = await startDatabaseServer(test.url);
      const registry = createRegistryClient({
        registry: new URL(running.url).host,
        auth: { useConfigFiles: false },
        referrersTagFallback: false,
      });
      return { registry, cleanup: () => registry.close() };
    },
  });

  it('is ready while the database answers, and says why not once it is gone', async () => {
    const test = await migratedDatabase();
    const { running } = await startDatabaseServer(test.url);
    const ready = await fetch(`${running.url}/readyz`);
    expect([ready.status, await ready.text()]).toEqual([200, 'ready\n']);
    expect(running.backend.kind).toBe('database');
    await test.drop();
    const gone = await fetch(`${running.url}/readyz`);
    expect(gone.status).toBe(503);
    expect(gone.headers.get('retry-after')).toBe('1');
    expect(await gone.text()).toMatch(/^database unavailable: /);
    // a registry request fails with an OCI error, and the process goes on serving
    const manifest = await fetch(`${running.url}/v2/app/manifests/v1`);
    expect(manifest.status).toBeGreaterThanOrEqual(500);
    expect(((await manifest.json()) as { errors: unknown[] }).errors).toHaveLength(1);
    expect((await fetch(`${running.url}/healthz`)).status).toBe(200);
  });

  it('removes what nothing references once its review is due, and counts it in /metrics', async () => {
    const test = await migratedDatabase();
    const { running } = await startDatabaseServer(test.url, {
      'gc.reviewafter': '3s',
      'gc.interval': '100ms',
    });
    const client = createRegistryClient({
      registry: new URL(running.url).host,
      auth: { useConfigFiles: false },
    });
    cleanups.push(() => client.close());
    // pushed well within the review delay of three seconds (a blob collected before its manifest came is the other test's case)
    const image = randomImage({ layers: 2 });
    await pushImage(client, 'gc/app', image, 'v1');
    const orphan = randomBlob(1000);
    await client.putBlob('gc/app', orphan.bytes, { digest: orphan.descriptor.digest });
    await vi.waitFor(
      async () => expect(await client.headBlob('gc/app', orphan.descriptor.digest)).toBeUndefined(),
      {
        timeout: 10_000,
        interval: 100,
      },
    );
    for (const blob of image.blobs)
      expect(await client.headBlob('gc/app', blob.descriptor.digest)).toBeDefined();
    expect((await client.getManifest('gc/app', 'v1')).digest).toBe(image.manifest.digest);
    const metrics = await (await fetch(`${running.url}/metrics`)).text();
    expect(metrics).toMatch(/^stowage_database_pool_max_connections 10$/m);
    expect(metrics).toMatch(/^stowage_gc_blobs_removed_total [1-9]\d*$/m);
    expect(metrics).toMatch(/^stowage_gc_bytes_freed_total \d{4,}$/m);
  });
});
