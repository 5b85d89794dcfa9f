// The shared conformance suite against the database-backed registry: on
// embedded PGlite and on the PostgreSQL server, its bytes in a file blob store
// and its uploads in a file staging area, as stowage-server runs it.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createFileBlobStore, createFileStaging } from '@stowage/blob-store';
import { createPgliteDatabase, createPostgresDatabase, type Database, migrate } from '@stowage/metadata-db';
import { createTestDatabase, postgresPeer, registryConformance, requirePeers } from '@stowage/testing';
import { describe } from 'vitest';
import { createDatabaseRegistry } from './registry.js';

const postgres = await postgresPeer();

function onDatabase(name: string, open: () => Promise<{ db: Database; drop?: () => Promise<void> }>) {
  registryConformance({
    name,
    create: async () => {
      const { db, drop } = await open();
      await migrate(db);
      const root = await mkdtemp(join(tmpdir(), 'stowage-database-store-'));
      const registry = await createDatabaseRegistry({
        database: db,
        blobs: createFileBlobStore({ root: join(root, 'blobs'), layout: 'stowage' }),
        staging: createFileStaging({ dir: join(root, 'uploads') }),
        closeDatabase: true,
      });
      return {
        registry,
        cleanup: async () => {
          await registry.close();
          await drop?.();
          await rm(root, { recursive: true, force: true });
        },
      };
    },
  });
}

onDatabase('database store on PGlite', async () => ({ db: await createPgliteDatabase() }));

describe('on a PostgreSQL server', () => {
  if (!requirePeers(postgres)) return;
  onDatabase('database store on PostgreSQL', async () => {
    const test = await createTestDatabase();
    return { db: createPostgresDatabase({ connectionString: test.url, max: 8 }), drop: () => test.drop() };
  });
});
