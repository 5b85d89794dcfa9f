import { randomUUID } from 'node:crypto';
import { Readable } from 'node:stream';
import {
  type AppendUploadOptions,
  assertContent,
  type BlobBody,
  type BlobContent,
  type BlobInfo,
  type Descriptor,
  type Digest,
  Digester,
  digestAlgorithm,
  type FinishUploadOptions,
  fullCapabilities,
  type GarbageCollectOptions,
  type GarbageCollectReport,
  type GetBlobOptions,
  type ListOptions,
  type ListPage,
  type LockOptions,
  type ManifestContent,
  type MountBlobOptions,
  manifestReferences,
  type OperationOptions,
  type PutBlobOptions,
  type PutManifestOptions,
  type PutManifestResult,
  parseDigest,
  parseManifest,
  parseRepositoryName,
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
} from '@stowage/oci';

export interface MemoryRegistryOptions {
  /** Largest manifest accepted. Default 4 MiB. */
  readonly maxManifestSize?: number;
  /** Upload sessions older than this are purged. Default 1 hour. */
  readonly uploadTtlMs?: number;
  /** Clock, for tests of expiry and grace periods. */
  readonly now?: () => number;
}

interface StoredManifest {
  readonly content: ManifestContent;
  readonly subject?: Digest;
  readonly artifactType?: string;
  readonly annotations?: Readonly<Record<string, string>>;
  readonly blobs: readonly Digest[];
}

interface Repository {
  readonly blobs: Set<Digest>;
  readonly manifests: Map<Digest, StoredManifest>;
  readonly tags: Map<string, Digest>;
}

interface Upload {
  readonly id: string;
  readonly repository: string;
  readonly chunks: Uint8Array[];
  offset: number;
  readonly startedAt: number;
}

interface StoredBlob {
  readonly bytes: Uint8Array;
  readonly createdAt: number;
}

/** A registry held in memory: the reference behaviour of the `Registry` contract. */
export type MemoryRegistry = RegistryWithUploads &
  Required<Pick<Registry, 'lock' | 'garbageCollect' | 'close'>>;

function isDigestReference(reference: string): boolean {
  return reference.includes(':');
}

function checkSignal(signal: AbortSignal | undefined): void {
  signal?.throwIfAborted();
}

function concat(chunks: readonly Uint8Array[], size: number): Uint8Array {
  const out = new Uint8Array(size);
  let offset = 0;
  for (const chunk of chunks) {
    out.set(chunk, offset);
    offset += chunk.byteLength;
  }
  return out;
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
  return concat(chunks, size);
}

function page(all: readonly string[], options: ListOptions): ListPage {
  const sorted = [...all].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  const last = options.last;
  const after = last === undefined ? sorted : sorted.filter((item) => item > last);
  if (options.n === undefined) return { items: after };
  const n = Math.max(0, Math.floor(options.n));
  const items = after.slice(0, n);
  return n > 0 && after.length > n ? { items, next: items[items.length - 1] as string } : { items };
}

/**
 * Creates the in-memory reference registry. Semantics worth knowing:
 * - a repository exists once it has a blob link, a manifest or a tag;
 *   `listRepositories` lists those with at least one manifest;
 * - `n: 0` returns an empty page;
 * - a failed `finishUpload` (wrong digest or size) ends the session;
 * - content-addressed blobs are shared by all repositories; `deleteBlob` only unlinks,
 *   `garbageCollect` frees what no manifest references.
 */
export function createMemoryRegistry(options: MemoryRegistryOptions = {}): MemoryRegistry {
  const now = options.now ?? Date.now;
  const uploadTtlMs = options.uploadTtlMs ?? 60 * 60 * 1000;
  const blobs = new Map<Digest, StoredBlob>();
  const repositories = new Map<string, Repository>();
  const uploads = new Map<string, Upload>();
  const locks = new Map<string, { readers: number; writer: boolean; waiters: (() => void)[] }>();
  let closed = false;

  function open(): void {
    if (closed) throw new RegistryError('UNAVAILABLE', 'the registry is closed');
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
    if (!repository) return undefined;
    if (isDigestReference(reference)) return repository.manifests.get(parseDigest(reference));
    const digest = repository.tags.get(parseTag(reference));
    return digest === undefined ? undefined : repository.manifests.get(digest);
  }

  function manifestUnknown(name: string, reference: string): RegistryError {
    return new RegistryError('MANIFEST_UNKNOWN', `manifest ${reference} is not in ${name}`, {
      details: { repository: name, reference },
    });
  }

  function commitBlob(repository: Repository, digest: Digest, bytes: Uint8Array): BlobInfo {
    if (!blobs.has(digest)) blobs.set(digest, { bytes, createdAt: now() });
    repository.blobs.add(digest);
    return { digest, size: bytes.byteLength };
  }

  function purgeUploads(): number {
    let removed = 0;
    for (const [id, upload] of uploads) {
      if (now() - upload.startedAt > uploadTtlMs) {
        uploads.delete(id);
        removed++;
      }
    }
    return removed;
  }

  function session(name: string, id: string): Upload {
    parseRepositoryName(name);
    purgeUploads();
    const upload = uploads.get(id);
    if (!upload || upload.repository !== name) {
      throw new RegistryError(
        'BLOB_UPLOAD_UNKNOWN',
        `upload ${String(id).slice(0, 64)} is not known in ${name}`,
        {
          details: { repository: name },
        },
      );
    }
    return upload;
  }

  function status(upload: Upload): UploadStatus {
    return {
      id: upload.id,
      repository: upload.repository,
      offset: upload.offset,
      startedAt: upload.startedAt,
    };
  }

  async function append(
    upload: Upload,
    body: BlobBody,
    opts: { offset?: number; length?: number; signal?: AbortSignal },
  ) {
    if (opts.offset !== undefined && opts.offset !== upload.offset) {
      throw new RegistryError(
        'RANGE_INVALID',
        `chunk starts at ${opts.offset}, the upload is at ${upload.offset}`,
        {
          details: { offset: upload.offset, requested: opts.offset },
        },
      );
    }
    const start = upload.offset;
    const bytes = await readBody(body, opts.signal, opts.length);
    if (opts.length !== undefined && bytes.byteLength !== opts.length) {
      throw new SizeMismatchError(opts.length, bytes.byteLength);
    }
    if (upload.offset !== start) {
      throw new RegistryError('RANGE_INVALID', 'another chunk was appended concurrently', {
        details: { offset: upload.offset, requested: start },
      });
    }
    upload.chunks.push(bytes);
    upload.offset += bytes.byteLength;
  }

  const capabilities: RegistryCapabilities = { ...fullCapabilities, sparseIndex: false };
  const registry: MemoryRegistry = {
    origin: `memory:${randomUUID()}`,
    async capabilities() {
      return capabilities;
    },
    async listRepositories(opts: ListOptions = {}) {
      open();
      checkSignal(opts.signal);
      const names = [...repositories].filter(([, r]) => r.manifests.size > 0).map(([name]) => name);
      return page(names, opts);
    },

    async listTags(name: string, opts: ListOptions = {}) {
      open();
      checkSignal(opts.signal);
      const repository = repo(name, false);
      if (!repository) {
        throw new RegistryError('NAME_UNKNOWN', `repository ${name} is not known`, {
          details: { repository: name },
        });
      }
      return page([...repository.tags.keys()], opts);
    },

    async deleteTag(name: string, tag: string, opts: OperationOptions = {}) {
      open();
      checkSignal(opts.signal);
      parseTag(tag);
      const repository = repo(name, false);
      if (!repository?.tags.delete(tag)) throw manifestUnknown(name, tag);
    },

    async getManifest(name: string, reference: string, opts = {}) {
      open();
      checkSignal(opts.signal);
      const found = resolve(repo(name, false), reference);
      if (!found) throw manifestUnknown(name, reference);
      return found.content;
    },

    async headManifest(name: string, reference: string, opts = {}) {
      open();
      checkSignal(opts.signal);
      const found = resolve(repo(name, false), reference);
      if (!found) return undefined;
      const { digest, mediaType, size } = found.content;
      return { digest, mediaType, size };
    },

    async putManifest(name: string, reference: string, opts: PutManifestOptions): Promise<PutManifestResult> {
      const { bytes } = opts;
      open();
      checkSignal(opts.signal);
      parseRepositoryName(name);
      const byDigest = isDigestReference(reference);
      const expected = byDigest ? parseDigest(reference) : undefined;
      if (!byDigest) parseTag(reference);
      const parsed = parseManifest(bytes, {
        mediaType: opts.mediaType,
        ...(options.maxManifestSize === undefined ? {} : { maxSize: options.maxManifestSize }),
        ...(expected === undefined ? {} : { digest: expected }),
      });
      const repository = repo(name, true) as Repository;
      const references = manifestReferences(parsed);
      for (const blob of references.blobs) {
        if (!repository.blobs.has(blob.digest)) {
          throw new RegistryError('MANIFEST_BLOB_UNKNOWN', `blob ${blob.digest} is not in ${name}`, {
            details: { repository: name, digest: blob.digest },
          });
        }
      }
      for (const child of references.manifests) {
        if (!repository.manifests.has(child.digest)) {
          throw new RegistryError('MANIFEST_BLOB_UNKNOWN', `manifest ${child.digest} is not in ${name}`, {
            details: { repository: name, digest: child.digest },
          });
        }
      }
      const manifest = parsed.manifest;
      const artifactType =
        manifest.artifactType ?? (parsed.kind === 'image' ? parsed.manifest.config.mediaType : undefined);
      const stored: StoredManifest = {
        content: {
          digest: parsed.digest,
          mediaType: parsed.mediaType,
          size: parsed.size,
          bytes: Uint8Array.from(bytes),
        },
        blobs: references.blobs.map((b) => b.digest),
        ...(references.subject ? { subject: references.subject.digest } : {}),
        ...(artifactType ? { artifactType } : {}),
        ...(manifest.annotations ? { annotations: manifest.annotations } : {}),
      };
      if (!repository.manifests.has(parsed.digest)) repository.manifests.set(parsed.digest, stored);
      if (!byDigest) repository.tags.set(reference, parsed.digest);
      return { digest: parsed.digest, ...(stored.subject ? { subject: stored.subject } : {}) };
    },

    async deleteManifest(name: string, digest: Digest, opts: OperationOptions = {}) {
      open();
      checkSignal(opts.signal);
      parseDigest(digest);
      const repository = repo(name, false);
      if (!repository?.manifests.delete(digest)) throw manifestUnknown(name, digest);
      for (const [tag, target] of repository.tags) if (target === digest) repository.tags.delete(tag);
    },

    async listReferrers(name: string, digest: Digest, opts: ReferrersOptions = {}): Promise<Referrers> {
      open();
      checkSignal(opts.signal);
      parseDigest(digest);
      const repository = repo(name, false);
      const manifests: Descriptor[] = [];
      for (const stored of repository?.manifests.values() ?? []) {
        if (stored.subject !== digest) continue;
        if (opts.artifactType !== undefined && stored.artifactType !== opts.artifactType) continue;
        const { mediaType, digest: d, size } = stored.content;
        manifests.push({
          mediaType,
          digest: d,
          size,
          ...(stored.artifactType ? { artifactType: stored.artifactType } : {}),
          ...(stored.annotations ? { annotations: stored.annotations } : {}),
        });
      }
      manifests.sort((a, b) => (a.digest < b.digest ? -1 : 1));
      return { manifests, filtersApplied: opts.artifactType === undefined ? [] : ['artifactType'] };
    },

    async headBlob(name: string, digest: Digest, opts: OperationOptions = {}) {
      open();
      checkSignal(opts.signal);
      parseDigest(digest);
      const repository = repo(name, false);
      const blob = repository?.blobs.has(digest) ? blobs.get(digest) : undefined;
      return blob ? { digest, size: blob.bytes.byteLength } : undefined;
    },

    async getBlob(name: string, digest: Digest, opts: GetBlobOptions = {}): Promise<BlobContent> {
      open();
      checkSignal(opts.signal);
      parseDigest(digest);
      const repository = repo(name, false);
      const blob = repository?.blobs.has(digest) ? blobs.get(digest) : undefined;
      if (!blob) {
        throw new RegistryError('BLOB_UNKNOWN', `blob ${digest} is not in ${name}`, {
          details: { repository: name, digest },
        });
      }
      const size = blob.bytes.byteLength;
      if (!opts.range) return { digest, size, stream: Readable.from([blob.bytes]) };
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
        stream: Readable.from([blob.bytes.subarray(start, end + 1)]),
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
      open();
      checkSignal(opts.signal);
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
      open();
      checkSignal(opts.signal);
      parseDigest(digest);
      const repository = repo(name, false);
      if (!repository?.blobs.delete(digest)) {
        throw new RegistryError('BLOB_UNKNOWN', `blob ${digest} is not in ${name}`, {
          details: { repository: name, digest },
        });
      }
    },

    async startUpload(name: string, opts: OperationOptions = {}) {
      open();
      checkSignal(opts.signal);
      parseRepositoryName(name);
      purgeUploads();
      const upload: Upload = { id: randomUUID(), repository: name, chunks: [], offset: 0, startedAt: now() };
      uploads.set(upload.id, upload);
      return status(upload);
    },

    async appendUpload(name: string, id: string, opts: AppendUploadOptions) {
      const { body } = opts;
      open();
      const upload = session(name, id);
      await append(upload, body, opts);
      return status(upload);
    },

    async getUpload(name: string, id: string, opts: OperationOptions = {}) {
      open();
      checkSignal(opts.signal);
      return status(session(name, id));
    },

    async finishUpload(name: string, id: string, opts: FinishUploadOptions) {
      open();
      const upload = session(name, id);
      const digest = parseDigest(opts.digest);
      if (opts.body !== undefined) {
        await append(upload, opts.body, {
          ...(opts.offset === undefined ? {} : { offset: opts.offset }),
          ...(opts.length === undefined ? {} : { length: opts.length }),
          ...(opts.signal === undefined ? {} : { signal: opts.signal }),
        });
      }
      uploads.delete(id);
      const bytes = concat(upload.chunks, upload.offset);
      const digester = new Digester(digestAlgorithm(digest)).update(bytes);
      assertContent({ digest: digester.digest(), size: bytes.byteLength }, { digest });
      return commitBlob(repo(name, true) as Repository, digest, bytes);
    },

    async cancelUpload(name: string, id: string, opts: OperationOptions = {}) {
      open();
      checkSignal(opts.signal);
      session(name, id);
      uploads.delete(id);
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
      open();
      checkSignal(opts.signal);
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
      for (const upload of uploads.values()) if (now() - upload.startedAt > uploadTtlMs) uploadsRemoved++;
      if (!opts.dryRun) {
        for (const digest of removed) {
          blobs.delete(digest);
          for (const repository of repositories.values()) repository.blobs.delete(digest);
        }
        purgeUploads();
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
  return registry;
}
