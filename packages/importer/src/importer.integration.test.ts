// Trees written by a real docker-registry (pushed with skopeo) imported into a
// real PostgreSQL server and into PGlite: exactly the expected rows, and a
// second run changes nothing.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createPgliteDatabase, createPostgresDatabase, type Database, migrate } from '@stowage/metadata-db';
import { createTestDatabase, postgresPeer, requirePeers } from '@stowage/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildFixture, type Fixture, readRows } from '../test/fixture.js';
import { importTree } from './importer.js';

const postgres = await postgresPeer();

function suite(name: string, open: () => Promise<{ db: Database; drop: () => Promise<void> }>) {
  describe(`importing a docker-registry tree into ${name}`, () => {
    if (!requirePeers('docker-registry', 'skopeo')) return;
    let fixture: Fixture;
    let db: Database;
    let drop: () => Promise<void>;

    beforeAll(async () => {
      fixture = await buildFixture();
      ({ db, drop } = await open());
      await migrate(db);
    }, 120_000);

    afterAll(async () => {
      await db?.close();
      await drop?.();
      await fixture?.cleanup();
    });

    it('a dry run leaves zero rows and reports what it would write', async () => {
      const result = await importTree({ db, root: fixture.root, dryRun: true, lockfiles: false });
      expect(result.rows.tags).toBe(fixture.tags.length);
      expect(result.rows.manifests).toBe(fixture.manifests.length);
      expect(result.rows.blobs).toBe(fixture.blobs.length);
      const rows = await readRows(db);
      for (const value of Object.values(rows)) expect(value).toEqual([]);
    });

    it('imports exactly the expected rows, and a second run changes nothing', async () => {
      const first = await importTree({ db, root: fixture.root });
      expect(first.warnings).toEqual([]);
      const expected = {
        namespaces: fixture.namespaces,
        repositories: fixture.repositories,
        tags: fixture.tags,
        manifests: fixture.manifests,
        references: fixture.references,
        layers: fixture.layers,
        repositoryBlobs: fixture.repositoryBlobs,
        blobs: fixture.blobs,
      };
      expect(await readRows(db)).toEqual(expected);
      // row counts match the tree
      expect(first.rows).toEqual({
        namespaces: 3,
        repositories: 5,
        manifests: fixture.manifests.length,
        manifestReferences: fixture.references.length,
        layers: fixture.layers.length,
        tags: fixture.tags.length,
        blobs: fixture.blobs.length,
        repositoryBlobs: fixture.repositoryBlobs.length,
      });
      const snapshot = await db.query(
        'SELECT id, manifest_id, name, created_at, updated_at FROM tags ORDER BY id',
      );
      const second = await importTree({ db, root: fixture.root });
      expect(await readRows(db)).toEqual(expected);
      expect(second.rows).toEqual(first.rows);
      expect(
        (await db.query('SELECT id, manifest_id, name, created_at, updated_at FROM tags ORDER BY id')).rows,
      ).toEqual(snapshot.rows);
      // the lockfiles say the database holds the metadata now
      const lockfiles = join(fixture.root, 'docker/registry/lockfiles');
      expect(await readFile(join(lockfiles, 'database-in-use'), 'utf8')).toBe('{"version":1}');
      await expect(readFile(join(lockfiles, 'filesystem-in-use'))).rejects.toThrow();
      // a dry run after a completed import runs (GitLab refuses it) and leaves the lockfiles as they are
      const dry = await importTree({ db, root: fixture.root, dryRun: true });
      expect(dry.rows.tags).toBe(fixture.tags.length);
      expect(await readFile(join(lockfiles, 'database-in-use'), 'utf8')).toBe('{"version":1}');
      await expect(readFile(join(lockfiles, 'filesystem-in-use'))).rejects.toThrow();
    });

    it('stores configuration payloads and the GC tracking rows', async () => {
      const configs = await db.query<{ n: unknown }>(
        'SELECT count(*) AS n FROM manifests WHERE configuration_payload IS NOT NULL',
      );
      const images = fixture.manifests.length - 2; // the two indexes have no configuration
      expect(Number(configs.rows[0]?.n)).toBe(images);
      const tracked = await db.query<{ n: unknown }>('SELECT count(*) AS n FROM gc_blobs_configurations');
      expect(Number(tracked.rows[0]?.n)).toBe(images);
      const stats = await db.query<{ tags_count: unknown }>('SELECT tags_count FROM import_statistics');
      expect(stats.rows.map((r) => Number(r.tags_count))).toEqual([fixture.tags.length, fixture.tags.length]);
    });
  });
}

suite('PGlite', async () => ({ db: await createPgliteDatabase(), drop: async () => undefined }));

describe('PostgreSQL server', () => {
  if (!requirePeers(postgres)) return;
  suite('PostgreSQL', async () => {
    const test = await createTestDatabase();
    return { db: createPostgresDatabase({ connectionString: test.url }), drop: () => test.drop() };
  });
});
