// What every area of the database-backed registry shares: the database, the
// blob store, the metadata store with its media type cache, the repository
// rows already met, and the guard that refuses calls once the store is closed.
import type { BlobStore } from '@stowage/blob-store';
import {
  type Database,
  isTransaction,
  MetadataStore,
  type Queryable,
  type RepositoryRow,
} from '@stowage/metadata-db';
import { RegistryError } from '@stowage/oci';

/** How many repository rows a process remembers (they are never deleted, so a remembered one stays right). */
const REPOSITORY_CACHE_MAX = 10_000;

export interface StoreContext {
  readonly db: Database;
  readonly blobs: BlobStore;
  readonly meta: MetadataStore;
  readonly maxManifestSize: number;
  /** Throws `UNAVAILABLE` once closed, and the signal's reason once aborted. */
  open(signal?: AbortSignal): void;
  /** The repository's row, created when missing (inside `q`'s transaction when it is one). */
  ensureRepository(q: Queryable, path: string): Promise<RepositoryRow>;
  /** The repository's row, or `undefined`; never creates one. */
  findRepository(q: Queryable, path: string): Promise<RepositoryRow | undefined>;
}

export function createContext(options: {
  readonly db: Database;
  readonly blobs: BlobStore;
  readonly maxManifestSize: number;
  readonly isClosed: () => boolean;
}): StoreContext {
  const { db, blobs, maxManifestSize, isClosed } = options;
  const meta = new MetadataStore(db);
  const known = new Map<string, RepositoryRow>();
  const remember = (row: RepositoryRow) => {
    if (known.size >= REPOSITORY_CACHE_MAX) known.delete(known.keys().next().value as string);
    known.set(row.path, row);
  };
  const context: StoreContext = {
    db,
    blobs,
    meta,
    maxManifestSize,
    open(signal) {
      if (isClosed()) throw new RegistryError('UNAVAILABLE', 'the registry is closed');
      signal?.throwIfAborted();
    },
    async findRepository(q, path) {
      const cached = known.get(path);
      if (cached) return cached;
      const row = await meta.on(q).findRepository(path);
      // a row found inside a transaction that may roll back is remembered only after it commits
      if (row && !isTransaction(q)) remember(row);
      return row;
    },
    async ensureRepository(q, path) {
      const found = await context.findRepository(q, path);
      if (found) return found;
      const row = await meta.on(q).repository(path);
      if (isTransaction(q)) q.afterCommit(() => remember(row));
      else remember(row);
      return row;
    },
  };
  return context;
}
