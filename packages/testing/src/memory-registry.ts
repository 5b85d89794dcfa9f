import { randomUUID } from 'node:crypto';
import { Readable } from 'node:stream';
import { createMemoryStaging, createUploadSessions } from '@stowage/blob-store';
import {
  assertContent,
  type BlobBody,
  type BlobContent,
  type BlobInfo,
  type Descriptor,
  type Digest,
  Digester,
  digestAlgorithm,
  filterReferrers,
  fullCapabilities,
  type GarbageCollectOptions,
  type GarbageCollectReport,
  type GetBlobOptions,
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
  parseRepositoryName,
  parseTag,
  type Referrers,
  type ReferrersOptions,
  type Registry,
  type RegistryCapabilities,
  RegistryError,
  type RegistryLock,
  type RegistryWithUploads,
  referrerDescriptor,
  resolveRange,
  SizeMismatchError,
  subjectOf,
  type UploadSessions,
} from '@stowage/oci';

export interface MemoryRegistryOptions {
  /** Largest manifest accepted. Default 4 MiB. */
  readonly maxManifestSize?: number;
  /** Upload sessions older than this are purged. Default 1 hour. */
  readonly uploadTtlMs?: number;
  /** Clock, for tests of expiry and grace periods. */
  readonly now?: () => number;
  /**
   * With `false`, the store has no upload-session members and its
   * capabilities say so (`uploadSessions`, `uploadStatus` and
   * `outOfOrderChunkRefusal` false): a store for testing what callers do
   * without sessions. Default true.
   */
  readonly uploadSessions?: boolean;
}

/** A registry held in memory: the reference behaviour of the `Registry` contract. */
export type MemoryRegistry = RegistryWithUploads &
  Required<Pick<Registry, 'lock' | 'garbageCollect' | 'close'>>;

/** The in-memory registry built with `uploadSessions: false`. */
export type MemoryRegistryWithoutSessions = Omit<MemoryRegistry, keyof UploadSessions>;

interface StoredManifest {
  readonly content: ManifestContent;
  readonly subject?: Digest;
  /** How a referrers listing shows this manifest. */
  readonly referrer: Descriptor;
  readonly blobs: readonly Digest[];
}

interface Repository {
  readonly blobs: Set<Digest>;
  readonly manifests: Map<Digest, StoredManifest>;
  readonly tags: Map<string, Digest>;
}

interface StoredBlob {
  readonly bytes: Uint8Array;
  readonly createdAt: number;
}

const UPLOAD_CAPABILITIES = ['uploadSessions', 'uploadStatus', 'outOfOrderChunkRefusal'] as const;

function checkSignal(signal: AbortSignal | undefined): void {
  signal?.throwIfAborted();
}

/** Reads a body to the end, refusing more than `limit` bytes as soon as it is exceeded. */
async function readBody(
  body: BlobBody,
  signal: AbortSignal | undefined,
  limit?: number,
): Promise<Uint8Array> {
  checkSignal(signal);
  if (body instanceof Uint8Array) {
    if (limit !== undefined && body.byteLength > limit) throw new SizeMismatchError(limit, body.byteLength);
    return body;
  }
  const chunks: Uint8Array[] = [];
  let size = 0;
  for await (const chunk of body) {
    checkSignal(signal);
    chunks.push(chunk);
    size += chunk.byteLength;
    if (limit !== undefined && size > limit) throw new SizeMismatchError(limit, size);
  }
  return Buffer.concat(chunks, size);
}

const MISSING = {
  BLOB_UNKNOWN: 'blob',
  MANIFEST_UNKNOWN: 'manifest',
  MANIFEST_BLOB_UNKNOWN: 'content',
} as const;

/** The refusal for content `reference` that is not in repository `name`. */
function notIn(code: keyof typeof MISSING, name: string, reference: string): RegistryError {
  return new RegistryError(code, `${MISSING[code]} ${reference} is not in ${name}`, {
    details:
      code === 'MANIFEST_UNKNOWN' ? { repository: name, reference } : { repository: name, digest: reference },
  });
}

/**
 * Creates the in-memory reference registry. Semantics worth knowing:
 * - a repository exists once it has a blob link, a manifest or a tag;
 *   `listRepositories` lists those with at least one manifest;
 * - `n: 0` returns an empty page;
 * - `putManifest` with `sparse: true` accepts an index whose children are
 *   absent (its blobs and the children present are still checked);
 * - upload sessions are `@stowage/blob-store`'s over a memory staging area:
 *   a failed `finishUpload` (wrong digest or size) ends the session, a refused
 *   chunk changes nothing, sessions older than `uploadTtlMs` are unknown;
 * - content-addressed blobs are shared by all repositories; `deleteBlob` only unlinks,
 *   `garbageCollect` frees what no manifest references.
 */
export function createMemoryRegistry(
  options?: MemoryRegistryOptions & { readonly uploadSessions?: true },
): MemoryRegistry;
export function createMemoryRegistry(
  options: MemoryRegistryOptions & { readonly uploadSessions: false },
): MemoryRegistryWithoutSessions;
export function createMemoryRegistry(
  options?: MemoryRegistryOptions,
): MemoryRegistry | MemoryRegistryWithoutSessions;
export function createMemoryRegistry(
  options: MemoryRegistryOptions = {},
): MemoryRegistry | MemoryRegistryWithoutSessions {
  const now = options.now ?? Date.now;
  const uploadTtlMs = options.uploadTtlMs ?? 60 * 60 * 1000;
  const withSessions = options.uploadSessions ?? true;
  const blobs = new Map<Digest, StoredBlob>();
  const repositories = new Map<string, Repository>();
  const locks = new Map<string, { readers: number; writer: boolean; waiters: (() => void)[] }>();
  const staging = createMemoryStaging();
  let closed = false;

  function open(signal?: AbortSignal): void {
    if (closed) throw new RegistryError('UNAVAILABLE', 'the registry is closed');
    checkSignal(signal);
  }

  function repo(name: string, create: boolean): Repository | undefined {
    parseRepositoryName(name);
    let found = repositories.get(name);
    if (!found && create) {
      found = { blobs: new Set(), manifests: new Map(), tags: new Map() };
      repositories.set(name, found);
    }
    return found;
  }

  function resolve(repository: Repository | undefined, reference: string): StoredManifest | undefined {
    const parsed = parseManifestReference(reference);
    if (!repository) return undefined;
    const digest = 'digest' in parsed ? parsed.digest : repository.tags.get(parsed.tag);
    return digest === undefined ? undefined : repository.manifests.get(digest);
  }

  function linkedBlob(name: string, digest: Digest): StoredBlob | undefined {
    parseDigest(digest);
    return repo(name, false)?.blobs.has(digest) ? blobs.get(digest) : undefined;
  }

  function commitBlob(repository: Repository, digest: Digest, bytes: Uint8Array): BlobInfo {
    if (!blobs.has(digest)) blobs.set(digest, { bytes, createdAt: now() });
    repository.blobs.add(digest);
    return { digest, size: bytes.byteLength };
  }

  const capabilities: RegistryCapabilities = withSessions
    ? fullCapabilities
    : Object.freeze({
        ...fullCapabilities,
        ...Object.fromEntries(UPLOAD_CAPABILITIES.map((name) => [name, false])),
      });

  const core: MemoryRegistryWithoutSessions = {
    origin: `memory:${randomUUID()}`,
    async capabilities() {
      return capabilities;
    },

    async listRepositories(opts: ListOptions = {}) {
      open(opts.signal);
      return pageOf(
        [...repositories].filter(([, r]) => r.manifests.size > 0).map(([name]) => name),
        opts,
      );
    },

    async listTags(name: string, opts: ListOptions = {}) {
      open(opts.signal);
      const repository = repo(name, false);
      if (!repository) {
        throw new RegistryError('NAME_UNKNOWN', `repository ${name} is not known`, {
          details: { repository: name },
        });
      }
      return pageOf(repository.tags.keys(), opts);
    },

    async deleteTag(name: string, tag: string, opts: OperationOptions = {}) {
      open(opts.signal);
      parseTag(tag);
      if (!repo(name, false)?.tags.delete(tag)) throw notIn('MANIFEST_UNKNOWN', name, tag);
    },

    async getManifest(name: string, reference: string, opts = {}) {
      open(opts.signal);
      const found = resolve(repo(name, false), reference);
      if (!found) throw notIn('MANIFEST_UNKNOWN', name, reference);
      return found.content;
    },

    async headManifest(name: string, reference: string, opts = {}) {
      open(opts.signal);
      const found = resolve(repo(name, false), reference);
      if (!found) return undefined;
      const { digest, mediaType, size } = found.content;
      return { digest, mediaType, size };
    },

    async putManifest(name: string, reference: string, opts: PutManifestOptions): Promise<PutManifestResult> {
      open(opts.signal);
      parseRepositoryName(name);
      const target = parseManifestReference(reference);
      const parsed = parseManifest(opts.bytes, {
        mediaType: opts.mediaType,
        ...(options.maxManifestSize === undefined ? {} : { maxSize: options.maxManifestSize }),
        ...('digest' in target ? { digest: target.digest } : {}),
      });
      const repository = repo(name, true) as Repository;
      const references = manifestReferences(parsed);
      const missingBlob = references.blobs.find((blob) => !repository.blobs.has(blob.digest));
      if (missingBlob) throw notIn('MANIFEST_BLOB_UNKNOWN', name, missingBlob.digest);
      // A sparse index may leave children out; the children it has are in the repository already.
      const missingChild = opts.sparse
        ? undefined
        : references.manifests.find((child) => !repository.manifests.has(child.digest));
      if (missingChild) throw notIn('MANIFEST_BLOB_UNKNOWN', name, missingChild.digest);
      const content: ManifestContent = {
        digest: parsed.digest,
        mediaType: parsed.mediaType,
        size: parsed.size,
        bytes: Uint8Array.from(opts.bytes),
      };
      const subject = subjectOf(parsed.manifest);
      const stored: StoredManifest = {
        content,
        referrer: referrerDescriptor({ ...content, manifest: parsed.manifest }),
        // a non-distributable layer may be absent; one that was pushed stays referenced
        blobs: [...references.blobs, ...references.nonDistributable].map((b) => b.digest),
        ...(subject ? { subject } : {}),
      };
      if (!repository.manifests.has(parsed.digest)) repository.manifests.set(parsed.digest, stored);
      if ('tag' in target) repository.tags.set(target.tag, parsed.digest);
      return { digest: parsed.digest, ...(subject ? { subject } : {}) };
    },

    async deleteManifest(name: string, digest: Digest, opts: OperationOptions = {}) {
      open(opts.signal);
      parseDigest(digest);
      const repository = repo(name, false);
      if (!repository?.manifests.delete(digest)) throw notIn('MANIFEST_UNKNOWN', name, digest);
      for (const [tag, target] of repository.tags) if (target === digest) repository.tags.delete(tag);
    },

    async listReferrers(name: string, digest: Digest, opts: ReferrersOptions = {}): Promise<Referrers> {
      open(opts.signal);
      parseDigest(digest);
      const referring = [...(repo(name, false)?.manifests.values() ?? [])].filter(
        (m) => m.subject === digest,
      );
      return filterReferrers(
        referring.map((m) => m.referrer),
        opts.artifactType,
      );
    },

    async headBlob(name: string, digest: Digest, opts: OperationOptions = {}) {
      open(opts.signal);
      const blob = linkedBlob(name, digest);
      return blob ? { digest, size: blob.bytes.byteLength } : undefined;
    },

    async getBlob(name: string, digest: Digest, opts: GetBlobOptions = {}): Promise<BlobContent> {
      open(opts.signal);
      const blob = linkedBlob(name, digest);
      if (!blob) throw notIn('BLOB_UNKNOWN', name, digest);
      const size = blob.bytes.byteLength;
      const range = resolveRange(opts.range, size);
      if (!range) return { digest, size, stream: Readable.from([blob.bytes]) };
      return {
        digest,
        size,
        range,
        stream: Readable.from([blob.bytes.subarray(range.start, range.end + 1)]),
      };
    },

    async putBlob(name: string, body: BlobBody, opts: PutBlobOptions) {
      open();
      parseRepositoryName(name);
      const digest = parseDigest(opts.digest);
      const bytes = await readBody(body, opts.signal, opts.size);
      const digester = new Digester(digestAlgorithm(digest)).update(bytes);
      assertContent({ digest: digester.digest(), size: bytes.byteLength }, opts);
      checkSignal(opts.signal);
      return commitBlob(repo(name, true) as Repository, digest, bytes);
    },

    async mountBlob(name: string, digest: Digest, opts: MountBlobOptions = {}) {
      open(opts.signal);
      parseRepositoryName(name);
      parseDigest(digest);
      const blob = blobs.get(digest);
      if (!blob) return undefined;
      const linked =
        opts.from === undefined
          ? [...repositories.values()].some((r) => r.blobs.has(digest))
          : (repo(opts.from, false)?.blobs.has(digest) ?? false);
      if (!linked) return undefined;
      return commitBlob(repo(name, true) as Repository, digest, blob.bytes);
    },

    async deleteBlob(name: string, digest: Digest, opts: OperationOptions = {}) {
      open(opts.signal);
      parseDigest(digest);
      if (!repo(name, false)?.blobs.delete(digest)) throw notIn('BLOB_UNKNOWN', name, digest);
    },

    async lock(name: string, opts: LockOptions = {}): Promise<RegistryLock> {
      open();
      const exclusive = (opts.mode ?? 'exclusive') === 'exclusive';
      let state = locks.get(name);
      if (!state) {
        state = { readers: 0, writer: false, waiters: [] };
        locks.set(name, state);
      }
      const lockState = state;
      const free = () => (exclusive ? !lockState.writer && lockState.readers === 0 : !lockState.writer);
      while (!free()) {
        checkSignal(opts.signal);
        await new Promise<void>((resolve, reject) => {
          const wake = () => {
            opts.signal?.removeEventListener('abort', onAbort);
            resolve();
          };
          const onAbort = () => {
            lockState.waiters.splice(lockState.waiters.indexOf(wake), 1);
            reject(opts.signal?.reason);
          };
          lockState.waiters.push(wake);
          opts.signal?.addEventListener('abort', onAbort, { once: true });
        });
      }
      if (exclusive) lockState.writer = true;
      else lockState.readers++;
      let released = false;
      const release = async () => {
        if (released) return;
        released = true;
        if (exclusive) lockState.writer = false;
        else lockState.readers--;
        for (const wake of lockState.waiters.splice(0)) wake();
      };
      return { release, [Symbol.asyncDispose]: release };
    },

    async garbageCollect(opts: GarbageCollectOptions = {}): Promise<GarbageCollectReport> {
      open(opts.signal);
      const grace = opts.gracePeriodMs ?? 0;
      const referenced = new Set<Digest>();
      for (const repository of repositories.values()) {
        for (const manifest of repository.manifests.values())
          for (const d of manifest.blobs) referenced.add(d);
      }
      const removed: Digest[] = [];
      let bytesFreed = 0;
      for (const [digest, blob] of blobs) {
        if (referenced.has(digest) || now() - blob.createdAt < grace) continue;
        removed.push(digest);
        bytesFreed += blob.bytes.byteLength;
      }
      let uploadsRemoved = 0;
      if (opts.dryRun) {
        for await (const upload of staging.list())
          if (now() - upload.startedAt > uploadTtlMs) uploadsRemoved++;
      } else {
        for (const digest of removed) {
          blobs.delete(digest);
          for (const repository of repositories.values()) repository.blobs.delete(digest);
        }
        uploadsRemoved = sessions ? await sessions.purge() : 0;
      }
      return {
        blobsRemoved: removed,
        manifestsRemoved: [],
        uploadsRemoved,
        bytesFreed,
        dryRun: opts.dryRun ?? false,
      };
    },

    async close() {
      closed = true;
    },
  };

  const sessions = withSessions
    ? createUploadSessions({
        staging,
        putBlob: (name, body, opts) => core.putBlob(name, body, opts),
        now,
        ttlMs: uploadTtlMs,
      })
    : undefined;
  if (!sessions) return core;
  /** A session member that refuses once the registry is closed. */
  const guarded =
    <A extends unknown[], R>(member: (...args: A) => Promise<R>) =>
    async (...args: A): Promise<R> => {
      open();
      return member(...args);
    };
  return {
    ...core,
    startUpload: guarded(sessions.startUpload),
    appendUpload: guarded(sessions.appendUpload),
    getUpload: guarded(sessions.getUpload),
    finishUpload: guarded(sessions.finishUpload),
    cancelUpload: guarded(sessions.cancelUpload),
  };
}
