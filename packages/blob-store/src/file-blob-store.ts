import { randomBytes } from 'node:crypto';
import { open, opendir, rmdir } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { addAbortSignal, Readable } from 'node:stream';
import {
  type BlobBody,
  type BlobContent,
  type Digest,
  Digester,
  DigestMismatchError,
  digestAlgorithm,
  digestAlgorithms,
  digestHex,
  isDigest,
  type OperationOptions,
  parseDigest,
  RegistryError,
  resolveRange,
  SizeMismatchError,
  verifiedDigestOf,
} from '@stowage/oci';
import type {
  BlobStore,
  ReadBlobOptions,
  StoredBlob,
  WriteBlobOptions,
  WriteBlobResult,
} from './blob-store.js';
import { publishWrite } from './diagnostics.js';
import { fsyncPath, ifExists, isMissing, makeDirDurable, syncDir, unlinkIfExists } from './durable-fs.js';
import { BlobStoreOptionsError } from './errors.js';
import { checkLength, writeBody } from './internal/body.js';
import { link, rename, rm, stat, utimes } from './quick-fs.js';

/**
 * Where a file blob store keeps a blob:
 * - `stowage`: `<root>/<algorithm>/<hex>`, the image store's content store
 *   (its root is `<store>/.stowage/blobs`);
 * - `distribution`: `<root>/docker/registry/v2/blobs/<algorithm>/<first two hex>/<hex>/data`,
 *   the tree docker-registry (distribution) writes with its filesystem driver,
 *   where `root` is its `rootdirectory`.
 */
export type FileBlobLayout = 'stowage' | 'distribution';

export interface FileBlobStoreOptions {
  /** The directory the layout starts from. */
  readonly root: string;
  readonly layout: FileBlobLayout;
  /** Refuse `write` and `delete` with `DENIED`, and create nothing (a tree on a read-only mount, or one another program owns). */
  readonly readOnly?: boolean;
  /**
   * Where bytes are written before they are verified. It must be on the same
   * filesystem as `root`, because a verified file is linked into place, never
   * copied. Default `<root>/.tmp`. A writer killed mid-write leaves a
   * `*.blob-tmp` file here; any older than the longest write in flight may be removed.
   */
  readonly tmpDir?: string;
}

export interface AdoptBlobOptions extends OperationOptions {
  /**
   * The digest the file's bytes hash to. The caller vouches for it: `adopt`
   * does not read the file, so a wrong digest stores wrong bytes under it.
   */
  readonly digest: Digest;
  /** The file's exact length when known; a file of another size is refused with `SIZE_INVALID`. */
  readonly size?: number;
}

/** A `BlobStore` over a directory tree, with the `path` and `adopt` members. */
export interface FileBlobStore extends BlobStore {
  readonly root: string;
  readonly layout: FileBlobLayout;
  readonly readOnly: boolean;
  path(digest: Digest): string;
  /**
   * Commits a file whose bytes were already verified (a finished upload, a
   * blob another tool wrote) without copying it: the file is fsynced and
   * hard-linked under the blob's name, or, on a filesystem without hard
   * links, renamed there (then `path` is gone). It must be on the store's
   * filesystem. Its bytes are NOT hashed: the caller vouches for `digest`.
   * A blob stored already is kept and touched (`created: false`). Published
   * on `stowage:blob-store:write` like `write`.
   */
  adopt(path: string, options: AdoptBlobOptions): Promise<WriteBlobResult>;
}

/** Link errors that mean "this filesystem has no hard links": the commit falls back to a rename. */
const NO_HARD_LINKS: ReadonlySet<string> = new Set(['EPERM', 'ENOTSUP', 'EOPNOTSUPP', 'ENOSYS', 'EMLINK']);

/**
 * A blob store over a directory tree, in the image store's layout or in
 * distribution's. A write streams into a temporary file while it is hashed,
 * is fsynced, and only when digest and size match is it linked under its
 * final name (a hard link, which never replaces a file already there, so two
 * writers of one blob cannot clobber each other) and the directory fsynced.
 * Reads, stats and listings open files directly, so a tree docker-registry
 * wrote is served in place, without import or copy.
 */
export function createFileBlobStore(options: FileBlobStoreOptions): FileBlobStore {
  if (typeof options?.root !== 'string' || options.root === '') {
    throw new BlobStoreOptionsError('a file blob store needs a root directory');
  }
  const layout = options.layout;
  if (layout !== 'stowage' && layout !== 'distribution') {
    throw new BlobStoreOptionsError(`unknown blob layout ${JSON.stringify(String(layout).slice(0, 32))}`, {
      layout: String(layout).slice(0, 32),
    });
  }
  const root = resolve(options.root);
  const readOnly = options.readOnly ?? false;
  const tmpDir = resolve(options.tmpDir ?? join(root, '.tmp'));
  /** The directory holding one directory per algorithm. */
  const blobsDir = layout === 'stowage' ? root : join(root, 'docker', 'registry', 'v2', 'blobs');

  function pathOf(digest: Digest): string {
    const d = parseDigest(digest);
    const hex = digestHex(d);
    return layout === 'stowage'
      ? join(blobsDir, digestAlgorithm(d), hex)
      : join(blobsDir, digestAlgorithm(d), hex.slice(0, 2), hex, 'data');
  }

  function writable(what: string): void {
    if (readOnly) {
      throw new RegistryError('DENIED', `the blob store at ${root} is read-only: cannot ${what}`, {
        details: { root },
      });
    }
  }

  async function statPath(digest: Digest, path: string): Promise<StoredBlob | undefined> {
    const info = await ifExists(stat(path));
    if (!info?.isFile()) return undefined;
    return { digest, size: info.size, modifiedAt: info.mtimeMs };
  }

  /** Checks a body without keeping it: the check a write of a blob already stored still makes (a marked body checks itself). */
  async function verifyOnly(body: BlobBody, opts: WriteBlobOptions, digest: Digest): Promise<number> {
    const digester = verifiedDigestOf(body) === digest ? undefined : new Digester(digestAlgorithm(digest));
    const checked = checkLength(
      opts.signal && body instanceof Readable ? addAbortSignal(opts.signal, body) : body,
      opts.size,
    );
    for await (const chunk of checked.chunks) {
      opts.signal?.throwIfAborted();
      digester?.update(chunk);
    }
    const bytes = checked.seen();
    const actual = digester?.digest();
    if (actual !== undefined && actual !== digest) throw new DigestMismatchError(digest, actual);
    return bytes;
  }

  /** Streams a verified body into a new temp file, fsynced; removed again on any failure. */
  async function receive(body: BlobBody, opts: WriteBlobOptions, digest: Digest) {
    await makeDirDurable(tmpDir);
    const temp = join(tmpDir, `${randomBytes(12).toString('hex')}.blob-tmp`);
    // Created before a byte flows, so no refusal can race its creation and leave it behind.
    const handle = await open(temp, 'wx', 0o644);
    // A body already checked against this digest (markVerified) is not hashed twice.
    const digester = verifiedDigestOf(body) === digest ? undefined : new Digester(digestAlgorithm(digest));
    let size: number;
    try {
      size = await writeBody(handle, body, {
        ...(opts.size === undefined ? {} : { length: opts.size }),
        ...(digester ? { onChunk: (chunk: Uint8Array) => digester.update(chunk) } : {}),
        ...(opts.signal ? { signal: opts.signal } : {}),
      });
      const actual = digester?.digest();
      if (actual !== undefined && actual !== digest) throw new DigestMismatchError(digest, actual);
      await handle.sync();
    } catch (error) {
      await handle.close().catch(() => undefined);
      await rm(temp, { force: true });
      throw error;
    }
    await handle.close();
    return { temp, size };
  }

  /** Restarts a stored blob's age, as a fresh write of it does. */
  async function refresh(target: string): Promise<void> {
    const now = new Date();
    await ifExists(utimes(target, now, now));
  }

  /** Puts a verified file under its final name; false when the blob got there first. */
  async function commit(temp: string, target: string): Promise<boolean> {
    await makeDirDurable(dirname(target));
    try {
      await link(temp, target);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code ?? '';
      if (code === 'EEXIST') return false;
      if (!NO_HARD_LINKS.has(code)) throw error;
      if (await ifExists(stat(target))) return false;
      await rename(temp, target);
    }
    await syncDir(dirname(target));
    return true;
  }

  async function* walk(signal: AbortSignal | undefined): AsyncGenerator<StoredBlob> {
    for (const algorithm of digestAlgorithms) {
      const algorithmDir = join(blobsDir, algorithm);
      if (layout === 'stowage') {
        yield* entries(algorithmDir, signal, async (name) => {
          const digest = `${algorithm}:${name}`;
          return isDigest(digest) ? statPath(digest, join(algorithmDir, name)) : undefined;
        });
        continue;
      }
      // distribution: <alg>/<two hex>/<hex>/data, the shard being the hex's first two characters.
      const shards = await ifExists(opendir(algorithmDir));
      if (!shards) continue;
      for await (const shard of shards) {
        signal?.throwIfAborted();
        if (!shard.isDirectory() || shard.name.length !== 2) continue;
        const shardDir = join(algorithmDir, shard.name);
        yield* entries(shardDir, signal, async (name) => {
          const digest = `${algorithm}:${name}`;
          if (!name.startsWith(shard.name) || !isDigest(digest)) return undefined;
          return statPath(digest, join(shardDir, name, 'data'));
        });
      }
    }
  }

  /** The blobs named by a directory's entries, read in batches (never the whole directory at once). */
  async function* entries(
    dir: string,
    signal: AbortSignal | undefined,
    blobOf: (name: string) => Promise<StoredBlob | undefined>,
  ): AsyncGenerator<StoredBlob> {
    const handle = await ifExists(opendir(dir));
    if (!handle) return;
    for await (const entry of handle) {
      signal?.throwIfAborted();
      const blob = await blobOf(entry.name);
      if (blob) yield blob;
    }
  }

  return {
    root,
    layout,
    readOnly,

    path: pathOf,

    async stat(digest: Digest, opts: OperationOptions = {}) {
      opts.signal?.throwIfAborted();
      return statPath(parseDigest(digest), pathOf(digest));
    },

    async read(digest: Digest, opts: ReadBlobOptions = {}): Promise<BlobContent> {
      opts.signal?.throwIfAborted();
      const path = pathOf(digest);
      // Open first, then stat the open file: a delete in between cannot tear the answer.
      const handle = await ifExists(open(path, 'r'));
      if (!handle)
        throw new RegistryError('BLOB_UNKNOWN', `blob ${digest} is not stored`, { details: { digest } });
      let stream: Readable;
      let range: ReturnType<typeof resolveRange>;
      let size: number;
      try {
        const info = await handle.stat();
        if (!info.isFile()) {
          throw new RegistryError('BLOB_UNKNOWN', `blob ${digest} is not stored`, { details: { digest } });
        }
        size = info.size;
        range = resolveRange(opts.range, size);
        stream = handle.createReadStream({
          highWaterMark: 1 << 20,
          ...(range ? { start: range.start, end: range.end } : {}),
        });
      } catch (error) {
        await handle.close();
        throw error;
      }
      if (opts.signal) addAbortSignal(opts.signal, stream);
      return { digest: parseDigest(digest), size, stream, ...(range ? { range } : {}) };
    },

    async write(body: BlobBody, opts: WriteBlobOptions): Promise<WriteBlobResult> {
      writable('write blobs');
      const digest = parseDigest(opts.digest);
      opts.signal?.throwIfAborted();
      const target = pathOf(digest);
      if (await statPath(digest, target)) {
        const size = await verifyOnly(body, opts, digest);
        // A fresh write restarts the age garbage collection's grace period counts.
        await refresh(target);
        publishWrite(() => ({ store: root, digest, size, created: false }));
        return { digest, size, created: false };
      }
      const { temp, size } = await receive(body, opts, digest);
      let created: boolean;
      try {
        created = await commit(temp, target);
      } finally {
        await rm(temp, { force: true });
      }
      publishWrite(() => ({ store: root, digest, size, created }));
      return { digest, size, created };
    },

    async adopt(path: string, opts: AdoptBlobOptions): Promise<WriteBlobResult> {
      writable('adopt blobs');
      const digest = parseDigest(opts.digest);
      opts.signal?.throwIfAborted();
      const info = await ifExists(stat(path));
      if (!info?.isFile()) {
        throw new RegistryError('BLOB_UNKNOWN', `nothing to adopt: ${path} is not a file`, {
          details: { digest, path },
        });
      }
      const size = info.size;
      if (opts.size !== undefined && opts.size !== size) throw new SizeMismatchError(opts.size, size);
      const target = pathOf(digest);
      let created = false;
      if (!(await statPath(digest, target))) {
        await fsyncPath(path);
        created = await commit(path, target);
      }
      if (!created) await refresh(target);
      publishWrite(() => ({ store: root, digest, size, created }));
      return { digest, size, created };
    },

    async delete(digest: Digest, opts: OperationOptions = {}) {
      writable('delete blobs');
      opts.signal?.throwIfAborted();
      const path = pathOf(digest);
      if (!(await unlinkIfExists(path))) return false;
      await syncDir(dirname(path));
      if (layout === 'distribution') {
        // distribution removes a blob's whole directory; an emptied <hex>/ would be litter.
        try {
          await rmdir(dirname(path));
          await syncDir(dirname(dirname(path)));
        } catch (error) {
          const code = (error as NodeJS.ErrnoException).code;
          if (code !== 'ENOTEMPTY' && code !== 'EEXIST' && !isMissing(error)) throw error;
        }
      }
      return true;
    },

    list(opts: OperationOptions = {}) {
      return walk(opts.signal);
    },
  };
}
