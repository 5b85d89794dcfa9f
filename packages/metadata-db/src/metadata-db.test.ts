import { type Digest, digestOf } from '@stowage/oci';
import { createTestDatabase, postgresPeer, requirePeers, type TestDatabase } from '@stowage/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createPgliteDatabase,
  createPostgresDatabase,
  type Database,
  DatabaseError,
  type Transaction,
  toDatabaseError,
} from './database.js';
import { checksum, type Migration, migrate, migrationStatus, migrations } from './migrations.js';
import { decodeDigest, encodeDigest, MetadataStore } from './store.js';

const postgres = await postgresPeer();

async function code(promise: Promise<unknown>): Promise<string | undefined> {
  try {
    await promise;
  } catch (error) {
    if (error instanceof DatabaseError) return error.code;
    throw error;
  }
  return undefined;
}

function suite(name: string, open: () => Promise<{ db: Database; cleanup: () => Promise<void> }>) {
  describe(`metadata-db on ${name}`, () => {
    let db: Database;
    let cleanup: () => Promise<void>;
    beforeAll(async () => {
      ({ db, cleanup } = await open());
    });
    afterAll(async () => {
      await db?.close();
      await cleanup?.();
    });

    it('applies the migrations once, and refuses unknown or edited ones', async () => {
      expect(await migrate(db)).toEqual(migrations.map((m) => m.id));
      expect(await migrate(db)).toEqual([]);
      expect(await migrationStatus(db)).toEqual({ applied: migrations.map((m) => m.id), pending: [] });
      const edited: Migration[] = [{ id: '0001_initial', sql: `${migrations[0]?.sql} -- edited` }];
      expect(await code(migrate(db, edited))).toBe('MIGRATION_EDITED');
      expect(await code(migrationStatus(db, []))).toBe('MIGRATION_UNKNOWN');
      const extra: Migration = { id: '0002_more', sql: 'CREATE TABLE extra_table (id int)' };
      expect(checksum(extra)).toMatch(/^[a-f0-9]{64}$/);
      expect((await migrationStatus(db, [...migrations, extra])).pending).toEqual(['0002_more']);
    });

    it('creates or finds every row, so repeating writes changes nothing', async () => {
      const store = new MetadataStore(db);
      const config = digestOf('config');
      const layer = digestOf('layer');
      const manifest = digestOf('manifest');
      for (let round = 0; round < 2; round++) {
        await db.transaction(async (tx) => {
          const s = store.on(tx);
          const repo = await s.repository('demo/app');
          await s.blob(config, 6);
          await s.blob(layer, 5);
          await s.linkBlob(repo, config);
          await s.linkBlob(repo, layer);
          const id = await s.manifest(repo, {
            digest: manifest,
            payload: new TextEncoder().encode('{"schemaVersion":2}'),
            schemaVersion: 2,
            mediaType: 'application/vnd.oci.image.manifest.v1+json',
            totalSize: 30,
            configuration: {
              digest: config,
              mediaType: 'application/vnd.example.config+json',
              payload: new Uint8Array([1]),
            },
          });
          await s.layer(repo, {
            manifestId: id,
            digest: layer,
            size: 5,
            mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip',
          });
          await s.tag(repo, 'v1', id);
        });
      }
      expect(await store.counts()).toEqual({
        namespaces: 1,
        repositories: 1,
        manifests: 1,
        manifestReferences: 0,
        layers: 1,
        tags: 1,
        blobs: 2,
        repositoryBlobs: 2,
      });
      // a media type met for the first time is recorded
      const { rows } = await db.query(
        "SELECT 1 FROM media_types WHERE media_type = 'application/vnd.example.config+json'",
      );
      expect(rows).toHaveLength(1);
      // the GC triggers ran inside the same transactions
      const queued = await db.query('SELECT event FROM gc_blob_review_queue');
      expect(queued.rows).toHaveLength(2);
      expect((await db.query('SELECT 1 FROM gc_blobs_configurations')).rows).toHaveLength(1);
      expect((await db.query('SELECT 1 FROM gc_blobs_layers')).rows).toHaveLength(1);
    });

    it('writes blobs, links, layers and tags many to a statement, with the same outcome as one by one', async () => {
      const store = new MetadataStore(db);
      const layers = Array.from({ length: 5 }, (_, i) => digestOf(`batched layer ${i}`));
      await db.transaction(async (tx) => {
        const s = store.on(tx);
        const repo = await s.repository('batch/app');
        // a digest given twice, and in no particular order, is one row
        await s.blobs([...layers, layers[0] as Digest].reverse().map((digest) => ({ digest, size: 7 })));
        await s.linkBlobs(repo, [...layers, layers[1] as Digest]);
        const manifest = (name: string) =>
          s.manifest(repo, {
            digest: digestOf(name),
            payload: new TextEncoder().encode('{"schemaVersion":2}'),
            schemaVersion: 2,
            mediaType: 'application/vnd.oci.image.manifest.v1+json',
            totalSize: 35,
          });
        const id = await manifest('batched manifest');
        await s.layers(
          repo,
          id,
          layers.map((digest) => ({ digest, size: 7, mediaType: 'application/vnd.oci.image.layer.v1.tar' })),
        );
        // more than a statement's thousand, then some of them moved
        const names = Array.from({ length: 2_500 }, (_, i) => `t${i}`);
        for (const _ of [1, 2])
          await s.tags(
            repo,
            names.map((name) => ({ name, manifestId: id })),
          );
        const other = await manifest('another manifest');
        await s.tags(repo, [
          { name: 't7', manifestId: other },
          { name: 't2400', manifestId: other },
        ]);
        const targets = await s.tagTargets(repo);
        expect(targets.size).toBe(2_500);
        expect([targets.get('t7'), targets.get('t2400'), targets.get('t8')]).toEqual([other, other, id]);
        expect((await s.manifestIds(repo)).size).toBe(2);
      });
      const count = async (sql: string) => Number((await db.query<{ n: unknown }>(sql)).rows[0]?.n);
      expect(await count('SELECT count(*) AS n FROM blobs WHERE size = 7')).toBe(5);
      expect(
        await count(
          'SELECT count(*) AS n FROM repository_blobs r JOIN blobs b ON b.digest = r.blob_digest WHERE b.size = 7',
        ),
      ).toBe(5);
      expect(await count('SELECT count(*) AS n FROM layers WHERE size = 7')).toBe(5);
    });

    it('rolls a failed transaction back whole, and a failed savepoint only in part', async () => {
      const store = new MetadataStore(db);
      await expect(
        db.transaction(async (tx) => {
          await store.on(tx).repository('rollback/me');
          throw new Error('boom');
        }),
      ).rejects.toThrow('boom');
      expect(await store.findRepository('rollback/me')).toBeUndefined();
      await db.transaction(async (tx) => {
        await store.on(tx).repository('kept/repo');
        await tx
          .savepoint(async (sp) => {
            await store.on(sp).repository('undone/repo');
            await sp.query('SELECT * FROM no_such_table');
          })
          .catch((error: unknown) => {
            expect(error).toBeInstanceOf(DatabaseError);
          });
      });
      expect(await store.findRepository('kept/repo')).toBeDefined();
      expect(await store.findRepository('undone/repo')).toBeUndefined();
    });

    it('forgets media type ids a rolled-back transaction inserted, and keeps those of a committed one', async () => {
      const store = new MetadataStore(db);
      const repo = await store.repository('cache/app');
      const config = digestOf('cache config');
      await store.blob(config, 12);
      const write = (s: MetadataStore, digest: string, mediaType: string) =>
        s.manifest(repo, {
          digest: digestOf(digest),
          payload: new TextEncoder().encode(digest),
          schemaVersion: 2,
          mediaType: 'application/vnd.oci.image.manifest.v1+json',
          totalSize: 1,
          configuration: { digest: config, mediaType },
        });
      // the first attempt inserts a new media type, then fails: its row (and id) are gone
      const fresh = 'application/vnd.example.rolled-back+json';
      await expect(
        db.transaction(async (tx) => {
          await write(store.on(tx), 'attempt one', fresh);
          throw new DatabaseError('UNAVAILABLE', 'lost in the middle');
        }),
      ).rejects.toThrow('lost in the middle');
      // the retry must insert it again, not reuse the id of the rolled-back row
      await db.transaction((tx) => write(store.on(tx), 'attempt two', fresh));
      // the same inside a savepoint that rolls back
      const inSavepoint = 'application/vnd.example.savepoint+json';
      await db.transaction(async (tx) => {
        await tx
          .savepoint(async (sp) => {
            await store.on(sp).mediaTypeId(inSavepoint);
            throw new Error('undo the savepoint');
          })
          .catch(() => undefined);
        await write(store.on(tx), 'after the savepoint', inSavepoint);
      });
      const types = await db.query<{ media_type: string }>(
        'SELECT media_type FROM media_types WHERE media_type = ANY($1::text[]) ORDER BY media_type',
        [[fresh, inSavepoint]],
      );
      expect(types.rows.map((r) => r.media_type)).toEqual([fresh, inSavepoint]);
      // a committed id is cached: another transaction uses it without asking
      const seen: string[] = [];
      await db.transaction(async (tx) => {
        const counting: Transaction = {
          ...tx,
          query(sql, params) {
            seen.push(sql);
            return tx.query(sql, params);
          },
        };
        await store.on(counting).mediaTypeId(fresh);
      });
      expect(seen).toEqual([]);
    });

    it('refuses to report a transaction committed when a failed statement aborted it', async () => {
      const store = new MetadataStore(db);
      const error = await db
        .transaction(async (tx) => {
          await store.on(tx).repository('aborted/repo');
          await tx.query('SELECT * FROM no_such_table').catch(() => undefined);
          return 'looks fine';
        })
        .catch((e: unknown) => e);
      expect(error).toBeInstanceOf(DatabaseError);
      expect((error as DatabaseError).sqlState).toBe('25P02');
      expect(await store.findRepository('aborted/repo')).toBeUndefined();
    });

    it('maps PostgreSQL errors to typed ones with retryable set', async () => {
      const err = await db
        .query('INSERT INTO media_types (media_type) VALUES ($1)', ['application/json'])
        .catch((e) => e);
      expect(err).toBeInstanceOf(DatabaseError);
      expect(err.code).toBe('UNIQUE_VIOLATION');
      expect(err.retryable).toBe(false);
      const fk = await db
        .query(
          'INSERT INTO repository_blobs (top_level_namespace_id, repository_id, blob_digest) VALUES (1, 999999, $1)',
          [encodeDigest(digestOf('x'))],
        )
        .catch((e) => e);
      expect(fk.code).toBe('FOREIGN_KEY_VIOLATION');
    });
  });
}

describe('error classification', () => {
  const pgError = (code: string, message = `failed with ${code}`) =>
    Object.assign(new Error(message), { code, severity: 'ERROR' });
  const network = (code: string) => Object.assign(new Error(`connect ${code} 127.0.0.1:5432`), { code });

  it('marks transient failures retryable', () => {
    const cases: [unknown, string][] = [
      [pgError('40001'), 'SERIALIZATION_FAILURE'],
      [pgError('40P01'), 'DEADLOCK'],
      [pgError('57014', 'canceling statement due to statement timeout'), 'QUERY_CANCELED'],
      [pgError('55P03', 'could not obtain lock on row'), 'LOCK_NOT_AVAILABLE'],
      [pgError('53300', 'sorry, too many clients already'), 'TOO_MANY_CONNECTIONS'],
      [pgError('57P01', 'terminating connection due to administrator command'), 'UNAVAILABLE'],
      [pgError('08006'), 'UNAVAILABLE'],
      [network('ECONNRESET'), 'UNAVAILABLE'],
      [network('ETIMEDOUT'), 'UNAVAILABLE'],
      [network('ECONNREFUSED'), 'UNAVAILABLE'],
      [network('EPIPE'), 'UNAVAILABLE'],
      [new Error('Connection terminated unexpectedly'), 'UNAVAILABLE'],
      [new Error('Connection terminated due to connection timeout'), 'UNAVAILABLE'],
      [new Error('Client has encountered a connection error and is not queryable'), 'UNAVAILABLE'],
    ];
    for (const [error, expected] of cases) {
      const mapped = toDatabaseError(error);
      expect(mapped.code, (error as Error).message).toBe(expected);
      expect(mapped.retryable, (error as Error).message).toBe(true);
    }
    expect(toDatabaseError(pgError('57014')).sqlState).toBe('57014');
  });

  it('leaves data, permission and unknown failures not retryable', () => {
    const cases: [unknown, string][] = [
      [pgError('23505'), 'UNIQUE_VIOLATION'],
      [pgError('23503'), 'FOREIGN_KEY_VIOLATION'],
      [pgError('23514'), 'CHECK_VIOLATION'],
      [pgError('22001'), 'DATABASE'],
      [pgError('42501'), 'PERMISSION'],
      [pgError('25006'), 'READ_ONLY'],
      [new Error('something else entirely'), 'DATABASE'],
    ];
    for (const [error, expected] of cases) {
      const mapped = toDatabaseError(error);
      expect(mapped.code, (error as Error).message).toBe(expected);
      expect(mapped.retryable, (error as Error).message).toBe(false);
    }
  });
});

describe('digest encoding', () => {
  it('stores the algorithm in one byte', () => {
    const sha256 = digestOf('a');
    const sha512 = digestOf('a', 'sha512');
    expect(encodeDigest(sha256)[0]).toBe(1);
    expect(encodeDigest(sha256)).toHaveLength(33);
    expect(encodeDigest(sha512)[0]).toBe(2);
    expect(decodeDigest(encodeDigest(sha256))).toBe(sha256);
    expect(decodeDigest(encodeDigest(sha512))).toBe(sha512);
    expect(() => decodeDigest(new Uint8Array([9, 1]))).toThrow(DatabaseError);
  });
});

suite('PGlite', async () => {
  const db = await createPgliteDatabase();
  return { db, cleanup: async () => undefined };
});

describe('on a PostgreSQL server', () => {
  if (!requirePeers(postgres)) return;
  let test: TestDatabase;
  suite('PostgreSQL', async () => {
    test = await createTestDatabase();
    return { db: createPostgresDatabase({ connectionString: test.url }), cleanup: () => test.drop() };
  });
});
