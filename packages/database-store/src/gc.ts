// Garbage collection of blobs, online, in GitLab's design: triggers queue a
// blob for review whenever something stops referencing it (or it is pushed),
// and a review deletes it only when, with the blob's row locked, no manifest's
// layer or config references it and no manifest has its digest (an imported
// tree's manifests are blobs too: docker-registry reads them from there, so a
// tree served in database mode can still be served by docker-registry). The row goes first, in the review's
// transaction; the bytes after, under the digest's lock and only while no row
// has come back, so a push racing the review either keeps the blob or is told
// to push it again.

import { decodeDigest, encodeDigest, type Queryable } from '@stowage/metadata-db';
import type { Digest, GarbageCollectOptions, GarbageCollectReport } from '@stowage/oci';
import { lockDigest } from './blobs.js';
import type { StoreContext } from './context.js';
import { DatabaseStoreOptionsError } from './errors.js';
import { num, transact } from './sql.js';

/** Candidates read per query by a full collection (keyset pages, so memory does not grow with the store). */
const SCAN_PAGE = 1000;

async function referenced(q: Queryable, encoded: Buffer): Promise<boolean> {
  const { rows } = await q.query<{ referenced: boolean }>(
    `SELECT EXISTS (SELECT 1 FROM gc_blobs_layers WHERE digest = $1)
         OR EXISTS (SELECT 1 FROM gc_blobs_configurations WHERE digest = $1)
         OR EXISTS (SELECT 1 FROM manifests WHERE digest = $1) AS referenced`,
    [encoded],
  );
  return rows[0]?.referenced === true;
}

/** Removes the bytes of a blob whose row is gone, unless a push brought the row back. */
async function removeBytes(ctx: StoreContext, digest: Digest): Promise<void> {
  await transact(ctx.db, async (tx) => {
    await lockDigest(tx, digest);
    const { rows } = await tx.query('SELECT 1 FROM blobs WHERE digest = $1', [encodeDigest(digest)]);
    if (rows.length === 0) await ctx.blobs.delete(digest);
  });
}

/**
 * Deletes the blob's row when nothing references it, with the queue row and
 * the blob row locked in that order (every writer's order). Answers the size
 * freed, or `undefined` when the blob stays.
 */
async function deleteUnreferenced(q: Queryable, encoded: Buffer): Promise<number | undefined> {
  const { rows } = await q.query<{ size: unknown }>('SELECT size FROM blobs WHERE digest = $1 FOR UPDATE', [
    encoded,
  ]);
  const row = rows[0];
  if (row === undefined || (await referenced(q, encoded))) {
    await q.query('DELETE FROM gc_blob_review_queue WHERE digest = $1', [encoded]);
    return undefined;
  }
  await q.query('DELETE FROM blobs WHERE digest = $1', [encoded]);
  await q.query('DELETE FROM gc_blob_review_queue WHERE digest = $1', [encoded]);
  return num(row.size);
}

export interface BlobReviewReport {
  readonly reviewed: number;
  readonly removed: readonly Digest[];
  readonly bytesFreed: number;
}

/**
 * Reviews up to `limit` blobs whose review is due, one transaction each, taken
 * with `FOR UPDATE SKIP LOCKED` so any number of workers (in any number of
 * processes) share the queue without waiting on each other. A review that
 * fails is postponed, later each time it fails again.
 */
export async function reviewDueBlobs(
  ctx: StoreContext,
  options: { limit: number },
): Promise<BlobReviewReport> {
  const removed: Digest[] = [];
  let reviewed = 0;
  let bytesFreed = 0;
  while (reviewed < options.limit) {
    let taken: Buffer | undefined;
    try {
      const outcome = await ctx.db.transaction(async (tx) => {
        const { rows } = await tx.query<{ digest: Uint8Array }>(
          `SELECT digest FROM gc_blob_review_queue WHERE review_after <= now()
           ORDER BY review_after LIMIT 1 FOR UPDATE SKIP LOCKED`,
        );
        if (rows[0] === undefined) return undefined;
        taken = Buffer.from(rows[0].digest);
        return { digest: decodeDigest(rows[0].digest), size: await deleteUnreferenced(tx, taken) };
      });
      if (outcome === undefined) break;
      reviewed++;
      if (outcome.size !== undefined) {
        await removeBytes(ctx, outcome.digest);
        removed.push(outcome.digest);
        bytesFreed += outcome.size;
      }
    } catch (error) {
      if (taken === undefined) throw error;
      await postpone(ctx, taken).catch(() => undefined);
      reviewed++;
    }
  }
  return { reviewed, removed, bytesFreed };
}

/** Pushes a failed review back: a minute, doubling with each failure, at most a day. */
async function postpone(ctx: StoreContext, encoded: Buffer): Promise<void> {
  await ctx.db.query(
    `UPDATE gc_blob_review_queue SET review_count = review_count + 1,
       review_after = now() + least(interval '1 minute' * power(2, least(review_count, 20)), interval '1 day')
     WHERE digest = $1`,
    [encoded],
  );
}

/**
 * `Registry.garbageCollect`: every blob no manifest references, whose bytes
 * were last written or touched longer ago than the grace period, is removed
 * now, whatever its review time says. Files in the blob store without a row
 * (a tree served before its blobs were imported) are left alone.
 */
export async function collectGarbage(
  ctx: StoreContext,
  options: GarbageCollectOptions & {
    readonly now: number;
    readonly purgeUploads: () => Promise<number>;
    readonly countOldUploads: () => Promise<number>;
  },
): Promise<GarbageCollectReport> {
  const grace = options.gracePeriodMs ?? 0;
  const removed: Digest[] = [];
  let bytesFreed = 0;
  let after = Buffer.alloc(0);
  for (;;) {
    options.signal?.throwIfAborted();
    const { rows } = await ctx.db.query<{ digest: Uint8Array; size: unknown }>(
      `SELECT b.digest, b.size FROM blobs b
       WHERE b.digest > $1
         AND NOT EXISTS (SELECT 1 FROM gc_blobs_layers l WHERE l.digest = b.digest)
         AND NOT EXISTS (SELECT 1 FROM gc_blobs_configurations c WHERE c.digest = b.digest)
         AND NOT EXISTS (SELECT 1 FROM manifests m WHERE m.digest = b.digest)
       ORDER BY b.digest LIMIT ${SCAN_PAGE}`,
      [after],
    );
    for (const row of rows) {
      const digest = decodeDigest(row.digest);
      const stored = await ctx.blobs.stat(digest);
      if (stored && options.now - stored.modifiedAt < grace) continue;
      if (options.dryRun) {
        removed.push(digest);
        bytesFreed += num(row.size);
        continue;
      }
      const encoded = Buffer.from(row.digest);
      const size = await transact(ctx.db, async (tx) => {
        await tx.query('SELECT 1 FROM gc_blob_review_queue WHERE digest = $1 FOR UPDATE', [encoded]);
        return deleteUnreferenced(tx, encoded);
      });
      if (size === undefined) continue;
      await removeBytes(ctx, digest);
      removed.push(digest);
      bytesFreed += size;
    }
    if (rows.length < SCAN_PAGE) break;
    after = Buffer.from((rows[rows.length - 1] as { digest: Uint8Array }).digest);
  }
  const uploadsRemoved = options.dryRun ? await options.countOldUploads() : await options.purgeUploads();
  return {
    blobsRemoved: removed,
    manifestsRemoved: [],
    uploadsRemoved,
    bytesFreed,
    dryRun: options.dryRun ?? false,
  };
}

export interface ManifestReviewReport {
  readonly reviewed: number;
  readonly removed: readonly { readonly repository: string; readonly digest: Digest }[];
}

/**
 * Reviews up to `limit` manifests whose review is due. With `deleteUntagged`,
 * one that no tag points at, no index of its repository lists, and whose
 * subject (when it is a referrer) is not in the repository is deleted; its
 * layers and config are then queued for review in turn. Without it the due
 * reviews are only dropped, so the queue does not grow with every push.
 */
export async function reviewDueManifests(
  ctx: StoreContext,
  options: { readonly limit: number; readonly deleteUntagged: boolean },
): Promise<ManifestReviewReport> {
  if (!options.deleteUntagged) {
    const { rowCount } = await ctx.db.query(
      `DELETE FROM gc_manifest_review_queue WHERE (top_level_namespace_id, repository_id, manifest_id) IN (
         SELECT top_level_namespace_id, repository_id, manifest_id FROM gc_manifest_review_queue
         WHERE review_after <= now() ORDER BY review_after LIMIT $1 FOR UPDATE SKIP LOCKED)`,
      [options.limit],
    );
    return { reviewed: rowCount, removed: [] };
  }
  const removed: { repository: string; digest: Digest }[] = [];
  let reviewed = 0;
  while (reviewed < options.limit) {
    const outcome = await transact(ctx.db, async (tx) => {
      const { rows } = await tx.query<{ ns: unknown; repo: unknown; id: unknown }>(
        `SELECT top_level_namespace_id AS ns, repository_id AS repo, manifest_id AS id FROM gc_manifest_review_queue
         WHERE review_after <= now() ORDER BY review_after LIMIT 1 FOR UPDATE SKIP LOCKED`,
      );
      const task = rows[0];
      if (task === undefined) return undefined;
      const key = [task.ns, task.repo, task.id];
      const found = await tx.query<{ digest: Uint8Array; subject_digest: Uint8Array | null; path: string }>(
        `SELECT m.digest, m.subject_digest, r.path FROM manifests m JOIN repositories r ON r.id = m.repository_id
         WHERE m.top_level_namespace_id = $1 AND m.repository_id = $2 AND m.id = $3 FOR UPDATE OF m`,
        key,
      );
      const manifest = found.rows[0];
      const { rows: kept } = manifest
        ? await tx.query<{ kept: boolean }>(
            `SELECT EXISTS (SELECT 1 FROM tags WHERE top_level_namespace_id = $1 AND repository_id = $2 AND manifest_id = $3)
                 OR EXISTS (SELECT 1 FROM manifest_references
                            WHERE top_level_namespace_id = $1 AND repository_id = $2 AND child_id = $3)
                 OR EXISTS (SELECT 1 FROM manifests s
                            WHERE s.top_level_namespace_id = $1 AND s.repository_id = $2 AND s.digest = $4) AS kept`,
            [...key, manifest.subject_digest],
          )
        : { rows: [{ kept: true }] };
      await tx.query(
        'DELETE FROM gc_manifest_review_queue WHERE top_level_namespace_id = $1 AND repository_id = $2 AND manifest_id = $3',
        key,
      );
      if (!manifest || kept[0]?.kept) return { removed: undefined };
      await tx.query('DELETE FROM manifests WHERE id = $1', [task.id]);
      return { removed: { repository: manifest.path, digest: decodeDigest(manifest.digest) } };
    });
    if (outcome === undefined) break;
    reviewed++;
    if (outcome.removed) removed.push(outcome.removed);
  }
  return { reviewed, removed };
}

/**
 * Sets how long after an event its blob or manifest is reviewed, for every
 * event (GitLab's `gc.reviewafter`, which its registry writes at start): the
 * setting is the database's, so every replica shares it.
 */
export async function setReviewDelay(db: Queryable, delayMs: number): Promise<void> {
  if (!(Number.isFinite(delayMs) && delayMs >= 0)) {
    throw new DatabaseStoreOptionsError('reviewDelayMs', `must be a duration of 0 or more, not ${delayMs}`);
  }
  await db.query(
    `UPDATE gc_review_after_defaults SET value = make_interval(secs => $1::double precision / 1000)`,
    [delayMs],
  );
}
