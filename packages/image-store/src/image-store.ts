import { createReadStream } from 'node:fs';
import { mkdir, readFile, stat } from 'node:fs/promises';
import { dirname } from 'node:path';
import {
  type AppendUploadOptions,
  type BlobBody,
  type BlobContent,
  type BlobInfo,
  type Descriptor,
  type Digest,
  type FinishUploadOptions,
  filterReferrers,
  fullCapabilities,
  type GetBlobOptions,
  type GetManifestOptions,
  isDigest,
  type ListOptions,
  type LockOptions,
  type ManifestContent,
  type MountBlobOptions,
  manifestReferences,
  type OperationOptions,
  type PutBlobOptions,
  type PutManifestOptions,
  type PutManifestResult,
  pageOf,
  parseDigest,
  parseManifest,
  parseManifestReference,
  type Referrers,
  type ReferrersOptions,
  type RegistryCapabilities,
  RegistryError,
  type RegistryLock,
  type RegistryWithUploads,
  resolveRange,
} from '@stowage/oci';
import { StoreCaches } from './caches.js';
import { createContentStore } from './content-store.js';
import { ifExists, syncDir, touch, unlinkIfExists } from './fs-utils.js';
import { type FsckReport, fsck } from './fsck.js';
import { GarbageCollector, type ImageStoreGcOptions, type ImageStoreGcReport } from './gc.js';
import { IndexFlusher } from './index-flush.js';
import { Layouts } from './layout.js';
import { StoreLocks } from './lock.js';
import { descriptorOf, ManifestMetas, metaOf } from './manifest-meta.js';
import { type ImageStoreOptions, resolveOptions } from './options.js';
import { StorePaths } from './paths.js';
import { type ImageRecords, parseImageName, RecordStore } from './records.js';
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
  close(): Promise<void>;
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
 * `fsck.ts` and the image records (`records.ts`).
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

  async function resolve(repository: string, reference: string): Promise<Digest | undefined> {
    paths.repository(repository);
    await layouts.sync(repository);
    return tags.resolve(repository, reference);
  }

  async function manifestBytes(repository: string, digest: Digest): Promise<Uint8Array | undefined> {
    const hit = caches.bytes(digest);
    if (hit) return hit;
    const bytes = await ifExists(readFile(paths.repoBlob(repository, digest)));
    if (bytes) caches.keepBytes(digest, bytes);
    return bytes;
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
      const withManifests: string[] = [];
      for (const name of await layouts.repositories()) {
        await layouts.sync(name);
        if ((await metas.digests(name)).length > 0) withManifests.push(name);
      }
      return pageOf(withManifests, opts);
    },

    async listTags(repository: string, opts: ListOptions = {}) {
      readable();
      paths.repository(repository);
      if (!(await layouts.isRepository(repository))) {
        throw new RegistryError('NAME_UNKNOWN', `repository ${repository} is not known`, {
          details: { repository },
        });
      }
      return pageOf(await tags.names(repository), opts);
    },

    async deleteTag(repository: string, tag: string, opts: OperationOptions = {}) {
      writable();
      opts.signal?.throwIfAborted();
      paths.tag(repository, tag);
      await flusher.changing(repository, async () => {
        if (!(await tags.remove(repository, tag))) {
          throw new RegistryError('MANIFEST_UNKNOWN', `tag ${tag} is not in ${repository}`);
        }
      });
    },

    async getManifest(repository: string, reference: string, opts: GetManifestOptions = {}) {
      readable();
      opts.signal?.throwIfAborted();
      const digest = await resolve(repository, reference);
      const meta = digest && (await metas.present(repository, digest));
      const bytes = digest && meta && (await manifestBytes(repository, digest));
      if (!digest || !meta || !bytes) {
        throw new RegistryError('MANIFEST_UNKNOWN', `manifest ${reference} is not in ${repository}`);
      }
      const found: ManifestContent = {
        digest,
        mediaType: meta.mediaType,
        size: bytes.byteLength,
        bytes: new Uint8Array(bytes),
      };
      return found;
    },

    async headManifest(repository: string, reference: string, opts: GetManifestOptions = {}) {
      readable();
      opts.signal?.throwIfAborted();
      const digest = await resolve(repository, reference);
      const meta = digest && (await metas.present(repository, digest));
      return digest && meta ? { digest, mediaType: meta.mediaType, size: meta.size } : undefined;
    },

    async putManifest(repository: string, reference: string, opts: PutManifestOptions) {
      const { bytes } = opts;
      writable();
      opts.signal?.throwIfAborted();
      paths.repository(repository);
      const target = parseManifestReference(reference);
      const parsed = parseManifest(bytes, {
        mediaType: opts.mediaType,
        ...(o.maxManifestSize === undefined ? {} : { maxSize: o.maxManifestSize }),
        ...('digest' in target ? { digest: target.digest } : {}),
      });
      const references = manifestReferences(parsed);
      for (const blob of references.blobs) {
        if (!(await ifExists(stat(paths.repoBlob(repository, blob.digest))))) {
          throw new RegistryError('MANIFEST_BLOB_UNKNOWN', `blob ${blob.digest} is not in ${repository}`, {
            details: { repository, digest: blob.digest },
          });
        }
      }
      // A sparse index may lack its child manifests; anything else must have them all.
      let absentChildren = false;
      for (const child of references.manifests) {
        if (await metas.present(repository, child.digest)) continue;
        if (!opts.sparse) {
          throw new RegistryError(
            'MANIFEST_BLOB_UNKNOWN',
            `manifest ${child.digest} is not in ${repository}`,
            {
              details: { repository, digest: child.digest },
            },
          );
        }
        absentChildren = true;
      }
      const meta = metaOf(parsed, absentChildren);
      // Re-tagging a manifest the repository already holds only writes the tag, and
      // refreshes the manifest's age, which untagged-manifest collection counts from
      // (one syscall that also tells whether the repository holds it).
      const known =
        (await touch(paths.manifestMeta(repository, parsed.digest))) &&
        (await metas.cached(repository, parsed.digest));
      if (!known || !(await ifExists(stat(paths.repoBlob(repository, parsed.digest))))) {
        await content.put(repository, bytes, { digest: parsed.digest, size: bytes.byteLength });
        await metas.write(repository, parsed.digest, meta);
      } else if ((known.sparse ?? false) !== absentChildren) {
        // an index whose children all arrived is whole now (or one that lost some is sparse)
        await metas.write(repository, parsed.digest, meta);
      }
      if ('tag' in target) {
        await flusher.changing(repository, () => tags.write(repository, target.tag, parsed.digest));
      }
      const result: PutManifestResult = {
        digest: parsed.digest,
        ...(meta.subject ? { subject: meta.subject } : {}),
      };
      return result;
    },

    async deleteManifest(repository: string, digest: Digest, opts: OperationOptions = {}) {
      writable();
      opts.signal?.throwIfAborted();
      parseDigest(digest);
      if (!(await ifExists(stat(paths.manifestMeta(repository, digest))))) {
        throw new RegistryError('MANIFEST_UNKNOWN', `manifest ${digest} is not in ${repository}`);
      }
      await flusher.changing(repository, async () => {
        // Tags first, so a crash part-way leaves an untagged manifest, never a tag to nothing.
        for (const [tag, target] of await tags.list(repository)) {
          if (target === digest) await tags.remove(repository, tag);
        }
        const metaPath = paths.manifestMeta(repository, digest);
        if (!(await unlinkIfExists(metaPath))) {
          throw new RegistryError('MANIFEST_UNKNOWN', `manifest ${digest} is not in ${repository}`);
        }
        await syncDir(dirname(metaPath));
        await unlinkIfExists(paths.repoBlob(repository, digest));
        caches.manifestDeleted(repository, digest);
      });
    },

    async listReferrers(repository: string, digest: Digest, opts: ReferrersOptions = {}): Promise<Referrers> {
      readable();
      parseDigest(digest);
      paths.repository(repository);
      const descriptors: Descriptor[] = [];
      for (const candidate of await metas.digests(repository)) {
        const meta = await metas.read(repository, candidate);
        if (meta?.subject === digest) descriptors.push(descriptorOf(candidate, meta));
      }
      return filterReferrers(descriptors, opts.artifactType);
    },

    async headBlob(repository: string, digest: Digest, opts: OperationOptions = {}) {
      readable();
      opts.signal?.throwIfAborted();
      const info = await ifExists(stat(paths.repoBlob(repository, digest)));
      return info ? { digest, size: info.size } : undefined;
    },

    async getBlob(repository: string, digest: Digest, opts: GetBlobOptions = {}): Promise<BlobContent> {
      readable();
      opts.signal?.throwIfAborted();
      const path = paths.repoBlob(repository, digest);
      const info = await ifExists(stat(path));
      if (!info) {
        throw new RegistryError('BLOB_UNKNOWN', `blob ${digest} is not in ${repository}`, {
          details: { repository, digest },
        });
      }
      const size = info.size;
      const range = resolveRange(opts.range, size);
      if (!range) return { digest, size, stream: createReadStream(path, { highWaterMark: 1 << 20 }) };
      return { digest, size, range, stream: createReadStream(path, { ...range, highWaterMark: 1 << 20 }) };
    },

    async putBlob(repository: string, body: BlobBody, opts: PutBlobOptions): Promise<BlobInfo> {
      writable();
      paths.repository(repository);
      const digest = parseDigest(opts.digest);
      opts.signal?.throwIfAborted();
      return content.put(repository, body, {
        digest,
        ...(opts.size === undefined ? {} : { size: opts.size }),
        ...(opts.signal === undefined ? {} : { signal: opts.signal }),
      });
    },

    async mountBlob(repository: string, digest: Digest, opts: MountBlobOptions = {}) {
      writable();
      paths.repository(repository);
      parseDigest(digest);
      if (opts.from !== undefined) {
        if (!(await ifExists(stat(paths.repoBlob(opts.from, digest))))) return undefined;
      }
      const stored = await content.blobs.stat(digest);
      if (!stored) return undefined;
      await content.link(repository, digest);
      return { digest, size: stored.size };
    },

    async deleteBlob(repository: string, digest: Digest, opts: OperationOptions = {}) {
      writable();
      opts.signal?.throwIfAborted();
      const path = paths.repoBlob(repository, digest);
      if (!(await unlinkIfExists(path))) {
        throw new RegistryError('BLOB_UNKNOWN', `blob ${digest} is not in ${repository}`);
      }
      await syncDir(dirname(path));
    },

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
  };
  if (!o.readOnly) await flusher.recover();
  return store;
}
