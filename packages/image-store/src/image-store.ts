import { opendir, readdir } from 'node:fs/promises';
import { mkdir } from '@stowage/blob-store';
import {
  type AppendUploadOptions,
  type BlobInfo,
  type FinishUploadOptions,
  fullCapabilities,
  isDigest,
  type ListOptions,
  type LockOptions,
  type OperationOptions,
  pageOf,
  type RegistryCapabilities,
  RegistryError,
  type RegistryLock,
  type RegistryWithUploads,
} from '@stowage/oci';
import { StoreCaches } from './caches.js';
import { createContentStore } from './content-store.js';
import { ifExists } from './fs-utils.js';
import { type FsckReport, fsck } from './fsck.js';
import { GarbageCollector, type ImageStoreGcOptions, type ImageStoreGcReport } from './gc.js';
import { IndexFlusher } from './index-flush.js';
import { Layouts } from './layout.js';
import { StoreLocks } from './lock.js';
import { ManifestMetas } from './manifest-meta.js';
import { type ImageStoreOptions, resolveOptions } from './options.js';
import type { StoreParts } from './parts.js';
import { StorePaths } from './paths.js';
import { type ImageRecords, parseImageName, RecordStore } from './records.js';
import { blobApi } from './registry-blobs.js';
import { manifestApi } from './registry-manifests.js';
import { TagFiles } from './tags.js';
import { Uploads } from './uploads.js';

export interface ImageStore extends RegistryWithUploads {
  readonly root: string;
  /** A named lock shared by every process that opens this root. */
  lock(name: string, options?: LockOptions): Promise<RegistryLock>;
  /** Re-verifies every blob and manifest and reports what is wrong; never repairs. */
  fsck(options?: OperationOptions): Promise<FsckReport>;
  garbageCollect(options?: ImageStoreGcOptions): Promise<ImageStoreGcReport>;
  /**
   * containers/storage-style image records over the same store: a record's
   * names are `repository:tag`, and a name whose record has a digest held by
   * that repository is that tag.
   */
  readonly images: ImageRecords;
  /** Removes upload sessions older than `uploadTtlMs`; returns how many. */
  purgeUploads(): Promise<number>;
  /** Writes every pending `index.json` now. */
  flush(): Promise<void>;
  /** Writes pending `index.json` files and closes the store; later calls are refused with `UNAVAILABLE`. */
  close(): Promise<void>;
  /** `close()`, for `await using store = await createImageStore(…)`. */
  [Symbol.asyncDispose](): Promise<void>;
}

/** Everything the store does, with an honest answer: each is covered by its tests. */
const capabilities: RegistryCapabilities = { ...fullCapabilities, sparseIndex: true };

/**
 * Opens (creating when missing) a local image store. Blobs live once in a
 * content-addressed store under `.stowage/blobs` and are hard-linked into each
 * repository that holds them; every repository directory is an OCI image layout
 * (`oci-layout`, `index.json`, `blobs/`). Writes go to a temporary file on the
 * same filesystem, are hashed while written, fsynced and renamed into place only
 * when digest and size match.
 *
 * The parts, each in its own module: the content store (`content-store.ts`),
 * manifest metadata and tags (`manifest-meta.ts`, `tags.ts`), the OCI layouts
 * and their `index.json` (`layout.ts`, `index-flush.ts`), the in-memory caches
 * (`caches.ts`), upload sessions (`uploads.ts`), garbage collection (`gc.ts`),
 * `fsck.ts` and the image records (`records.ts`); the registry API by area in
 * `registry-manifests.ts` and `registry-blobs.ts`. This function composes them.
 */
export async function createImageStore(options: ImageStoreOptions): Promise<ImageStore> {
  const o = resolveOptions(options);
  const paths = new StorePaths(o.root);
  if (!o.readOnly) {
    // A read-only store creates nothing, so it can serve a tree on a read-only filesystem.
    await mkdir(paths.internal('tmp'), { recursive: true });
    await mkdir(paths.internal('uploads'), { recursive: true });
  }
  let closed = false;
  const locks = new StoreLocks(paths.internal('locks'), o.staleLockMs);
  const caches = new StoreCaches();
  const metas = new ManifestMetas(paths, caches);
  const tags = new TagFiles(paths, caches);
  const content = createContentStore({
    paths,
    readOnly: o.readOnly,
    beforeFirstLink: (repository) => layouts.ensure(repository),
  });
  const layouts = new Layouts({
    paths,
    readOnly: o.readOnly,
    locks,
    caches,
    metas,
    tags,
    content: () => content,
    logger: o.logger,
  });
  const flusher = new IndexFlusher({ paths, layouts, delayMs: o.indexFlushDelayMs, logger: o.logger });
  const uploads = new Uploads({ paths, content, ttlMs: o.uploadTtlMs });

  function writable(): void {
    if (closed) throw new RegistryError('UNAVAILABLE', 'the image store is closed');
    if (o.readOnly) throw new RegistryError('DENIED', 'the image store is read-only');
  }

  function readable(): void {
    if (closed) throw new RegistryError('UNAVAILABLE', 'the image store is closed');
  }

  /** A record name moved: publish it as a tag where the repository holds the manifest, else untag. */
  async function retag(changes: readonly { name: string; before?: string; after?: string }[]): Promise<void> {
    for (const { name, before, after } of changes) {
      const { repository, tag } = parseImageName(name);
      const current = await tags.read(repository, tag);
      if (after !== undefined && isDigest(after) && (await metas.read(repository, after))) {
        if (current === after) continue;
        await flusher.changing(repository, () => tags.write(repository, tag, after));
      } else if (before !== undefined && current === before) {
        await flusher.changing(repository, () => tags.remove(repository, tag));
      }
    }
  }

  const records = new RecordStore({
    dir: paths.internal('images'),
    locks,
    readOnly: o.readOnly,
    onNames: retag,
  });
  const collector = new GarbageCollector({
    paths,
    caches,
    content,
    layouts,
    metas,
    tags,
    uploads,
    records,
    logger: o.logger,
  });

  const parts: StoreParts = {
    options: o,
    paths,
    caches,
    metas,
    tags,
    content,
    layouts,
    flusher,
    writable,
    readable,
  };
  const store: ImageStore = {
    root: paths.root,
    origin: `file://${paths.root}`,
    images: records,

    async capabilities() {
      return capabilities;
    },

    async purgeUploads() {
      writable();
      return uploads.expire(false);
    },

    async listRepositories(opts: ListOptions = {}) {
      readable();
      // a repository is listed once it has held a manifest (as before the split)
      const listed = async (name: string) => {
        await layouts.sync(name);
        // a new repository's layout has its empty algorithm directories: a manifest file is what counts
        for (const algorithm of (await ifExists(readdir(paths.repoMeta(name, 'manifests')))) ?? []) {
          const dir = await ifExists(opendir(paths.repoMeta(name, 'manifests', algorithm)));
          if (!dir) continue;
          try {
            for await (const entry of dir) if (entry.name.endsWith('.json')) return true;
          } finally {
            await dir.close().catch(() => undefined);
          }
        }
        return false;
      };
      // only the names of the page asked for are looked into: a page costs its size, not the catalog's
      const names = pageOf(
        await layouts.repositories(),
        opts.last === undefined ? {} : { last: opts.last },
      ).items;
      const limit = opts.n === undefined ? Number.POSITIVE_INFINITY : Math.max(0, Math.floor(opts.n));
      if (limit === 0) return { items: [] };
      const items: string[] = [];
      // looked into 32 at a time, in order, until the page is full
      for (let from = 0; from < names.length; from += 32) {
        const batch = names.slice(from, from + 32);
        const flags = await Promise.all(batch.map(listed));
        for (const [i, name] of batch.entries()) {
          if (!flags[i]) continue;
          if (items.length >= limit) return { items, next: items[items.length - 1] as string };
          items.push(name);
        }
      }
      return { items };
    },

    ...manifestApi(parts),
    ...blobApi(parts),

    async startUpload(repository: string, opts: OperationOptions = {}) {
      writable();
      opts.signal?.throwIfAborted();
      return uploads.start(repository);
    },

    async appendUpload(repository: string, id: string, opts: AppendUploadOptions) {
      writable();
      return uploads.append(repository, id, opts);
    },

    async getUpload(repository: string, id: string, opts: OperationOptions = {}) {
      readable();
      opts.signal?.throwIfAborted();
      return uploads.get(repository, id);
    },

    async finishUpload(repository: string, id: string, opts: FinishUploadOptions): Promise<BlobInfo> {
      writable();
      return uploads.finish(repository, id, opts);
    },

    async cancelUpload(repository: string, id: string, opts: OperationOptions = {}) {
      writable();
      opts.signal?.throwIfAborted();
      return uploads.cancel(repository, id);
    },

    async garbageCollect(opts: ImageStoreGcOptions = {}): Promise<ImageStoreGcReport> {
      if (!opts.dryRun) writable();
      else readable();
      return collector.run(opts);
    },

    async fsck(opts: OperationOptions = {}): Promise<FsckReport> {
      readable();
      return fsck({ paths, content, layouts, metas, tags }, opts);
    },

    lock(name: string, opts: LockOptions = {}) {
      readable();
      return locks.acquire(name, opts);
    },

    flush() {
      return flusher.flush();
    },

    async close() {
      if (closed) return;
      await flusher.flush();
      await records.close();
      closed = true;
    },

    [Symbol.asyncDispose]() {
      return store.close();
    },
  };
  if (!o.readOnly) await flusher.recover();
  return store;
}
