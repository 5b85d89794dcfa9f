import { randomUUID } from 'node:crypto';
import {
  type BlobStore,
  createMemoryStaging,
  createUploadSessions,
  DEFAULT_UPLOAD_TTL_MS,
  type UploadStaging,
} from '@stowage/blob-store';
import { assertMigrated, type Database } from '@stowage/metadata-db';
import {
  type BlobInfo,
  type Digest,
  fullCapabilities,
  type GarbageCollectOptions,
  type GarbageCollectReport,
  MAX_MANIFEST_SIZE,
  type OperationOptions,
  type RegistryCapabilities,
  type RegistryWithUploads,
} from '@stowage/oci';
import { blobMembers } from './blobs.js';
import { createContext, type StoreContext } from './context.js';
import { DatabaseStoreOptionsError } from './errors.js';
import {
  type BlobReviewReport,
  collectGarbage,
  type ManifestReviewReport,
  reviewDueBlobs,
  reviewDueManifests,
} from './gc.js';
import { listingMembers } from './listings.js';
import { manifestMembers } from './manifests.js';

export interface DatabaseRegistryOptions {
  /** The metadata database (`openDatabase` of `@stowage/metadata-db`), migrated. */
  readonly database: Database;
  /** Where blob bytes live: every replica must reach the same one. */
  readonly blobs: BlobStore;
  /**
   * Where chunked uploads wait between their requests. Replicas behind one
   * load balancer need one they all reach (a file staging area on the shared
   * blob filesystem); the default, in memory, serves one process only.
   */
  readonly staging?: UploadStaging;
  /** What `origin` answers; registries with the same origin mount from each other. Default: unique to this instance. */
  readonly origin?: string;
  /** Largest manifest accepted. Default 4 MiB. */
  readonly maxManifestSize?: number;
  /** Upload sessions older than this are unknown, and purged by `garbageCollect`. Default 24 hours. */
  readonly uploadTtlMs?: number;
  /** Clock for upload ages and grace periods (ms since the epoch). */
  readonly now?: () => number;
  /** Refuse a database with pending or unknown migrations (`MIGRATIONS_PENDING`). Default true. */
  readonly checkMigrations?: boolean;
  /** `close()` closes the database too. Default false: the caller who opened it closes it. */
  readonly closeDatabase?: boolean;
}

/** The registry over PostgreSQL (or PGlite) and a blob store. */
export interface DatabaseRegistry extends Omit<RegistryWithUploads, 'garbageCollect' | 'close'> {
  garbageCollect(options?: GarbageCollectOptions): Promise<GarbageCollectReport>;
  close(): Promise<void>;
  /**
   * Reviews up to `limit` blobs whose review time has come (GitLab's online
   * GC): each is deleted when no manifest references it. Safe to run in any
   * number of processes at once.
   */
  reviewBlobs(options?: { readonly limit?: number }): Promise<BlobReviewReport>;
  /**
   * Reviews up to `limit` manifests whose review time has come. With
   * `deleteUntagged`, one that nothing keeps (no tag, no index listing it, no
   * subject it refers to) is deleted; without it the due reviews are dropped.
   */
  reviewManifests(options?: {
    readonly limit?: number;
    readonly deleteUntagged?: boolean;
  }): Promise<ManifestReviewReport>;
  /** Removes upload sessions older than `uploadTtlMs`; answers how many. */
  purgeUploads(): Promise<number>;
  /**
   * Links a blob whose bytes the blob store already holds, without reading
   * them (an import of a store served in place); `undefined` when it does not
   * hold them.
   */
  adoptBlob(repository: string, digest: Digest, options?: OperationOptions): Promise<BlobInfo | undefined>;
}

/** Everything but `lock` (not offered yet: a PostgreSQL advisory lock needs a connection of its own per holder). */
const CAPABILITIES: RegistryCapabilities = Object.freeze({ ...fullCapabilities, lock: false });

/**
 * A `Registry` whose metadata is in the database (`@stowage/metadata-db`'s
 * schema, the one `stowage import` fills) and whose bytes are in a blob
 * store: every write is one transaction, a manifest is visible only once every
 * blob and child it references is linked, and every read is one indexed query.
 */
export async function createDatabaseRegistry(options: DatabaseRegistryOptions): Promise<DatabaseRegistry> {
  const { database, blobs } = options;
  if (!database || typeof database.transaction !== 'function') {
    throw new DatabaseStoreOptionsError('database', 'a database from openDatabase is needed');
  }
  if (!blobs || typeof blobs.write !== 'function') {
    throw new DatabaseStoreOptionsError('blobs', 'a blob store is needed');
  }
  const maxManifestSize = options.maxManifestSize ?? MAX_MANIFEST_SIZE;
  if (!(Number.isInteger(maxManifestSize) && maxManifestSize > 0)) {
    throw new DatabaseStoreOptionsError(
      'maxManifestSize',
      `must be a positive integer, not ${maxManifestSize}`,
    );
  }
  const now = options.now ?? Date.now;
  const ttlMs = options.uploadTtlMs ?? DEFAULT_UPLOAD_TTL_MS;
  if (options.checkMigrations !== false) await assertMigrated(database);
  let closed = false;
  const ctx: StoreContext = createContext({ db: database, blobs, maxManifestSize, isClosed: () => closed });
  const staging = options.staging ?? createMemoryStaging();
  const blobPart = blobMembers(ctx);
  const sessions = createUploadSessions({
    staging,
    putBlob: (repository, body, opts) => blobPart.putBlob(repository, body, opts),
    now,
    ttlMs,
  });
  const guarded =
    <A extends unknown[], R>(member: (...args: A) => Promise<R>) =>
    async (...args: A): Promise<R> => {
      ctx.open();
      return member(...args);
    };
  const countOldUploads = async () => {
    let count = 0;
    for await (const upload of staging.list()) if (now() - upload.startedAt > ttlMs) count++;
    return count;
  };
  return {
    origin: options.origin ?? `database:${randomUUID()}`,
    async capabilities() {
      return CAPABILITIES;
    },
    ...listingMembers(ctx),
    ...manifestMembers(ctx),
    ...blobPart,
    startUpload: guarded(sessions.startUpload),
    appendUpload: guarded(sessions.appendUpload),
    getUpload: guarded(sessions.getUpload),
    finishUpload: guarded(sessions.finishUpload),
    cancelUpload: guarded(sessions.cancelUpload),
    async garbageCollect(opts: GarbageCollectOptions = {}): Promise<GarbageCollectReport> {
      ctx.open(opts.signal);
      return collectGarbage(ctx, {
        ...opts,
        now: now(),
        purgeUploads: () => sessions.purge(),
        countOldUploads,
      });
    },
    async reviewBlobs(opts = {}) {
      ctx.open();
      return reviewDueBlobs(ctx, { limit: opts.limit ?? 100 });
    },
    async purgeUploads() {
      ctx.open();
      return sessions.purge();
    },
    async reviewManifests(opts = {}) {
      ctx.open();
      return reviewDueManifests(ctx, {
        limit: opts.limit ?? 100,
        deleteUntagged: opts.deleteUntagged ?? false,
      });
    },
    async close() {
      if (closed) return;
      closed = true;
      if (options.closeDatabase) await database.close();
    },
  };
}
