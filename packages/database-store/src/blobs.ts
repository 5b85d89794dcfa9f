// Blobs: the bytes in the blob store, the rows in `blobs` and the links in
// `repository_blobs`. A row exists only while its bytes do: a push writes the
// bytes first and the row after; garbage collection deletes the row first and
// the bytes after, and both take the digest's lock around the step that
// touches the bytes, so a push racing a collection either keeps the blob or is
// told to push again, and never leaves a row without bytes.

import { encodeDigest, type Queryable } from '@stowage/metadata-db';
import {
  type BlobBody,
  type BlobContent,
  type BlobInfo,
  type Digest,
  type GetBlobOptions,
  type MountBlobOptions,
  type OperationOptions,
  type PutBlobOptions,
  parseDigest,
  parseRepositoryName,
  RegistryError,
} from '@stowage/oci';
import type { StoreContext } from './context.js';
import { num, transact } from './sql.js';

/** The advisory lock class of blob digests (two-key locks never meet the one-key ones other code takes). */
const DIGEST_LOCK_CLASS = 0x53544f57;

/** Takes the digest's transaction-scoped lock: held by a push while it records the blob, by GC while it removes the bytes. */
export async function lockDigest(q: Queryable, digest: Digest): Promise<void> {
  const key = Buffer.from(digest.slice(digest.indexOf(':') + 1, digest.indexOf(':') + 9), 'hex').readInt32BE(
    0,
  );
  await q.query('SELECT pg_advisory_xact_lock($1::int, $2::int)', [DIGEST_LOCK_CLASS, key], {
    prepare: true,
  });
}

/** Pushes the blob's review later (taken before the blob's row, the order GC locks them in). */
export async function queueBlob(q: Queryable, digest: Digest, event: string): Promise<void> {
  await q.query('SELECT gc_queue_blob($1, $2)', [encodeDigest(digest), event], { prepare: true });
}

function blobUnknown(repository: string, digest: Digest): RegistryError {
  return new RegistryError('BLOB_UNKNOWN', `blob ${digest} is not in ${repository}`, {
    details: { repository, digest },
  });
}

/** The size of a blob linked into the repository, in one query. */
async function linkedSize(q: Queryable, repository: string, digest: Digest): Promise<number | undefined> {
  const { rows } = await q.query<{ size: unknown }>(
    `SELECT b.size FROM repositories r
       JOIN repository_blobs rb ON rb.top_level_namespace_id = r.top_level_namespace_id
        AND rb.repository_id = r.id AND rb.blob_digest = $2
       JOIN blobs b ON b.digest = rb.blob_digest
     WHERE r.path = $1`,
    [repository, encodeDigest(digest)],
    { prepare: true },
  );
  return rows[0] === undefined ? undefined : num(rows[0].size);
}

export function blobMembers(ctx: StoreContext) {
  const { db, blobs, meta } = ctx;

  /** Records a blob whose bytes are stored, and links it; refuses when GC took the bytes meanwhile. */
  async function record(repository: string, digest: Digest, size: number): Promise<void> {
    await transact(db, async (tx) => {
      await lockDigest(tx, digest);
      await queueBlob(tx, digest, 'blob_upload');
      await meta.on(tx).blob(digest, size);
      if ((await blobs.stat(digest)) === undefined) {
        throw new RegistryError(
          'UNAVAILABLE',
          `blob ${digest} was collected while it was pushed; push it again`,
          { retryable: true, details: { digest } },
        );
      }
      const repo = await ctx.ensureRepository(tx, repository);
      await meta.on(tx).linkBlob(repo, digest);
    });
  }

  return {
    async headBlob(repository: string, digest: Digest, options: OperationOptions = {}) {
      ctx.open(options.signal);
      parseRepositoryName(repository);
      parseDigest(digest);
      const size = await linkedSize(db, repository, digest);
      return size === undefined ? undefined : { digest, size };
    },

    async getBlob(repository: string, digest: Digest, options: GetBlobOptions = {}): Promise<BlobContent> {
      ctx.open(options.signal);
      parseRepositoryName(repository);
      parseDigest(digest);
      const size = await linkedSize(db, repository, digest);
      if (size === undefined) throw blobUnknown(repository, digest);
      return blobs.read(digest, {
        ...(options.range ? { range: options.range } : {}),
        ...(options.signal ? { signal: options.signal } : {}),
      });
    },

    async putBlob(repository: string, body: BlobBody, options: PutBlobOptions): Promise<BlobInfo> {
      ctx.open(options.signal);
      parseRepositoryName(repository);
      const digest = parseDigest(options.digest);
      const written = await blobs.write(body, {
        digest,
        ...(options.size === undefined ? {} : { size: options.size }),
        ...(options.signal ? { signal: options.signal } : {}),
      });
      await record(repository, digest, written.size);
      return { digest, size: written.size };
    },

    /**
     * Links a blob whose bytes the blob store already holds (an import of a
     * store served in place), without reading them; `undefined` when the store
     * does not hold them.
     */
    async adoptBlob(repository: string, digest: Digest, options: OperationOptions = {}) {
      ctx.open(options.signal);
      parseRepositoryName(repository);
      parseDigest(digest);
      const stored = await blobs.stat(digest, options.signal ? { signal: options.signal } : {});
      if (!stored) return undefined;
      await record(repository, digest, stored.size);
      return { digest, size: stored.size };
    },

    async mountBlob(repository: string, digest: Digest, options: MountBlobOptions = {}) {
      ctx.open(options.signal);
      parseRepositoryName(repository);
      parseDigest(digest);
      if (options.from !== undefined) parseRepositoryName(options.from);
      const encoded = encodeDigest(digest);
      return transact(db, async (tx): Promise<BlobInfo | undefined> => {
        const source =
          options.from === undefined
            ? await tx.query<{ size: unknown }>(
                `SELECT b.size FROM blobs b WHERE b.digest = $1
                   AND EXISTS (SELECT 1 FROM repository_blobs rb WHERE rb.blob_digest = b.digest)`,
                [encoded],
              )
            : await tx.query<{ size: unknown }>(
                `SELECT b.size FROM repositories r
                   JOIN repository_blobs rb ON rb.top_level_namespace_id = r.top_level_namespace_id
                    AND rb.repository_id = r.id AND rb.blob_digest = $2
                   JOIN blobs b ON b.digest = rb.blob_digest
                 WHERE r.path = $1`,
                [options.from, encoded],
              );
        if (source.rows[0] === undefined) return undefined;
        await lockDigest(tx, digest);
        await queueBlob(tx, digest, 'blob_upload');
        // GC may have taken the row between the lookup and the queue's lock
        const held = await tx.query<{ size: unknown }>(
          'SELECT size FROM blobs WHERE digest = $1 FOR KEY SHARE',
          [encoded],
        );
        if (held.rows[0] === undefined) return undefined;
        const repo = await ctx.ensureRepository(tx, repository);
        await meta.on(tx).linkBlob(repo, digest);
        return { digest, size: num(held.rows[0].size) };
      });
    },

    async deleteBlob(repository: string, digest: Digest, options: OperationOptions = {}) {
      ctx.open(options.signal);
      parseRepositoryName(repository);
      parseDigest(digest);
      await transact(db, async (tx) => {
        const repo = await ctx.findRepository(tx, repository);
        if (!repo) throw blobUnknown(repository, digest);
        // the queue first: the order GC takes its locks in
        await queueBlob(tx, digest, 'blob_unlink');
        const { rowCount } = await tx.query(
          `DELETE FROM repository_blobs
           WHERE top_level_namespace_id = $1 AND repository_id = $2 AND blob_digest = $3`,
          [repo.namespaceId, repo.id, encodeDigest(digest)],
        );
        if (rowCount === 0) throw blobUnknown(repository, digest);
      });
    },
  };
}
