import { createHash, type Hash, randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { link, mkdir, open, readdir, readFile, rename, rm, stat, truncate, unlink } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { Readable, Transform, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import {
  type AppendUploadOptions,
  type BlobBody,
  type BlobContent,
  type BlobInfo,
  type Descriptor,
  type Digest,
  DigestMismatchError,
  digestAlgorithm,
  digestStream,
  type FinishUploadOptions,
  fullCapabilities,
  type GarbageCollectOptions,
  type GarbageCollectReport,
  type GetBlobOptions,
  type GetManifestOptions,
  isDigest,
  isValidTag,
  type ListOptions,
  type ListPage,
  type LockOptions,
  type ManifestContent,
  type MountBlobOptions,
  manifestReferences,
  type OperationOptions,
  type ParsedManifest,
  type PutBlobOptions,
  type PutManifestOptions,
  type PutManifestResult,
  parseDigest,
  parseManifest,
  parseTag,
  type Referrers,
  type ReferrersOptions,
  type Registry,
  type RegistryCapabilities,
  RegistryError,
  type RegistryLock,
  type RegistryWithUploads,
  SizeMismatchError,
  type UploadStatus,
  VerifyingStream,
} from '@stowage/oci';
import {
  fsyncPath,
  ifExists,
  syncDir,
  tempBeside,
  touch,
  unlinkIfExists,
  writeFileAtomic,
} from './fs-utils.js';
import { processAlive, StoreLocks } from './lock.js';
import { StorePaths } from './paths.js';
import { type ImageRecords, parseImageName, RecordStore } from './records.js';

export interface ImageStoreOptions {
  /** The store's directory; created when missing. */
  readonly root: string;
  /** Refuse every write with `DENIED`. */
  readonly readOnly?: boolean;
  /** Largest manifest accepted. Default 4 MiB. */
  readonly maxManifestSize?: number;
  /** Upload sessions older than this are gone. Default 24 hours. */
  readonly uploadTtlMs?: number;
  /** How long a repository's `index.json` may lag behind its tags. Default 200 ms. */
  readonly indexFlushDelayMs?: number;
  /** A lock whose holder stopped touching it this long ago is taken over. Default 10 s. */
  readonly staleLockMs?: number;
}

/** One thing `fsck` found wrong. */
export interface FsckProblem {
  readonly kind: 'corrupt-blob' | 'missing-blob' | 'missing-manifest' | 'invalid-manifest' | 'dangling-tag';
  readonly path: string;
  readonly repository?: string;
  readonly digest?: string;
  readonly detail?: string;
}

export interface FsckReport {
  readonly blobsChecked: number;
  readonly manifestsChecked: number;
  readonly problems: readonly FsckProblem[];
  /** Unfinished writes left by a crash: never visible as content; garbage collection removes them. */
  readonly leftovers: readonly string[];
}

export interface ImageStoreGcOptions extends GarbageCollectOptions {
  /**
   * Also delete manifests nothing keeps: not tagged, not a child of a kept
   * index (unlike distribution 2.8's `--delete-untagged`, which breaks tagged
   * indexes), not a referrer of a kept manifest; older than the grace period.
   */
  readonly deleteUntagged?: boolean;
}

export interface ImageStoreGcReport extends GarbageCollectReport {
  /** Data directories of image records that no record owns (a crash between writes leaves them). */
  readonly recordDataRemoved: readonly string[];
}

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

interface ManifestMeta {
  readonly mediaType: string;
  readonly size: number;
  readonly subject?: Digest;
  readonly artifactType?: string;
  readonly annotations?: Readonly<Record<string, string>>;
}

interface UploadState {
  readonly repository: string;
  readonly startedAt: number;
}

const OCI_LAYOUT = '{"imageLayoutVersion":"1.0.0"}';
const REF_NAME = 'org.opencontainers.image.ref.name';

function toIterable(body: BlobBody): AsyncIterable<Uint8Array> {
  return body instanceof Uint8Array ? Readable.from([body]) : body;
}

/** Counts bytes and refuses more than `limit`. */
function limitBytes(limit: number | undefined, onBytes: (n: number) => void): Transform {
  let seen = 0;
  return new Transform({
    transform(chunk: Uint8Array, _enc: BufferEncoding, done: TransformCallback) {
      seen += chunk.byteLength;
      onBytes(seen);
      if (limit !== undefined && seen > limit) done(new SizeMismatchError(limit, seen));
      else done(null, chunk);
    },
  });
}

/** What the store keeps beside a manifest for listings and referrers. */
function metaOf(parsed: ParsedManifest): ManifestMeta {
  const manifest = parsed.manifest;
  const subject = manifestReferences(parsed).subject;
  const artifactType =
    manifest.artifactType ?? (parsed.kind === 'image' ? parsed.manifest.config.mediaType : undefined);
  return {
    mediaType: parsed.mediaType,
    size: parsed.size,
    ...(subject ? { subject: subject.digest } : {}),
    ...(artifactType ? { artifactType } : {}),
    ...(manifest.annotations ? { annotations: manifest.annotations } : {}),
  };
}

function sha256Hex(data: Uint8Array | string): string {
  return createHash('sha256').update(data).digest('hex');
}

/** Bytes gathered before one write: network chunks are 16–64 KiB, disks like larger writes. */
const WRITE_BATCH = 1 << 20;
/** How many bytes of manifests a store keeps in memory for reads. */
const MANIFEST_CACHE_BYTES = 32 << 20;

/** Gathers chunks into writes of about `WRITE_BATCH` bytes. */
function batched(): Transform {
  let pending: Uint8Array[] = [];
  let bytes = 0;
  return new Transform({
    transform(chunk: Uint8Array, _encoding: BufferEncoding, done: TransformCallback) {
      pending.push(chunk);
      bytes += chunk.byteLength;
      if (bytes < WRITE_BATCH) return done();
      const batch = Buffer.concat(pending, bytes);
      pending = [];
      bytes = 0;
      done(null, batch);
    },
    flush(done: TransformCallback) {
      done(null, bytes > 0 ? Buffer.concat(pending, bytes) : undefined);
    },
  });
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function page(all: string[], options: ListOptions): ListPage {
  const sorted = all.sort(compare);
  const last = options.last;
  const after = last === undefined ? sorted : sorted.filter((item) => item > last);
  if (options.n === undefined) return { items: after };
  const n = Math.max(0, Math.floor(options.n));
  const items = after.slice(0, n);
  return n > 0 && after.length > n ? { items, next: items[items.length - 1] as string } : { items };
}

/**
 * Opens (creating when missing) a local image store. Blobs live once in a
 * content-addressed store under `.stowage/blobs` and are hard-linked into each
 * repository that holds them; every repository directory is an OCI image layout
 * (`oci-layout`, `index.json`, `blobs/`). Writes go to a temporary file on the
 * same filesystem, are hashed while written, fsynced and renamed into place only
 * when digest and size match.
 */
export async function createImageStore(options: ImageStoreOptions): Promise<ImageStore> {
  const paths = new StorePaths(options.root);
  const uploadTtlMs = options.uploadTtlMs ?? 24 * 60 * 60 * 1000;
  const flushDelay = options.indexFlushDelayMs ?? 200;
  if (!options.readOnly) {
    // A read-only store creates nothing, so it can serve a tree on a read-only filesystem.
    await mkdir(paths.internal('tmp'), { recursive: true });
    await mkdir(paths.internal('uploads'), { recursive: true });
  }
  const dirtyIndexes = new Set<string>();
  let flushTimer: NodeJS.Timeout | undefined;
  let closed = false;
  const sessionLocks = new Map<string, Promise<unknown>>();
  const locks = new StoreLocks(paths.internal('locks'), options.staleLockMs ?? 10_000);

  function writable(): void {
    if (closed) throw new RegistryError('UNAVAILABLE', 'the image store is closed');
    if (options.readOnly) throw new RegistryError('DENIED', 'the image store is read-only');
  }

  function readable(): void {
    if (closed) throw new RegistryError('UNAVAILABLE', 'the image store is closed');
  }

  /** Serializes work on one upload session. */
  function serial<T>(key: string, work: () => Promise<T>): Promise<T> {
    const previous = sessionLocks.get(key) ?? Promise.resolve();
    const next = previous.catch(() => undefined).then(work);
    sessionLocks.set(key, next);
    const cleanup = () => {
      if (sessionLocks.get(key) === next) sessionLocks.delete(key);
    };
    next.then(cleanup, cleanup);
    return next;
  }

  async function ensureLayout(repository: string): Promise<void> {
    const dir = paths.repoDir(repository);
    if (await ifExists(stat(join(dir, 'oci-layout')))) return;
    await mkdir(paths.repoMeta(repository, 'tags'), { recursive: true });
    await writeFileAtomic(join(dir, 'oci-layout'), OCI_LAYOUT);
    if (!(await ifExists(stat(join(dir, 'index.json'))))) {
      await writeFileAtomic(join(dir, 'index.json'), '{"schemaVersion":2,"manifests":[]}');
    }
  }

  async function isRepository(repository: string): Promise<boolean> {
    await syncLayout(repository);
    return (await ifExists(stat(paths.repoMeta(repository)))) !== undefined;
  }

  /**
   * Another tool (skopeo, umoci, crane) may write a repository directory as an
   * OCI layout. Each `index.json` this store writes has its sha256 stamped in
   * `.stowage/index.sha256` first, beside the hash of the `index.json` it
   * replaces: a writer killed between the two renames leaves the old file, and
   * the old file is still known as ours (adopting it would bring back tags
   * deleted since). An `index.json` whose stat changed and whose hash is in
   * neither line was written by someone else and is adopted: its manifests are
   * verified and recorded, its blobs verified and linked into the content
   * store, its `ref.name` annotations become tags. Tags missing from a foreign
   * `index.json` are not removed (ours may not be flushed yet).
   */
  const indexSeen = new Map<string, { readonly signature: string; readonly hash: string }>();

  function statSignature(info: { ino: number; size: number; mtimeMs: number }): string {
    return `${info.ino}:${info.size}:${info.mtimeMs}`;
  }

  async function syncLayout(repository: string): Promise<void> {
    const file = join(paths.repoDir(repository), 'index.json');
    const info = await ifExists(stat(file));
    if (!info) return;
    const signature = statSignature(info);
    if (indexSeen.get(repository)?.signature === signature) return;
    const bytes = await ifExists(readFile(file));
    if (!bytes) return;
    const hash = sha256Hex(bytes);
    if (!(await stampsOf(repository)).includes(hash) && !options.readOnly) {
      // Our own writers stamp, then write, under this lock: re-read under it before adopting.
      await using _lock = await locks.acquire(`index:${repository}`);
      const again = await ifExists(readFile(file));
      if (again && !(await stampsOf(repository)).includes(sha256Hex(again))) {
        await adoptIndex(repository, again);
      }
    }
    indexSeen.set(repository, { signature, hash });
  }

  /** The hashes `.stowage/index.sha256` names as ours: the last `index.json` written, and the one it replaced. */
  async function stampsOf(repository: string): Promise<string[]> {
    const text = await ifExists(readFile(paths.repoMeta(repository, 'index.sha256'), 'utf8'));
    return text === undefined ? [] : text.split('\n').filter(Boolean);
  }

  /** The sha256 of the `index.json` on disk now (from the cache when its stat has not changed). */
  async function currentIndexHash(repository: string, file: string): Promise<string | undefined> {
    const info = await ifExists(stat(file));
    if (!info) return undefined;
    const known = indexSeen.get(repository);
    if (known?.signature === statSignature(info)) return known.hash;
    const bytes = await ifExists(readFile(file));
    return bytes && sha256Hex(bytes);
  }

  async function adoptIndex(repository: string, bytes: Uint8Array): Promise<void> {
    let index: {
      manifests?: { digest?: unknown; mediaType?: unknown; annotations?: Record<string, unknown> }[];
    };
    try {
      index = JSON.parse(new TextDecoder().decode(bytes));
    } catch {
      return; // not ours to repair; fsck reports manifests it cannot read
    }
    await mkdir(paths.repoMeta(repository, 'tags'), { recursive: true });
    for (const descriptor of Array.isArray(index.manifests) ? index.manifests : []) {
      const digest = descriptor.digest;
      if (!isDigest(digest) || typeof descriptor.mediaType !== 'string') continue;
      try {
        await adoptManifest(repository, digest, descriptor.mediaType);
      } catch {
        continue; // a broken or incomplete image stays invisible
      }
      const tag = descriptor.annotations?.[REF_NAME];
      if (!isValidTag(tag)) continue;
      const current = await ifExists(readFile(paths.tag(repository, tag), 'utf8'));
      if (current?.trim() === digest) continue;
      await writeFileAtomic(paths.tag(repository, tag), digest);
      tagCache.get(repository)?.set(tag, digest);
    }
  }

  async function adoptManifest(repository: string, digest: Digest, mediaType: string): Promise<void> {
    if (await readMeta(repository, digest)) return;
    const bytes = await readFile(paths.repoBlob(repository, digest));
    const parsed = parseManifest(bytes, { mediaType, digest, maxSize: Number.MAX_SAFE_INTEGER });
    const references = manifestReferences(parsed);
    for (const child of references.manifests) await adoptManifest(repository, child.digest, child.mediaType);
    for (const blob of references.blobs) await adoptBlob(repository, blob.digest);
    await adoptBlob(repository, digest);
    await writeFileAtomic(paths.manifestMeta(repository, digest), JSON.stringify(metaOf(parsed)));
  }

  /** Verifies a blob another tool wrote into a repository and shares it with the content store. */
  async function adoptBlob(repository: string, digest: Digest): Promise<void> {
    const path = paths.repoBlob(repository, digest);
    const info = await stat(path);
    const cas = paths.casBlob(digest);
    const stored = await ifExists(stat(cas));
    if (stored?.ino === info.ino) return;
    const actual = await digestStream(
      createReadStream(path, { highWaterMark: 1 << 20 }),
      digestAlgorithm(digest),
    );
    if (actual.digest !== digest) throw new DigestMismatchError(digest, actual.digest);
    await mkdir(dirname(cas), { recursive: true });
    if (!stored) {
      try {
        await link(path, cas);
        await syncDir(dirname(cas));
        return;
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      }
    }
    // The content store has it already: replace the repository's copy with a link to it.
    const temp = tempBeside(path);
    try {
      await link(cas, temp);
      await rename(temp, path);
    } catch {
      await rm(temp, { force: true });
    }
  }

  /** Hard-links a committed CAS blob into a repository (a copy where links are impossible). */
  async function linkIntoRepository(repository: string, digest: Digest): Promise<void> {
    const target = paths.repoBlob(repository, digest);
    if (await ifExists(stat(target))) {
      // A fresh push refreshes the time garbage collection's grace period counts from.
      await touch(target);
      return;
    }
    await ensureLayout(repository);
    await mkdir(dirname(target), { recursive: true });
    const temp = tempBeside(target);
    try {
      await link(paths.casBlob(digest), temp);
      // The link shares the content store's inode and its old mtime: make it young, or
      // garbage collection could take the blob before the manifest that needs it arrives.
      await touch(temp);
    } catch {
      await rm(temp, { force: true });
      await pipeline(createReadStream(paths.casBlob(digest)), createWriteStream(temp));
      await fsyncPath(temp);
    }
    await rename(temp, target);
    await syncDir(dirname(target));
  }

  /** Moves a verified temp file into the content store (or drops it when the blob is already there). */
  async function commitToStore(temp: string, digest: Digest): Promise<void> {
    const target = paths.casBlob(digest);
    await mkdir(dirname(target), { recursive: true });
    if (await ifExists(stat(target))) {
      await rm(temp, { force: true });
      return;
    }
    await rename(temp, target);
    await syncDir(dirname(target));
  }

  /** Streams a body into a temp file while verifying it; returns the temp path and size. */
  async function receive(body: BlobBody, digest: Digest, size: number | undefined, signal?: AbortSignal) {
    signal?.throwIfAborted();
    const temp = paths.tmp(randomBytes(16).toString('hex'));
    let written = 0;
    // The file is created before any byte flows, so a refusal can never race its creation
    // and leave it behind; the handle is ours to fsync and close.
    const handle = await open(temp, 'wx');
    try {
      await pipeline(
        toIterable(body),
        limitBytes(size, (n) => {
          written = n;
        }),
        new VerifyingStream(size === undefined ? { digest } : { digest, size }),
        batched(),
        async (batches: AsyncIterable<Buffer>) => {
          for await (const chunk of batches) {
            let done = 0;
            while (done < chunk.length) done += (await handle.write(chunk, done)).bytesWritten;
          }
        },
        ...(signal ? [{ signal }] : []),
      );
      await handle.sync();
      await handle.close();
      return { temp, size: written };
    } catch (error) {
      await handle.close().catch(() => undefined);
      await rm(temp, { force: true });
      throw error;
    }
  }

  async function readMeta(repository: string, digest: Digest): Promise<ManifestMeta | undefined> {
    const text = await ifExists(readFile(paths.manifestMeta(repository, digest), 'utf8'));
    return text === undefined ? undefined : (JSON.parse(text) as ManifestMeta);
  }

  async function resolve(repository: string, reference: string): Promise<Digest | undefined> {
    paths.repository(repository);
    await syncLayout(repository);
    if (reference.includes(':')) return parseDigest(reference);
    const text = await ifExists(readFile(paths.tag(repository, reference), 'utf8'));
    return text === undefined ? undefined : parseDigest(text.trim());
  }

  async function listTagDigests(repository: string): Promise<Map<string, Digest>> {
    const dir = paths.repoMeta(repository, 'tags');
    const names = (await ifExists(readdir(dir))) ?? [];
    const tags = new Map<string, Digest>();
    for (const name of names) {
      if (name.startsWith('.')) continue;
      const text = await ifExists(readFile(join(dir, name), 'utf8'));
      if (text !== undefined && isDigest(text.trim())) tags.set(name, text.trim() as Digest);
    }
    return tags;
  }

  /**
   * What `index.json` is made from, kept in memory so a burst of tag writes does
   * not re-read every tag file: this process's own writes update it, and each
   * flush reads only the tag files it has not seen (written by another process).
   */
  const tagCache = new Map<string, Map<string, Digest>>();
  const metaCache = new Map<string, ManifestMeta>();

  async function cachedMeta(repository: string, digest: Digest): Promise<ManifestMeta | undefined> {
    const key = `${repository}@${digest}`;
    let meta = metaCache.get(key);
    if (!meta) {
      meta = await readMeta(repository, digest);
      if (meta) metaCache.set(key, meta);
    }
    return meta;
  }

  /**
   * Whether the repository holds the manifest, and its metadata: the metadata of
   * a digest never changes, so only its presence is checked on disk (one stat),
   * which sees a delete made by another process.
   */
  async function presentMeta(repository: string, digest: Digest): Promise<ManifestMeta | undefined> {
    if (!(await ifExists(stat(paths.manifestMeta(repository, digest))))) return undefined;
    return cachedMeta(repository, digest);
  }

  /** Manifest bytes by digest, shared by all repositories: content-addressed, so never stale. */
  const manifestBytes = new Map<Digest, Uint8Array>();
  let manifestBytesHeld = 0;

  async function manifestContent(repository: string, digest: Digest): Promise<Uint8Array | undefined> {
    const hit = manifestBytes.get(digest);
    if (hit) {
      // most recently used last, so the oldest is evicted first
      manifestBytes.delete(digest);
      manifestBytes.set(digest, hit);
      return hit;
    }
    const bytes = await ifExists(readFile(paths.repoBlob(repository, digest)));
    if (!bytes || bytes.byteLength > MANIFEST_CACHE_BYTES / 64) return bytes;
    manifestBytes.set(digest, bytes);
    manifestBytesHeld += bytes.byteLength;
    for (const [old, held] of manifestBytes) {
      if (manifestBytesHeld <= MANIFEST_CACHE_BYTES) break;
      manifestBytes.delete(old);
      manifestBytesHeld -= held.byteLength;
    }
    return bytes;
  }

  function forgetManifest(repository: string, digest: Digest): void {
    metaCache.delete(`${repository}@${digest}`);
    const tags = tagCache.get(repository);
    if (tags) for (const [tag, target] of tags) if (target === digest) tags.delete(tag);
  }

  async function currentTags(repository: string): Promise<Map<string, Digest>> {
    const dir = paths.repoMeta(repository, 'tags');
    const names = new Set(((await ifExists(readdir(dir))) ?? []).filter((n) => !n.startsWith('.')));
    let tags = tagCache.get(repository);
    if (!tags) {
      tags = new Map();
      tagCache.set(repository, tags);
    }
    for (const tag of tags.keys()) if (!names.has(tag)) tags.delete(tag);
    for (const name of names) {
      if (tags.has(name)) continue;
      const text = await ifExists(readFile(join(dir, name), 'utf8'));
      if (text !== undefined && isDigest(text.trim())) tags.set(name, text.trim() as Digest);
    }
    return tags;
  }

  async function writeIndex(repository: string): Promise<void> {
    if (!(await isRepository(repository))) return;
    const tags = await currentTags(repository);
    const manifests: Descriptor[] = [];
    for (const [tag, digest] of [...tags].sort(([a], [b]) => compare(a, b))) {
      const meta = await cachedMeta(repository, digest);
      if (!meta) continue;
      manifests.push({
        mediaType: meta.mediaType,
        digest,
        size: meta.size,
        annotations: { [REF_NAME]: tag },
      });
    }
    const text = JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.index.v1+json',
      manifests,
    });
    const hash = sha256Hex(text);
    const file = join(paths.repoDir(repository), 'index.json');
    await using _lock = await locks.acquire(`index:${repository}`);
    // The file replaced stays ours too, for a crash before the rename below.
    const replaced = await currentIndexHash(repository, file);
    const stamps = replaced === undefined || replaced === hash ? hash : `${replaced}\n${hash}`;
    await writeFileAtomic(paths.repoMeta(repository, 'index.sha256'), stamps);
    await writeFileAtomic(file, text);
    indexSeen.set(repository, { signature: statSignature(await stat(file)), hash });
  }

  /** Flushes run one after another, so `close()` waits for one a timer started. */
  let flushing: Promise<void> = Promise.resolve();

  function flush(): Promise<void> {
    if (flushTimer) clearTimeout(flushTimer);
    flushTimer = undefined;
    const run = flushing.catch(() => undefined).then(flushNow);
    flushing = run;
    return run;
  }

  async function flushNow(): Promise<void> {
    const pending = [...dirtyIndexes];
    dirtyIndexes.clear();
    for (const repository of pending) {
      await writeIndex(repository);
      // The marker goes once index.json has caught up with every change begun so far.
      const marker = markers.get(repository);
      if (marker && !dirtyIndexes.has(repository) && !changesInFlight.get(repository)) {
        markers.delete(repository);
        await ifExists(unlink(await marker));
      }
    }
  }

  function markDirty(repository: string): void {
    dirtyIndexes.add(repository);
    if (!flushTimer) {
      flushTimer = setTimeout(() => void flush().catch(() => undefined), flushDelay);
      flushTimer.unref();
    }
  }

  /**
   * Pending-index markers: before a repository's tags change, a durable marker
   * names it under `.stowage/pending-index`, and the flush that brings its
   * `index.json` up to date removes it. A process killed in between leaves the
   * marker, and the next store opened on the root rebuilds that `index.json`, so
   * a crash cannot leave the OCI layout view stale.
   */
  const markers = new Map<string, Promise<string>>();
  const changesInFlight = new Map<string, number>();

  async function changing<T>(repository: string, work: () => Promise<T>): Promise<T> {
    changesInFlight.set(repository, (changesInFlight.get(repository) ?? 0) + 1);
    try {
      let marker = markers.get(repository);
      if (!marker) {
        marker = (async () => {
          const path = paths.internal('pending-index', `${process.pid}-${randomBytes(8).toString('hex')}`);
          await writeFileAtomic(path, repository);
          return path;
        })();
        markers.set(repository, marker);
        marker.catch(() => markers.delete(repository));
      }
      await marker;
      return await work();
    } finally {
      changesInFlight.set(repository, (changesInFlight.get(repository) ?? 1) - 1);
      markDirty(repository);
    }
  }

  /** Rebuilds the `index.json` of repositories whose changes a dead process never flushed. */
  async function recoverPendingIndexes(): Promise<void> {
    const dir = paths.internal('pending-index');
    for (const name of (await ifExists(readdir(dir))) ?? []) {
      const pid = Number(name.split('-')[0]);
      if (Number.isInteger(pid) && pid > 0 && pid !== process.pid && processAlive(pid)) continue;
      const path = join(dir, name);
      const repository = await ifExists(readFile(path, 'utf8'));
      if (repository !== undefined && validName(repository)) await writeIndex(repository);
      await ifExists(unlink(path));
    }
  }

  /** A directory another tool made may not have a name this store accepts: it is left out. */
  function validName(name: string): boolean {
    try {
      paths.repository(name);
      return true;
    } catch {
      return false;
    }
  }

  async function walkRepositories(dir: string, prefix: string, out: string[]): Promise<void> {
    const entries = (await ifExists(readdir(dir, { withFileTypes: true }))) ?? [];
    const isLayout = entries.some(
      (e) => (e.name === '.stowage' && e.isDirectory()) || (e.name === 'oci-layout' && e.isFile()),
    );
    if (prefix && isLayout && validName(prefix.slice(0, -1))) out.push(prefix.slice(0, -1));
    for (const entry of entries) {
      if (!entry.isDirectory()) continue;
      if (entry.name === '.stowage') continue;
      if (entry.name === 'blobs' && prefix) continue;
      if (entry.name.startsWith('.')) continue;
      await walkRepositories(join(dir, entry.name), `${prefix}${entry.name}/`, out);
    }
  }

  async function uploadState(repository: string, id: string): Promise<{ dir: string; state: UploadState }> {
    paths.repository(repository);
    const unknown = () =>
      new RegistryError('BLOB_UPLOAD_UNKNOWN', `upload ${id.slice(0, 64)} is not known in ${repository}`);
    let dir: string;
    try {
      dir = paths.upload(id);
    } catch {
      throw unknown();
    }
    const text = await ifExists(readFile(join(dir, 'state.json'), 'utf8'));
    if (text === undefined) throw unknown();
    const state = JSON.parse(text) as UploadState;
    if (state.repository !== repository) throw unknown();
    if (Date.now() - state.startedAt > uploadTtlMs) {
      await rm(dir, { recursive: true, force: true });
      throw unknown();
    }
    return { dir, state };
  }

  async function uploadStatus(id: string, dir: string, state: UploadState): Promise<UploadStatus> {
    const size = (await stat(join(dir, 'data'))).size;
    return { id, repository: state.repository, offset: size, startedAt: state.startedAt };
  }

  /**
   * The sha256 of each session's bytes so far, kept while this process appends
   * in order, so finishing does not read the whole upload back. A session this
   * process has not seen from its start (or a sha512 one) is hashed from disk.
   */
  const runningHashes = new Map<string, { offset: number; hash: Hash }>();

  async function appendChunk(
    id: string,
    dir: string,
    body: BlobBody,
    options: { offset?: number; length?: number; signal?: AbortSignal },
  ) {
    const data = join(dir, 'data');
    const start = (await stat(data)).size;
    let running = runningHashes.get(id);
    if (running && running.offset !== start) {
      runningHashes.delete(id);
      running = undefined;
    }
    if (options.offset !== undefined && options.offset !== start) {
      throw new RegistryError(
        'RANGE_INVALID',
        `chunk starts at ${options.offset}, the upload is at ${start}`,
        {
          details: { offset: start, requested: options.offset },
        },
      );
    }
    let written = 0;
    try {
      await pipeline(
        toIterable(body),
        limitBytes(options.length, (n) => {
          written = n;
        }),
        new Transform({
          transform(chunk: Uint8Array, _encoding, done) {
            running?.hash.update(chunk);
            done(null, chunk);
          },
        }),
        batched(),
        createWriteStream(data, { flags: 'a', highWaterMark: WRITE_BATCH }),
        ...(options.signal ? [{ signal: options.signal }] : []),
      );
      if (options.length !== undefined && written !== options.length)
        throw new SizeMismatchError(options.length, written);
      if (running) running.offset = start + written;
    } catch (error) {
      runningHashes.delete(id);
      await truncate(data, start);
      throw error;
    }
  }

  /** Digests of the blob files under a `blobs/<alg>/<hex>` tree. */
  async function blobTree(dir: string): Promise<Map<Digest, string>> {
    const found = new Map<Digest, string>();
    for (const algorithm of (await ifExists(readdir(dir))) ?? []) {
      for (const hex of (await ifExists(readdir(join(dir, algorithm)))) ?? []) {
        const digest = `${algorithm}:${hex}`;
        if (isDigest(digest)) found.set(digest, join(dir, algorithm, hex));
      }
    }
    return found;
  }

  function casBlobs(): Promise<Map<Digest, string>> {
    return blobTree(paths.internal('blobs'));
  }

  function repositoryBlobs(repository: string): Promise<Map<Digest, string>> {
    return blobTree(join(paths.repoDir(repository), 'blobs'));
  }

  async function manifestDigests(repository: string): Promise<Digest[]> {
    const root = paths.repoMeta(repository, 'manifests');
    const digests: Digest[] = [];
    for (const algorithm of (await ifExists(readdir(root))) ?? []) {
      for (const file of (await ifExists(readdir(join(root, algorithm)))) ?? []) {
        const digest = `${algorithm}:${file.replace(/\.json$/, '')}`;
        if (file.endsWith('.json') && isDigest(digest)) digests.push(digest);
      }
    }
    return digests;
  }

  /** Every blob the manifests of a repository need, and the manifests themselves. */
  async function referencedBy(
    repository: string,
    removed: ReadonlySet<Digest> = new Set(),
  ): Promise<Set<Digest> | undefined> {
    const referenced = new Set<Digest>();
    for (const digest of await manifestDigests(repository)) {
      if (removed.has(digest)) continue;
      referenced.add(digest);
      const bytes = await ifExists(readFile(paths.repoBlob(repository, digest)));
      if (!bytes) continue;
      try {
        const references = manifestReferences(parseManifest(bytes, { maxSize: Number.MAX_SAFE_INTEGER }));
        for (const blob of references.blobs) referenced.add(blob.digest);
        for (const child of references.manifests) referenced.add(child.digest);
      } catch {
        // fsck reports it; without knowing what it needs, nothing of this repository is collected
        return undefined;
      }
    }
    return referenced;
  }

  /**
   * Manifests of a repository that nothing keeps: not tagged, not a child of a
   * kept index, not a referrer of a kept manifest. `undefined` when a manifest
   * cannot be read (then nothing of the repository is collected).
   */
  async function untaggedManifests(repository: string): Promise<Set<Digest> | undefined> {
    const all = await manifestDigests(repository);
    const children = new Map<Digest, Digest[]>();
    const subjects = new Map<Digest, Digest>();
    for (const digest of all) {
      const bytes = await ifExists(readFile(paths.repoBlob(repository, digest)));
      if (!bytes) continue;
      try {
        const references = manifestReferences(parseManifest(bytes, { maxSize: Number.MAX_SAFE_INTEGER }));
        children.set(
          digest,
          references.manifests.map((m) => m.digest),
        );
        if (references.subject) subjects.set(digest, references.subject.digest);
      } catch {
        return undefined;
      }
    }
    const live = new Set<Digest>();
    const visit = (digest: Digest) => {
      if (live.has(digest)) return;
      live.add(digest);
      for (const child of children.get(digest) ?? []) visit(child);
    };
    for (const digest of (await listTagDigests(repository)).values()) visit(digest);
    for (let grew = true; grew; ) {
      grew = false;
      for (const [digest, subject] of subjects) {
        if (!live.has(digest) && live.has(subject)) {
          visit(digest);
          grew = true;
        }
      }
    }
    return new Set(all.filter((digest) => !live.has(digest)));
  }

  /** A record name moved: publish it as a tag where the repository holds the manifest, else untag. */
  async function retag(changes: readonly { name: string; before?: string; after?: string }[]): Promise<void> {
    for (const { name, before, after } of changes) {
      const { repository, tag } = parseImageName(name);
      const path = paths.tag(repository, tag);
      const current = await ifExists(readFile(path, 'utf8'));
      if (after !== undefined && isDigest(after) && (await readMeta(repository, after))) {
        if (current?.trim() === after) continue;
        await changing(repository, async () => {
          await writeFileAtomic(path, after);
          tagCache.get(repository)?.set(tag, after);
        });
      } else if (before !== undefined && current?.trim() === before) {
        await changing(repository, async () => {
          if (await unlinkIfExists(path)) await syncDir(dirname(path));
          tagCache.get(repository)?.delete(tag);
        });
      }
    }
  }

  const records = new RecordStore({
    dir: paths.internal('images'),
    locks,
    readOnly: options.readOnly ?? false,
    onNames: retag,
  });

  /** Upload sessions past their age (removed unless `dryRun`). */
  async function expiredUploads(dryRun: boolean): Promise<number> {
    let count = 0;
    for (const id of (await ifExists(readdir(paths.internal('uploads')))) ?? []) {
      const dir = paths.internal('uploads', id);
      const text = await ifExists(readFile(join(dir, 'state.json'), 'utf8'));
      // A session being created has no state file yet: its directory's age counts.
      let startedAt = (await ifExists(stat(dir)))?.mtimeMs ?? 0;
      try {
        if (text !== undefined) startedAt = (JSON.parse(text) as UploadState).startedAt;
      } catch {
        // unreadable state: the directory's age decides
      }
      if (Date.now() - startedAt <= uploadTtlMs) continue;
      count++;
      if (!dryRun) {
        runningHashes.delete(id);
        await rm(dir, { recursive: true, force: true });
      }
    }
    return count;
  }

  const capabilities: RegistryCapabilities = { ...fullCapabilities, sparseIndex: false };
  const store: ImageStore = {
    root: paths.root,
    origin: `file://${paths.root}`,

    async capabilities() {
      return capabilities;
    },

    async purgeUploads() {
      writable();
      return expiredUploads(false);
    },
    images: records,

    async listRepositories(opts: ListOptions = {}) {
      readable();
      const names: string[] = [];
      await walkRepositories(paths.root, '', names);
      const withManifests: string[] = [];
      for (const name of names) {
        await syncLayout(name);
        const dir = paths.repoMeta(name, 'manifests');
        if (((await ifExists(readdir(dir))) ?? []).length > 0) withManifests.push(name);
      }
      return page(withManifests, opts);
    },

    async listTags(repository: string, opts: ListOptions = {}) {
      readable();
      paths.repository(repository);
      if (!(await isRepository(repository))) {
        throw new RegistryError('NAME_UNKNOWN', `repository ${repository} is not known`, {
          details: { repository },
        });
      }
      const names = ((await ifExists(readdir(paths.repoMeta(repository, 'tags')))) ?? []).filter(
        (n) => !n.startsWith('.'),
      );
      return page(names, opts);
    },

    async deleteTag(repository: string, tag: string, opts: OperationOptions = {}) {
      writable();
      opts.signal?.throwIfAborted();
      const path = paths.tag(repository, tag);
      await changing(repository, async () => {
        if (!(await unlinkIfExists(path))) {
          throw new RegistryError('MANIFEST_UNKNOWN', `tag ${tag} is not in ${repository}`);
        }
        await syncDir(dirname(path));
        tagCache.get(repository)?.delete(tag);
      });
    },

    async getManifest(
      repository: string,
      reference: string,
      opts: GetManifestOptions = {},
    ): Promise<ManifestContent> {
      readable();
      opts.signal?.throwIfAborted();
      const digest = await resolve(repository, reference);
      const meta = digest && (await presentMeta(repository, digest));
      const bytes = digest && meta && (await manifestContent(repository, digest));
      if (!digest || !meta || !bytes)
        throw new RegistryError('MANIFEST_UNKNOWN', `manifest ${reference} is not in ${repository}`);
      return { digest, mediaType: meta.mediaType, size: bytes.byteLength, bytes: new Uint8Array(bytes) };
    },

    async headManifest(repository: string, reference: string, opts: GetManifestOptions = {}) {
      readable();
      opts.signal?.throwIfAborted();
      const digest = await resolve(repository, reference);
      const meta = digest && (await presentMeta(repository, digest));
      return digest && meta ? { digest, mediaType: meta.mediaType, size: meta.size } : undefined;
    },

    async putManifest(
      repository: string,
      reference: string,
      opts: PutManifestOptions,
    ): Promise<PutManifestResult> {
      const { bytes } = opts;
      writable();
      opts.signal?.throwIfAborted();
      paths.repository(repository);
      const byDigest = reference.includes(':');
      const expected = byDigest ? parseDigest(reference) : undefined;
      if (!byDigest) parseTag(reference);
      const parsed = parseManifest(bytes, {
        mediaType: opts.mediaType,
        ...(options.maxManifestSize === undefined ? {} : { maxSize: options.maxManifestSize }),
        ...(expected === undefined ? {} : { digest: expected }),
      });
      const references = manifestReferences(parsed);
      for (const blob of references.blobs) {
        if (!(await ifExists(stat(paths.repoBlob(repository, blob.digest))))) {
          throw new RegistryError('MANIFEST_BLOB_UNKNOWN', `blob ${blob.digest} is not in ${repository}`, {
            details: { repository, digest: blob.digest },
          });
        }
      }
      for (const child of references.manifests) {
        if (!(await presentMeta(repository, child.digest))) {
          throw new RegistryError(
            'MANIFEST_BLOB_UNKNOWN',
            `manifest ${child.digest} is not in ${repository}`,
            {
              details: { repository, digest: child.digest },
            },
          );
        }
      }
      const meta = metaOf(parsed);
      // Re-tagging a manifest the repository already holds only writes the tag, and
      // refreshes the manifest's age, which untagged-manifest collection counts from
      // (one syscall that also tells whether the repository holds it).
      const known =
        (await touch(paths.manifestMeta(repository, parsed.digest))) &&
        (await cachedMeta(repository, parsed.digest));
      if (!known || !(await ifExists(stat(paths.repoBlob(repository, parsed.digest))))) {
        const { temp } = await receive(bytes, parsed.digest, bytes.byteLength);
        await commitToStore(temp, parsed.digest);
        await linkIntoRepository(repository, parsed.digest);
        await writeFileAtomic(paths.manifestMeta(repository, parsed.digest), JSON.stringify(meta));
      }
      if (!byDigest) {
        await changing(repository, async () => {
          await writeFileAtomic(paths.tag(repository, reference), parsed.digest);
          tagCache.get(repository)?.set(reference, parsed.digest);
        });
      }
      return { digest: parsed.digest, ...(meta.subject ? { subject: meta.subject } : {}) };
    },

    async deleteManifest(repository: string, digest: Digest, opts: OperationOptions = {}) {
      writable();
      opts.signal?.throwIfAborted();
      parseDigest(digest);
      if (!(await ifExists(stat(paths.manifestMeta(repository, digest))))) {
        throw new RegistryError('MANIFEST_UNKNOWN', `manifest ${digest} is not in ${repository}`);
      }
      await changing(repository, async () => {
        // Tags first, so a crash part-way leaves an untagged manifest, never a tag to nothing.
        let untagged = false;
        for (const [tag, target] of await listTagDigests(repository)) {
          if (target === digest) untagged = (await unlinkIfExists(paths.tag(repository, tag))) || untagged;
        }
        if (untagged) await syncDir(paths.repoMeta(repository, 'tags'));
        if (!(await unlinkIfExists(paths.manifestMeta(repository, digest)))) {
          throw new RegistryError('MANIFEST_UNKNOWN', `manifest ${digest} is not in ${repository}`);
        }
        await syncDir(dirname(paths.manifestMeta(repository, digest)));
        await unlinkIfExists(paths.repoBlob(repository, digest));
        forgetManifest(repository, digest);
      });
    },

    async listReferrers(repository: string, digest: Digest, opts: ReferrersOptions = {}): Promise<Referrers> {
      readable();
      parseDigest(digest);
      paths.repository(repository);
      const manifests: Descriptor[] = [];
      const root = paths.repoMeta(repository, 'manifests');
      for (const algorithm of (await ifExists(readdir(root))) ?? []) {
        for (const file of (await ifExists(readdir(join(root, algorithm)))) ?? []) {
          if (!file.endsWith('.json')) continue;
          const candidate = `${algorithm}:${file.slice(0, -5)}`;
          if (!isDigest(candidate)) continue;
          const meta = await readMeta(repository, candidate);
          if (!meta || meta.subject !== digest) continue;
          if (opts.artifactType !== undefined && meta.artifactType !== opts.artifactType) continue;
          manifests.push({
            mediaType: meta.mediaType,
            digest: candidate,
            size: meta.size,
            ...(meta.artifactType ? { artifactType: meta.artifactType } : {}),
            ...(meta.annotations ? { annotations: meta.annotations } : {}),
          });
        }
      }
      manifests.sort((a, b) => compare(a.digest, b.digest));
      return { manifests, filtersApplied: opts.artifactType === undefined ? [] : ['artifactType'] };
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
      if (!info)
        throw new RegistryError('BLOB_UNKNOWN', `blob ${digest} is not in ${repository}`, {
          details: { repository, digest },
        });
      const size = info.size;
      if (!opts.range) return { digest, size, stream: createReadStream(path, { highWaterMark: 1 << 20 }) };
      const { start } = opts.range;
      const end = Math.min(opts.range.end ?? size - 1, size - 1);
      if (!Number.isSafeInteger(start) || start < 0 || start >= size || end < start) {
        throw new RegistryError(
          'RANGE_INVALID',
          `range ${start}-${opts.range.end ?? ''} is outside the ${size}-byte blob`,
          {
            details: { size },
          },
        );
      }
      return {
        digest,
        size,
        range: { start, end },
        stream: createReadStream(path, { start, end, highWaterMark: 1 << 20 }),
      };
    },

    async putBlob(repository: string, body: BlobBody, opts: PutBlobOptions): Promise<BlobInfo> {
      writable();
      paths.repository(repository);
      const digest = parseDigest(opts.digest);
      const { temp, size } = await receive(body, digest, opts.size, opts.signal);
      await commitToStore(temp, digest);
      await linkIntoRepository(repository, digest);
      return { digest, size };
    },

    async mountBlob(repository: string, digest: Digest, opts: MountBlobOptions = {}) {
      writable();
      paths.repository(repository);
      parseDigest(digest);
      if (opts.from !== undefined) {
        if (!(await ifExists(stat(paths.repoBlob(opts.from, digest))))) return undefined;
      }
      const info = await ifExists(stat(paths.casBlob(digest)));
      if (!info) return undefined;
      await linkIntoRepository(repository, digest);
      return { digest, size: info.size };
    },

    async deleteBlob(repository: string, digest: Digest, opts: OperationOptions = {}) {
      writable();
      opts.signal?.throwIfAborted();
      if (!(await unlinkIfExists(paths.repoBlob(repository, digest)))) {
        throw new RegistryError('BLOB_UNKNOWN', `blob ${digest} is not in ${repository}`);
      }
      await syncDir(dirname(paths.repoBlob(repository, digest)));
    },

    async startUpload(repository: string, opts: OperationOptions = {}) {
      writable();
      opts.signal?.throwIfAborted();
      paths.repository(repository);
      const id = randomBytes(16).toString('hex');
      const dir = paths.upload(id);
      const state: UploadState = { repository, startedAt: Date.now() };
      await mkdir(dir, { recursive: true });
      await writeFileAtomic(join(dir, 'data'), '');
      await writeFileAtomic(join(dir, 'state.json'), JSON.stringify(state));
      runningHashes.set(id, { offset: 0, hash: createHash('sha256') });
      return { id, repository, offset: 0, startedAt: state.startedAt };
    },

    async appendUpload(repository: string, id: string, opts: AppendUploadOptions) {
      const { body } = opts;
      writable();
      return serial(id, async () => {
        const { dir, state } = await uploadState(repository, id);
        await appendChunk(id, dir, body, opts);
        return uploadStatus(id, dir, state);
      });
    },

    async getUpload(repository: string, id: string, opts: OperationOptions = {}) {
      readable();
      opts.signal?.throwIfAborted();
      const { dir, state } = await uploadState(repository, id);
      return uploadStatus(id, dir, state);
    },

    async finishUpload(repository: string, id: string, opts: FinishUploadOptions): Promise<BlobInfo> {
      writable();
      const digest = parseDigest(opts.digest);
      return serial(id, async () => {
        const { dir } = await uploadState(repository, id);
        if (opts.body !== undefined) {
          await appendChunk(id, dir, opts.body, {
            ...(opts.offset === undefined ? {} : { offset: opts.offset }),
            ...(opts.length === undefined ? {} : { length: opts.length }),
            ...(opts.signal === undefined ? {} : { signal: opts.signal }),
          });
        }
        const data = join(dir, 'data');
        const running = runningHashes.get(id);
        runningHashes.delete(id);
        try {
          const size = (await stat(data)).size;
          const actual =
            running && running.offset === size && digestAlgorithm(digest) === 'sha256'
              ? { digest: `sha256:${running.hash.digest('hex')}` as Digest, size }
              : await digestStream(
                  createReadStream(data, { highWaterMark: 1 << 20 }),
                  digestAlgorithm(digest),
                );
          if (actual.digest !== digest) throw new DigestMismatchError(digest, actual.digest);
          const handle = await open(data, 'r+');
          await handle.sync();
          await handle.close();
          await commitToStore(data, digest);
          await linkIntoRepository(repository, digest);
          return { digest, size: actual.size };
        } finally {
          await rm(dir, { recursive: true, force: true });
        }
      });
    },

    async cancelUpload(repository: string, id: string, opts: OperationOptions = {}) {
      writable();
      opts.signal?.throwIfAborted();
      const { dir } = await uploadState(repository, id);
      runningHashes.delete(id);
      await rm(dir, { recursive: true, force: true });
    },

    async garbageCollect(opts: ImageStoreGcOptions = {}): Promise<ImageStoreGcReport> {
      if (!opts.dryRun) writable();
      else readable();
      const dryRun = opts.dryRun ?? false;
      const grace = opts.gracePeriodMs ?? 60 * 60 * 1000;
      const cutoff = Date.now() - grace;
      const repositories: string[] = [];
      await walkRepositories(paths.root, '', repositories);
      const linkedAnywhere = new Set<Digest>();
      const blobsRemoved = new Set<Digest>();
      let bytesFreed = 0;
      const manifestsRemoved: { repository: string; digest: Digest }[] = [];
      for (const repository of repositories) {
        await syncLayout(repository);
        const removed = new Set<Digest>();
        if (opts.deleteUntagged) {
          for (const digest of (await untaggedManifests(repository)) ?? []) {
            // a manifest pushed by digest moments ago (an index's child, say) has its grace period
            const info = await ifExists(stat(paths.manifestMeta(repository, digest)));
            if (!info || info.mtimeMs > cutoff) continue;
            removed.add(digest);
            manifestsRemoved.push({ repository, digest });
            if (!dryRun) {
              await unlinkIfExists(paths.manifestMeta(repository, digest));
              await unlinkIfExists(paths.repoBlob(repository, digest));
              forgetManifest(repository, digest);
            }
          }
        }
        const referenced = await referencedBy(repository, removed);
        for (const [digest, path] of await repositoryBlobs(repository)) {
          const info = await ifExists(stat(path));
          if (!info) continue;
          if (referenced === undefined || referenced.has(digest) || info.mtimeMs > cutoff) {
            linkedAnywhere.add(digest);
            continue;
          }
          if (!dryRun) await unlinkIfExists(path);
        }
      }
      for (const [digest, path] of await casBlobs()) {
        if (linkedAnywhere.has(digest)) continue;
        const info = await ifExists(stat(path));
        if (!info || info.mtimeMs > cutoff) continue;
        blobsRemoved.add(digest);
        bytesFreed += info.size;
        if (!dryRun) await unlinkIfExists(path);
      }
      const uploadsRemoved = await expiredUploads(dryRun);
      for (const name of (await ifExists(readdir(paths.internal('tmp')))) ?? []) {
        const info = await ifExists(stat(paths.tmp(name)));
        if (info && info.mtimeMs < cutoff && !dryRun) await rm(paths.tmp(name), { force: true });
      }
      const recordDataRemoved = await records.garbageCollect({ dryRun });
      return {
        blobsRemoved: [...blobsRemoved],
        manifestsRemoved,
        uploadsRemoved,
        recordDataRemoved,
        bytesFreed,
        dryRun,
      };
    },

    async fsck(opts: OperationOptions = {}): Promise<FsckReport> {
      readable();
      const problems: FsckProblem[] = [];
      let blobsChecked = 0;
      let manifestsChecked = 0;
      for (const [digest, path] of await casBlobs()) {
        opts.signal?.throwIfAborted();
        blobsChecked++;
        const actual = await digestStream(
          createReadStream(path, { highWaterMark: 1 << 20 }),
          digestAlgorithm(digest),
        );
        if (actual.digest !== digest)
          problems.push({ kind: 'corrupt-blob', path, digest, detail: `content hashes to ${actual.digest}` });
      }
      const leftovers = ((await ifExists(readdir(paths.internal('tmp')))) ?? []).map((name) =>
        paths.tmp(name),
      );
      const repositories: string[] = [];
      await walkRepositories(paths.root, '', repositories);
      for (const repository of repositories) {
        await syncLayout(repository);
        const blobs = await repositoryBlobs(repository);
        for (const digest of await manifestDigests(repository)) {
          manifestsChecked++;
          const path = paths.repoBlob(repository, digest);
          const bytes = await ifExists(readFile(path));
          if (!bytes) {
            problems.push({ kind: 'missing-manifest', path, repository, digest });
            continue;
          }
          let references: ReturnType<typeof manifestReferences>;
          try {
            const meta = await readMeta(repository, digest);
            references = manifestReferences(
              parseManifest(bytes, {
                ...(meta ? { mediaType: meta.mediaType } : {}),
                digest,
                maxSize: Number.MAX_SAFE_INTEGER,
              }),
            );
          } catch (error) {
            problems.push({
              kind: 'invalid-manifest',
              path,
              repository,
              digest,
              detail: (error as Error).message,
            });
            continue;
          }
          for (const blob of [...references.blobs, ...references.manifests]) {
            if (!blobs.has(blob.digest)) {
              problems.push({
                kind: 'missing-blob',
                path: paths.repoBlob(repository, blob.digest),
                repository,
                digest: blob.digest,
              });
            }
          }
        }
        for (const [tag, digest] of await listTagDigests(repository)) {
          if (!(await readMeta(repository, digest))) {
            problems.push({
              kind: 'dangling-tag',
              path: paths.tag(repository, tag),
              repository,
              digest,
              detail: `tag ${tag}`,
            });
          }
        }
      }
      return { blobsChecked, manifestsChecked, problems, leftovers };
    },

    lock(name: string, opts: LockOptions = {}) {
      readable();
      return locks.acquire(name, opts);
    },

    flush,

    async close() {
      if (closed) return;
      await flush();
      await records.close();
      closed = true;
    },
  };
  if (!options.readOnly) await recoverPendingIndexes();
  return store;
}
