// Online garbage collection: what the review queues hold after pushes and
// deletes, what a review removes and keeps, and how a review and a push that
// race over one blob end (on the PostgreSQL server, with a second connection
// holding the push's locks open at the point that matters).
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createFileBlobStore, createFileStaging, type FileBlobStore } from '@stowage/blob-store';
import {
  createPgliteDatabase,
  createPostgresDatabase,
  type Database,
  encodeDigest,
  migrate,
} from '@stowage/metadata-db';
import { digestOf, isStowageError } from '@stowage/oci';
import {
  createTestDatabase,
  postgresPeer,
  pushImage,
  randomBlob,
  randomImage,
  requirePeers,
  type TestDatabase,
} from '@stowage/testing';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { setReviewDelay } from './gc.js';
import { createDatabaseRegistry, type DatabaseRegistry } from './registry.js';

const postgres = await postgresPeer();

interface Setup {
  db: Database;
  registry: DatabaseRegistry;
  blobs: FileBlobStore;
  cleanup(): Promise<void>;
}

async function setUp(db: Database, drop?: () => Promise<void>): Promise<Setup> {
  await migrate(db);
  await setReviewDelay(db, 0);
  const root = await mkdtemp(join(tmpdir(), 'stowage-database-gc-'));
  const blobs = createFileBlobStore({ root: join(root, 'blobs'), layout: 'stowage' });
  const registry = await createDatabaseRegistry({
    database: db,
    blobs,
    staging: createFileStaging({ dir: join(root, 'uploads') }),
  });
  return {
    db,
    registry,
    blobs,
    async cleanup() {
      await registry.close();
      await db.close();
      await drop?.();
      await rm(root, { recursive: true, force: true });
    },
  };
}

async function queued(db: Database, digest: string): Promise<string | undefined> {
  const { rows } = await db.query<{ event: string }>(
    'SELECT event FROM gc_blob_review_queue WHERE digest = $1',
    [encodeDigest(digest as never)],
  );
  return rows[0]?.event;
}

/** Every review due now, until none is. */
async function reviewAll(registry: DatabaseRegistry, deleteUntagged = false) {
  const manifests = await registry.reviewManifests({ limit: 1000, deleteUntagged });
  const blobs = await registry.reviewBlobs({ limit: 1000 });
  return { manifests, blobs };
}

function reviews(name: string, open: () => Promise<Setup>) {
  describe(`blob and manifest reviews on ${name}`, () => {
    let s: Setup;
    beforeAll(async () => {
      s = await open();
    });
    afterAll(async () => s?.cleanup());

    it('removes a blob no manifest references, row and bytes, and keeps an image', async () => {
      const { registry, blobs } = s;
      const image = randomImage({ layers: 2 });
      await pushImage(registry, 'gc/keep', image, 'v1');
      const orphan = randomBlob(300);
      await registry.putBlob('gc/keep', orphan.bytes, { digest: orphan.descriptor.digest });
      expect(await queued(s.db, orphan.descriptor.digest)).toBe('blob_upload');
      const { blobs: report } = await reviewAll(registry);
      expect(report.removed).toContain(orphan.descriptor.digest);
      expect(report.bytesFreed).toBeGreaterThanOrEqual(300);
      expect(await registry.headBlob('gc/keep', orphan.descriptor.digest)).toBeUndefined();
      expect(await blobs.stat(orphan.descriptor.digest)).toBeUndefined();
      for (const blob of image.blobs) {
        expect(report.removed).not.toContain(blob.descriptor.digest);
        expect(await blobs.stat(blob.descriptor.digest)).toBeDefined();
        expect(await queued(s.db, blob.descriptor.digest)).toBeUndefined();
      }
      expect((await registry.getManifest('gc/keep', 'v1')).digest).toBe(image.manifest.digest);
    });

    it('a deleted manifest queues its layers and config, and a review then removes them', async () => {
      const { registry, blobs } = s;
      const image = randomImage({ layers: 3 });
      await pushImage(registry, 'gc/deleted', image, 'v1');
      await reviewAll(registry);
      await registry.deleteManifest('gc/deleted', image.manifest.digest);
      expect(await queued(s.db, image.config.descriptor.digest)).toBe('manifest_delete');
      for (const layer of image.layers)
        expect(await queued(s.db, layer.descriptor.digest)).toBe('layer_delete');
      const { blobs: report } = await reviewAll(registry);
      for (const blob of image.blobs) {
        expect(report.removed).toContain(blob.descriptor.digest);
        expect(await blobs.stat(blob.descriptor.digest)).toBeUndefined();
      }
    });

    it('a layer another repository still uses is kept', async () => {
      const { registry, blobs } = s;
      const shared = randomImage({ layers: 1 });
      await pushImage(registry, 'gc/one', shared, 'v1');
      await pushImage(registry, 'gc/two', shared, 'v1');
      await registry.deleteManifest('gc/one', shared.manifest.digest);
      const { blobs: report } = await reviewAll(registry);
      for (const blob of shared.blobs) {
        expect(report.removed).not.toContain(blob.descriptor.digest);
        expect(await blobs.stat(blob.descriptor.digest)).toBeDefined();
        expect(await registry.headBlob('gc/two', blob.descriptor.digest)).toBeDefined();
      }
    });

    it('untagged manifests stay unless asked; then those nothing keeps go, children and referrers stay', async () => {
      const { registry } = s;
      const tagged = randomImage();
      const untagged = randomImage();
      await pushImage(registry, 'gc/untagged', tagged, 'v1');
      await pushImage(registry, 'gc/untagged', untagged, 'v2');
      await registry.putManifest('gc/untagged', 'v2', {
        bytes: tagged.manifest.bytes,
        mediaType: tagged.manifest.mediaType,
      });
      // the tag switch queued `untagged`; without deleteUntagged the review only drops it
      expect((await reviewAll(registry, false)).manifests.removed).toEqual([]);
      expect(await registry.headManifest('gc/untagged', untagged.manifest.digest)).toBeDefined();
      await registry.putManifest('gc/untagged', 'v3', {
        bytes: untagged.manifest.bytes,
        mediaType: untagged.manifest.mediaType,
      });
      await registry.deleteTag('gc/untagged', 'v3');
      const { manifests, blobs } = await reviewAll(registry, true);
      expect(manifests.removed).toEqual([{ repository: 'gc/untagged', digest: untagged.manifest.digest }]);
      expect(await registry.headManifest('gc/untagged', untagged.manifest.digest)).toBeUndefined();
      expect((await registry.getManifest('gc/untagged', 'v1')).digest).toBe(tagged.manifest.digest);
      // the deleted manifest queued its blobs: a second pass removes those no other manifest uses
      const second = await reviewAll(registry, true);
      expect([...blobs.removed, ...second.blobs.removed]).toContain(untagged.config.descriptor.digest);
    });

    it('pushing a blob again pushes its review later', async () => {
      const { registry, db } = s;
      await setReviewDelay(db, 60 * 60 * 1000);
      try {
        const blob = randomBlob(100);
        await registry.putBlob('gc/later', blob.bytes, { digest: blob.descriptor.digest });
        await db.query(
          "UPDATE gc_blob_review_queue SET review_after = now() - interval '1 second' WHERE digest = $1",
          [encodeDigest(blob.descriptor.digest)],
        );
        await registry.putBlob('gc/later', blob.bytes, { digest: blob.descriptor.digest });
        expect((await registry.reviewBlobs({ limit: 1000 })).removed).not.toContain(blob.descriptor.digest);
        expect(await registry.headBlob('gc/later', blob.descriptor.digest)).toBeDefined();
      } finally {
        await setReviewDelay(db, 0);
      }
    });

    it('a manifest whose blob was collected before it arrived is refused, and accepted once the blob is pushed again', async () => {
      const { registry } = s;
      const image = randomImage({ layers: 1 });
      for (const blob of image.blobs) {
        await registry.putBlob('gc/late', blob.bytes, { digest: blob.descriptor.digest });
      }
      await reviewAll(registry);
      const put = { bytes: image.manifest.bytes, mediaType: image.manifest.mediaType };
      const refused = await registry.putManifest('gc/late', 'v1', put).catch((error: unknown) => error);
      expect(isStowageError(refused, 'MANIFEST_BLOB_UNKNOWN')).toBe(true);
      expect(await registry.headManifest('gc/late', 'v1')).toBeUndefined();
      await pushImage(registry, 'gc/late', image, 'v1');
      expect((await registry.getManifest('gc/late', 'v1')).digest).toBe(image.manifest.digest);
    });
  });
}

reviews('PGlite', async () => setUp(await createPgliteDatabase()));

describe('on a PostgreSQL server', () => {
  if (!requirePeers(postgres)) return;
  let test: TestDatabase;
  reviews('PostgreSQL', async () => {
    test = await createTestDatabase();
    return setUp(createPostgresDatabase({ connectionString: test.url, max: 8 }), () => test.drop());
  });

  describe('a review racing a push', () => {
    let s: Setup;
    let database: TestDatabase;
    let other: pg.Client;
    beforeAll(async () => {
      database = await createTestDatabase();
      s = await setUp(createPostgresDatabase({ connectionString: database.url, max: 8 }), () =>
        database.drop(),
      );
      other = new pg.Client({ connectionString: database.url });
      await other.connect();
    });
    afterAll(async () => {
      await other?.end();
      await s?.cleanup();
    });

    it('a manifest push holding the blob wins: the review waits, sees the new layer and keeps the blob', async () => {
      const { registry, blobs } = s;
      const layer = randomBlob(500);
      const config = randomBlob(50);
      for (const blob of [layer, config]) {
        await registry.putBlob('race/app', blob.bytes, { digest: blob.descriptor.digest });
      }
      // what putManifest does first: the blob rows locked FOR KEY SHARE inside its transaction
      await other.query('BEGIN');
      await other.query('SELECT digest FROM blobs WHERE digest = $1 FOR KEY SHARE', [
        encodeDigest(layer.descriptor.digest),
      ]);
      const review = registry.reviewBlobs({ limit: 1000 });
      await new Promise((resolve) => setTimeout(resolve, 300));
      // the push goes on: a manifest row and its layer row, then commit
      const { rows } = await other.query<{ id: string }>(
        `INSERT INTO manifests (top_level_namespace_id, repository_id, digest, payload, schema_version, media_type_id, total_size)
         SELECT r.top_level_namespace_id, r.id, $1, '\\x7b7d', 2, 1, 2 FROM repositories r WHERE r.path = 'race/app'
         RETURNING id`,
        [encodeDigest(digestOf(new TextEncoder().encode('{}')))],
      );
      await other.query(
        `INSERT INTO layers (top_level_namespace_id, repository_id, manifest_id, digest, size, media_type_id)
         SELECT m.top_level_namespace_id, m.repository_id, m.id, $2, 500, 1 FROM manifests m WHERE m.id = $1`,
        [rows[0]?.id, encodeDigest(layer.descriptor.digest)],
      );
      await other.query('COMMIT');
      const report = await review;
      expect(report.removed).not.toContain(layer.descriptor.digest);
      expect(report.removed).toContain(config.descriptor.digest);
      // the review ran to its end (it kept the blob), rather than failing on the new layer and being postponed
      expect(await queued(s.db, layer.descriptor.digest)).toBeUndefined();
      expect(await blobs.stat(layer.descriptor.digest)).toBeDefined();
      expect(await registry.headBlob('race/app', layer.descriptor.digest)).toBeDefined();
    });

    it('a blob pushed while its bytes are being removed: the push is told to push again, then the blob is whole', async () => {
      const { registry, blobs } = s;
      const blob = randomBlob(700);
      await registry.putBlob('race/blob', blob.bytes, { digest: blob.descriptor.digest });
      const lockKey = Buffer.from(blob.descriptor.digest.slice(7, 15), 'hex').readInt32BE(0);
      // hold the digest's lock: the review's first step commits (row gone), its second (the bytes) waits
      await other.query('BEGIN');
      await other.query(`SELECT pg_advisory_xact_lock(${0x53544f57}, $1::int)`, [lockKey]);
      const review = registry.reviewBlobs({ limit: 1000 });
      await new Promise((resolve) => setTimeout(resolve, 300));
      const { rows } = await other.query('SELECT 1 FROM blobs WHERE digest = $1', [
        encodeDigest(blob.descriptor.digest),
      ]);
      expect(rows).toEqual([]);
      // a push now finds the bytes still there, and waits on the lock to record them
      const push = registry.putBlob('race/blob', blob.bytes, { digest: blob.descriptor.digest }).then(
        () => undefined,
        (error: unknown) => error,
      );
      await new Promise((resolve) => setTimeout(resolve, 300));
      await other.query('COMMIT');
      expect((await review).removed).toContain(blob.descriptor.digest);
      const refused = await push;
      expect(isStowageError(refused, 'UNAVAILABLE')).toBe(true);
      expect((refused as { retryable: boolean }).retryable).toBe(true);
      // nothing half-there: no row, no bytes
      expect(await registry.headBlob('race/blob', blob.descriptor.digest)).toBeUndefined();
      expect(await blobs.stat(blob.descriptor.digest)).toBeUndefined();
      // pushed again: bytes and row are back together
      await registry.putBlob('race/blob', blob.bytes, { digest: blob.descriptor.digest });
      expect(await blobs.stat(blob.descriptor.digest)).toBeDefined();
      expect(await registry.headBlob('race/blob', blob.descriptor.digest)).toEqual({
        digest: blob.descriptor.digest,
        size: 700,
      });
    });
  });
});
