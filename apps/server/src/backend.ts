// What stowage-server serves: the image store at the root (the default), or,
// in database mode, the metadata database and the blob store at the root. The
// server talks to either through `Backend` only.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { createFileBlobStore, createFileStaging } from '@stowage/blob-store';
import {
  createDatabaseRegistry,
  type DatabaseRegistry,
  type GarbageCollector,
  setReviewDelay,
  startGarbageCollector,
} from '@stowage/database-store';
import { createImageStore, type ImageStore } from '@stowage/image-store';
import { createPostgresDatabase, type Database, isDatabaseError } from '@stowage/metadata-db';
import { type Logger, type RegistryWithUploads, redactDatabaseUrl, resolveLogger } from '@stowage/oci';
import type { ServerConfig } from './config.js';
import { EXIT, StartupError } from './errors.js';

/** Online GC counters of this process, for `/metrics`. */
export interface GcCounters {
  blobsRemoved: number;
  bytesFreed: number;
  manifestsRemoved: number;
  reviews: number;
  failures: number;
}

export interface Backend {
  readonly kind: 'image-store' | 'database';
  readonly registry: RegistryWithUploads;
  /** The image store, in its mode. */
  readonly imageStore?: ImageStore;
  /** The database registry, in database mode. */
  readonly databaseRegistry?: DatabaseRegistry;
  /** Why the backend cannot serve now, or `undefined` when it can (`/readyz`). */
  unready(): Promise<string | undefined>;
  /** Lines for `/metrics`: the pool and the GC workers (database mode). */
  metrics(): string;
  /** Removes upload sessions older than the purge age; answers how many. */
  purgeUploads(): Promise<number>;
  /** Stops the GC workers, closes the store (and the database). */
  close(): Promise<void>;
}

/**
 * The blob layout of a root in database mode: distribution's when the root
 * holds a docker-registry tree (served in place after `stowage import`), the
 * image store's content store when it is an image-store root, distribution's
 * for a new one.
 */
export function databaseBlobLayout(root: string): { root: string; layout: 'distribution' | 'stowage' } {
  if (existsSync(join(root, 'docker', 'registry', 'v2'))) return { root, layout: 'distribution' };
  if (existsSync(join(root, '.stowage', 'blobs')))
    return { root: join(root, '.stowage', 'blobs'), layout: 'stowage' };
  return { root, layout: 'distribution' };
}

/** Where database mode stages chunked uploads: under the root, so every replica sharing it shares them. */
export function databaseUploadsDir(root: string): string {
  return join(root, '.stowage', 'database-uploads');
}

/** The failure to open the database, as one line with what to do. */
function databaseFailure(error: unknown, url: string): unknown {
  const where = redactDatabaseUrl(url);
  if (isDatabaseError(error, 'MIGRATIONS_PENDING')) {
    return new StartupError(
      `the database ${where} is not migrated: ${error.message.replace(/^pending migrations: /, 'pending ')}`,
      EXIT.unusable,
      error,
    );
  }
  if (isDatabaseError(error, 'MIGRATION_UNKNOWN') || isDatabaseError(error, 'MIGRATION_EDITED')) {
    return new StartupError(
      `the database ${where} has a schema this version does not know (${error.message}); run a newer stowage-server`,
      EXIT.unusable,
      error,
    );
  }
  if (isDatabaseError(error)) {
    return new StartupError(
      `cannot use the database ${where}: ${error.message}; check --database-url (database.url)`,
      EXIT.unusable,
      error,
    );
  }
  return error;
}

/**
 * The database registry of a configuration in database mode: the pool, the
 * blobs at the root, uploads staged under it. Refuses (one line, exit 4) a
 * database it cannot reach or whose migrations are not the ones it knows.
 */
export async function openServerDatabaseRegistry(
  config: ServerConfig & { database: NonNullable<ServerConfig['database']> },
  options: { readonly readOnly?: boolean } = {},
): Promise<{ registry: DatabaseRegistry; database: Database }> {
  const { url, maxConnections, connectTimeoutMs } = config.database;
  const readOnly = options.readOnly ?? config.readOnly;
  const database: Database = createPostgresDatabase({
    connectionString: url,
    max: maxConnections,
    connectTimeoutMs,
  });
  try {
    const registry = await createDatabaseRegistry({
      database,
      blobs: createFileBlobStore({ ...databaseBlobLayout(config.root), readOnly }),
      staging: createFileStaging({ dir: databaseUploadsDir(config.root) }),
      origin: `database:${redactDatabaseUrl(url)}#${config.root}`,
      maxManifestSize: config.limits.maxManifestSize,
      uploadTtlMs: config.uploadPurging.ageMs,
      closeDatabase: true,
    });
    return { registry, database };
  } catch (error) {
    await database.close().catch(() => undefined);
    throw databaseFailure(error, url);
  }
}

async function openDatabaseBackend(
  config: ServerConfig & { database: NonNullable<ServerConfig['database']> },
  logger: ReturnType<typeof resolveLogger>,
): Promise<Backend> {
  const { url } = config.database;
  const blobLayout = databaseBlobLayout(config.root);
  const { registry, database } = await openServerDatabaseRegistry(config);
  if (!config.readOnly) {
    try {
      await setReviewDelay(database, config.onlineGc.reviewAfterMs);
    } catch (error) {
      await registry.close();
      throw databaseFailure(error, url);
    }
  }
  const counters: GcCounters = {
    blobsRemoved: 0,
    bytesFreed: 0,
    manifestsRemoved: 0,
    reviews: 0,
    failures: 0,
  };
  let collector: GarbageCollector | undefined;
  if (config.onlineGc.enabled && !config.readOnly) {
    collector = startGarbageCollector(registry, {
      intervalMs: config.onlineGc.intervalMs,
      deleteUntaggedManifests: config.onlineGc.deleteUntagged,
      onBatch: ({ manifests, blobs }) => {
        counters.reviews += manifests.reviewed + blobs.reviewed;
        counters.manifestsRemoved += manifests.removed.length;
        counters.blobsRemoved += blobs.removed.length;
        counters.bytesFreed += blobs.bytesFreed;
        if (blobs.removed.length + manifests.removed.length > 0) {
          logger.info(
            {
              blobsRemoved: blobs.removed.length,
              bytesFreed: blobs.bytesFreed,
              manifestsRemoved: manifests.removed.length,
            },
            'online gc removed unreferenced content',
          );
        }
      },
      onError: (error) => {
        counters.failures++;
        logger.warn({ err: error }, 'online gc batch failed; retrying later');
      },
    });
  }
  logger.info(
    {
      database: redactDatabaseUrl(url),
      blobs: blobLayout,
      onlineGc: collector !== undefined,
      reviewAfterMs: config.onlineGc.reviewAfterMs,
    },
    'database mode',
  );
  return {
    kind: 'database',
    registry,
    databaseRegistry: registry,
    async unready() {
      try {
        await database.query('SELECT 1');
        return undefined;
      } catch (error) {
        return `database unavailable: ${(error as Error).message}`;
      }
    },
    metrics() {
      const pool = database.stats?.();
      const lines: string[] = [];
      const gauge = (name: string, help: string, value: number) =>
        lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} gauge`, `${name} ${value}`);
      const counter = (name: string, help: string, value: number) =>
        lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} counter`, `${name} ${value}`);
      if (pool) {
        gauge('stowage_database_pool_connections', 'Connections open to PostgreSQL.', pool.total);
        gauge('stowage_database_pool_idle_connections', 'Open connections not in use.', pool.idle);
        gauge('stowage_database_pool_waiting', 'Callers waiting for a connection.', pool.waiting);
        gauge('stowage_database_pool_max_connections', 'The pool size.', pool.max);
      }
      counter('stowage_gc_reviews_total', 'Online GC reviews done by this process.', counters.reviews);
      counter('stowage_gc_blobs_removed_total', 'Blobs removed by online GC.', counters.blobsRemoved);
      counter('stowage_gc_bytes_freed_total', 'Bytes freed by online GC.', counters.bytesFreed);
      counter(
        'stowage_gc_manifests_removed_total',
        'Manifests removed by online GC.',
        counters.manifestsRemoved,
      );
      counter('stowage_gc_failures_total', 'Online GC batches that failed.', counters.failures);
      return `${lines.join('\n')}\n`;
    },
    purgeUploads: () => registry.purgeUploads(),
    async close() {
      await collector?.stop();
      await registry.close();
    },
  };
}

/** Opens what the configuration asks to serve. */
export async function openBackend(config: ServerConfig, options: { logger?: Logger } = {}): Promise<Backend> {
  const logger = resolveLogger(options.logger);
  if (config.database) return openDatabaseBackend({ ...config, database: config.database }, logger);
  const store = await createImageStore({
    root: config.root,
    readOnly: config.readOnly,
    uploadTtlMs: config.uploadPurging.ageMs,
    maxManifestSize: config.limits.maxManifestSize,
  });
  return {
    kind: 'image-store',
    registry: store,
    imageStore: store,
    async unready() {
      return undefined;
    },
    metrics() {
      return '';
    },
    purgeUploads: () => store.purgeUploads(),
    close: () => store.close(),
  };
}
