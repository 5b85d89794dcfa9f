// A Registry over plain OCI image layouts (oci-layout, index.json, blobs/), as skopeo's
// oci: transport reads and writes them: the options, the factory and the blob members.
import { join, resolve, sep } from 'node:path';
import { createFileBlobStore, type FileBlobStore, link, makeDirDurable, syncDir } from '@stowage/blob-store';
import {
  type BlobBody,
  type BlobInfo,
  type Digest,
  digestAlgorithm,
  fullCapabilities,
  type GetBlobOptions,
  isValidRepositoryName,
  type ListOptions,
  MAX_MANIFEST_SIZE,
  type MountBlobOptions,
  type OperationOptions,
  type PutBlobOptions,
  pageOf,
  parseDigest,
  parseRepositoryName,
  type Registry,
  type RegistryCapabilities,
  RegistryError,
} from '@stowage/oci';
import { ImageStoreOptionsError } from './errors.js';
import { StoreLocks } from './lock.js';
import {
  blobPath,
  findLayouts,
  IndexReader,
  initLayout,
  isLayout,
  RESERVED_COMPONENTS,
  removeStaleTemps,
  serialized,
  settled,
  unknownRepository,
} from './oci-layout-index.js';
import { type LayoutContext, manifestMembers } from './oci-layout-manifests.js';

export interface OciLayoutRegistryOptions {
  /** A directory of layouts: repository `a/b` is the layout at `<root>/a/b`. Give this or `directories`. */
  readonly root?: string;
  /** Fixed repositories, each the layout in a directory of any name (`{ layout: '/tmp/My Image' }`). */
  readonly directories?: Readonly<Record<string, string>>;
  /** Refuse every write with `DENIED`; nothing on disk is created or changed. */
  readonly readOnly?: boolean;
  /** Largest manifest accepted, and read as one. Default 4 MiB. */
  readonly maxManifestSize?: number;
}

/** A `Registry` over plain OCI image layouts. */
export interface OciLayoutRegistry extends Registry {
  readonly readOnly: boolean;
  /** Waits for the `index.json` writes in flight, then refuses every call with `UNAVAILABLE`. Idempotent. */
  close(): Promise<void>;
}

/** Everything but what a bare layout has no room for: upload sessions, locks, GC, sparse indexes. */
const capabilities: RegistryCapabilities = Object.freeze({
  ...fullCapabilities,
  uploadSessions: false,
  uploadStatus: false,
  outOfOrderChunkRefusal: false,
  sparseIndex: false,
  lock: false,
  garbageCollect: false,
});

/** Link errors that mean two layouts cannot share a file: the mount answers `undefined` (upload instead). */
/**
 * The lock other processes' writers of a layout take around an `index.json`
 * edit: a file in the layout, there only while held (named like the temporary
 * files tools already ignore). Edits take milliseconds; a holder that stops
 * touching it for this long is taken over.
 */
const INDEX_LOCK_FILE = '.index.json.lock';
const INDEX_LOCK_STALE_MS = 10_000;

const NO_LINK: ReadonlySet<string> = new Set(['EXDEV', 'EPERM', 'ENOTSUP', 'EOPNOTSUPP', 'ENOSYS', 'EMLINK']);

interface ResolvedOptions {
  readonly root?: string;
  readonly directories?: ReadonlyMap<string, string>;
  readonly readOnly: boolean;
  readonly maxManifestSize: number;
}

function resolveOptions(options: OciLayoutRegistryOptions): ResolvedOptions {
  if (typeof options !== 'object' || options === null) {
    throw new ImageStoreOptionsError('an OCI layout registry needs an options object');
  }
  const { root, directories } = options;
  if ((root === undefined) === (directories === undefined)) {
    throw new ImageStoreOptionsError('an OCI layout registry needs exactly one of root or directories');
  }
  const max = options.maxManifestSize ?? MAX_MANIFEST_SIZE;
  if (typeof max !== 'number' || !(max > 0)) {
    throw new ImageStoreOptionsError('maxManifestSize must be a positive number of bytes', {
      maxManifestSize: max,
    });
  }
  const base = { readOnly: options.readOnly ?? false, maxManifestSize: max };
  if (root !== undefined) {
    if (typeof root !== 'string' || root === '')
      throw new ImageStoreOptionsError('root must be a directory path');
    return { ...base, root: resolve(root) };
  }
  if (typeof directories !== 'object' || directories === null || Object.keys(directories).length === 0) {
    throw new ImageStoreOptionsError('directories must map at least one repository name to a directory');
  }
  const map = new Map<string, string>();
  for (const [name, dir] of Object.entries(directories)) {
    if (!isValidRepositoryName(name)) {
      throw new ImageStoreOptionsError(`directories: ${JSON.stringify(name)} is not a repository name`, {
        repository: name,
      });
    }
    if (typeof dir !== 'string' || dir === '') {
      throw new ImageStoreOptionsError(`directories: ${name} needs a directory path`, { repository: name });
    }
    map.set(name, resolve(dir));
  }
  return { ...base, directories: map };
}

/**
 * A `Registry` over plain OCI image layouts (`oci-layout`, `index.json`,
 * `blobs/<alg>/<hex>` and nothing else), as skopeo's `oci:<dir>:<tag>`
 * transport reads and writes them: either every layout under a `root`
 * (repository `a/b` at `<root>/a/b`), or fixed `directories`. Writes stream
 * into temporary files in the layout directory while they are hashed, are
 * fsynced and linked into place once digest and size match; `index.json` is
 * replaced atomically, one writer per layout at a time in this process.
 */
export function createOciLayoutRegistry(options: OciLayoutRegistryOptions): OciLayoutRegistry {
  const o = resolveOptions(options);
  const origin = `oci-layout://${o.root ?? [...(o.directories?.values() ?? [])].join(',')}`;
  const indexes = new IndexReader();
  const stores = new Map<string, FileBlobStore>();
  /** Layouts this registry made sure of (and swept of old temporary files). */
  const prepared = new Set<string>();
  /** Per layout, the cross-process lock on its `index.json`. */
  const indexLocks = new Map<string, StoreLocks>();
  /** Layouts this registry used: `close` waits for their writers. */
  const used = new Set<string>();
  let closed = false;

  const context: LayoutContext = {
    maxManifestSize: o.maxManifestSize,
    indexes,

    usable() {
      if (closed) throw new RegistryError('UNAVAILABLE', 'the OCI layout registry is closed');
    },

    writable(what: string) {
      context.usable();
      if (o.readOnly) {
        throw new RegistryError('DENIED', `the OCI layout registry ${origin} is read-only: cannot ${what}`, {
          details: { origin },
        });
      }
    },

    locate(repository: string) {
      parseRepositoryName(repository);
      if (o.directories) return o.directories.get(repository);
      const root = o.root as string;
      const components = repository.split('/');
      const reserved = components.slice(1).find((component) => RESERVED_COMPONENTS.has(component));
      if (reserved !== undefined) {
        throw new RegistryError(
          'NAME_INVALID',
          `repository ${repository}: "${reserved}" below the first level would land inside a parent layout`,
          { details: { repository } },
        );
      }
      const dir = resolve(root, ...components);
      if (!dir.startsWith(root + sep)) throw new RegistryError('NAME_INVALID', 'path escapes the root');
      return dir;
    },

    async existing(repository: string) {
      const dir = context.locate(repository);
      if (dir === undefined || !(await isLayout(dir))) return undefined;
      used.add(dir);
      return dir;
    },

    async required(repository: string) {
      const dir = await context.existing(repository);
      if (dir === undefined) throw unknownRepository(repository, context.locate(repository));
      return dir;
    },

    async target(repository: string) {
      const dir = context.locate(repository);
      if (dir === undefined) throw unknownRepository(repository);
      used.add(dir);
      if (prepared.has(dir) && (await isLayout(dir))) return dir;
      await serialized(dir, async () => {
        await initLayout(dir);
        if (!prepared.has(dir)) await removeStaleTemps(dir);
      });
      if (!(await isLayout(dir))) {
        throw new RegistryError('NAME_INVALID', `${dir} cannot be an OCI layout: its oci-layout is no file`, {
          details: { repository, dir },
        });
      }
      prepared.add(dir);
      return dir;
    },

    lockIndex(dir: string) {
      let locks = indexLocks.get(dir);
      if (!locks) {
        locks = new StoreLocks(dir, INDEX_LOCK_STALE_MS, { fileName: () => INDEX_LOCK_FILE });
        indexLocks.set(dir, locks);
      }
      return locks.acquire('index.json');
    },

    blobs(dir: string) {
      let store = stores.get(dir);
      if (!store) {
        // temporary files in the layout directory itself: on its filesystem, and no directory of ours in it
        store = createFileBlobStore({
          root: join(dir, 'blobs'),
          layout: 'stowage',
          tmpDir: dir,
          readOnly: o.readOnly,
        });
        stores.set(dir, store);
      }
      return store;
    },
  };

  const { clear: forgetManifests, ...manifests } = manifestMembers(context);

  async function repositories(): Promise<string[]> {
    if (o.root !== undefined) return findLayouts(o.root);
    const out: string[] = [];
    for (const [name, dir] of o.directories ?? []) if (await isLayout(dir)) out.push(name);
    return out;
  }

  async function blobInfo(dir: string, digest: Digest): Promise<BlobInfo | undefined> {
    const info = await context.blobs(dir).stat(digest);
    return info && { digest: info.digest, size: info.size };
  }

  /** Hard-links a blob of one layout into another; `undefined` when they cannot share the file. */
  async function linkBlob(from: string, to: string, digest: Digest): Promise<BlobInfo | undefined> {
    const present = await blobInfo(to, digest);
    if (present) return present;
    const dir = join(to, 'blobs', digestAlgorithm(digest));
    await makeDirDurable(dir);
    try {
      await link(blobPath(from, digest), blobPath(to, digest));
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code ?? '';
      if (NO_LINK.has(code)) return undefined;
      if (code !== 'EEXIST' && code !== 'ENOENT') throw error;
      return blobInfo(to, digest);
    }
    await syncDir(dir);
    return blobInfo(to, digest);
  }

  const registry: OciLayoutRegistry = {
    origin,
    readOnly: o.readOnly,
    ...manifests,

    async capabilities() {
      context.usable();
      return capabilities;
    },

    async listRepositories(opts: ListOptions = {}) {
      context.usable();
      opts.signal?.throwIfAborted();
      return pageOf(await repositories(), opts);
    },

    async headBlob(repository: string, digest: Digest, opts: OperationOptions = {}) {
      context.usable();
      opts.signal?.throwIfAborted();
      parseDigest(digest);
      const dir = await context.existing(repository);
      return dir === undefined ? undefined : blobInfo(dir, digest);
    },

    async getBlob(repository: string, digest: Digest, opts: GetBlobOptions = {}) {
      context.usable();
      parseDigest(digest);
      return context.blobs(await context.required(repository)).read(digest, opts);
    },

    async putBlob(repository: string, body: BlobBody, opts: PutBlobOptions) {
      context.writable('write blobs');
      opts.signal?.throwIfAborted();
      const digest = parseDigest(opts.digest);
      const dir = await context.target(repository);
      const { size } = await context.blobs(dir).write(body, {
        digest,
        ...(opts.size === undefined ? {} : { size: opts.size }),
        ...(opts.signal ? { signal: opts.signal } : {}),
      });
      return { digest, size };
    },

    async mountBlob(repository: string, digest: Digest, opts: MountBlobOptions = {}) {
      context.writable('mount blobs');
      opts.signal?.throwIfAborted();
      parseDigest(digest);
      if (context.locate(repository) === undefined) throw unknownRepository(repository);
      const sources = opts.from === undefined ? await repositories() : [opts.from];
      for (const from of sources) {
        if (from === repository) continue;
        const dir = await context.existing(from);
        if (dir === undefined || !(await blobInfo(dir, digest))) continue;
        const mounted = await linkBlob(dir, await context.target(repository), digest);
        if (mounted) return mounted;
      }
      return undefined;
    },

    async deleteBlob(repository: string, digest: Digest, opts: OperationOptions = {}) {
      context.writable('delete blobs');
      opts.signal?.throwIfAborted();
      parseDigest(digest);
      const dir = await context.required(repository);
      if (!(await context.blobs(dir).delete(digest))) {
        throw new RegistryError('BLOB_UNKNOWN', `blob ${digest} is not in ${repository}`, {
          details: { repository, digest },
        });
      }
    },

    async close() {
      if (closed) return;
      closed = true;
      for (const dir of used) await settled(dir);
      forgetManifests();
      indexes.clear();
    },
  };
  return registry;
}
