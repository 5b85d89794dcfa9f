import { randomBytes } from 'node:crypto';
import {
  type AppendUploadOptions,
  type BlobBody,
  type BlobInfo,
  type FinishUploadOptions,
  hasUploadSessions,
  isStowageError,
  type OperationOptions,
  type PutBlobOptions,
  parseDigest,
  parseRepositoryName,
  type Registry,
  type RegistryCapabilities,
  RegistryError,
  type UploadSessions,
  type UploadStatus,
} from '@stowage/oci';
import { publishUpload } from './diagnostics.js';
import { BlobStoreOptionsError } from './errors.js';
import { checkLength } from './internal/body.js';
import type { StagedUpload, UploadStaging } from './upload-staging.js';

/** Stores a whole blob, verifying it while it streams: `Registry.putBlob`'s shape. */
export type PutBlob = (repository: string, body: BlobBody, options: PutBlobOptions) => Promise<BlobInfo>;

/** Default age past which a session is gone: a day, as the image store keeps them. */
export const DEFAULT_UPLOAD_TTL_MS = 24 * 60 * 60 * 1000;

export interface UploadSessionsOptions {
  /** Where partial uploads live. */
  readonly staging: UploadStaging;
  /** Commits a finished upload; it must verify the digest (and size) and commit nothing on a mismatch. */
  readonly putBlob: PutBlob;
  /** The clock session ages are read from (ms since the epoch). Default `Date.now`. */
  readonly now?: () => number;
  /** Sessions older than this are unknown, and removed when next touched or purged. Default 24 hours. */
  readonly ttlMs?: number;
}

export interface PurgeUploadsOptions extends OperationOptions {
  /** Remove sessions started longer ago than this. Default: the sessions' `ttlMs`. */
  readonly olderThanMs?: number;
}

/** The five upload-session members of a `Registry`, plus purging of old sessions. */
export interface UploadSessionsImpl extends UploadSessions {
  /** Removes sessions older than `olderThanMs`; answers how many. */
  purge(options?: PurgeUploadsOptions): Promise<number>;
}

/** Session ids this layer hands out: 32 lowercase hex characters, safe in a URL path segment and a file name. */
const SESSION_ID = /^[0-9a-f]{32}$/;

/**
 * Upload sessions over any staging area and any `putBlob`: the one
 * implementation a store without its own gets (through `withUploadSessions`).
 *
 * - `startUpload` opens an empty session with a fresh id.
 * - `appendUpload` appends at the session's offset; an `offset` other than the
 *   current one is refused with `RANGE_INVALID`, a body whose length is not
 *   `length` with `SIZE_INVALID`, and either leaves the session unchanged.
 * - `finishUpload` streams the staged bytes, followed by the last chunk when
 *   one is given, into `putBlob` with the digest, so the bytes are verified
 *   once, as they are committed, and the last chunk is never staged. On
 *   success the session ends. A digest or size mismatch of the whole blob
 *   commits nothing and ends the session too (as distribution does); a last
 *   chunk refused for its offset or length, an abort, or a failure of the
 *   store leaves the session as it was before the call, so the client may retry.
 * - Unknown, expired, cancelled or finished ids, and ids of another
 *   repository, are `BLOB_UPLOAD_UNKNOWN`.
 *
 * Calls on one session run one at a time within a process.
 */
export function createUploadSessions(options: UploadSessionsOptions): UploadSessionsImpl {
  const { staging, putBlob } = options;
  if (!staging || typeof staging.create !== 'function') {
    throw new BlobStoreOptionsError('upload sessions need a staging area');
  }
  if (typeof putBlob !== 'function') throw new BlobStoreOptionsError('upload sessions need a putBlob');
  const now = options.now ?? Date.now;
  const ttlMs = options.ttlMs ?? DEFAULT_UPLOAD_TTL_MS;
  if (!(ttlMs > 0)) throw new BlobStoreOptionsError(`ttlMs must be positive, not ${ttlMs}`, { ttlMs });

  const queues = new Map<string, Promise<unknown>>();

  /** Runs work on one session after the work queued before it (failed or not). */
  function serial<T>(id: string, work: () => Promise<T>): Promise<T> {
    const previous = queues.get(id) ?? Promise.resolve();
    const next = previous.then(work, work);
    queues.set(id, next);
    const done = () => {
      if (queues.get(id) === next) queues.delete(id);
    };
    next.then(done, done);
    return next;
  }

  function unknown(repository: string, id: string): RegistryError {
    return new RegistryError(
      'BLOB_UPLOAD_UNKNOWN',
      `upload ${String(id).slice(0, 64)} is not known in ${repository}`,
      { details: { repository } },
    );
  }

  function status(session: StagedUpload, offset = session.size): UploadStatus {
    return { id: session.id, repository: session.repository, offset, startedAt: session.startedAt };
  }

  /** The live session `id` of `repository`; an expired one is removed on the way. */
  async function session(repository: string, id: string, signal?: AbortSignal): Promise<StagedUpload> {
    parseRepositoryName(repository);
    signal?.throwIfAborted();
    if (typeof id !== 'string' || !SESSION_ID.test(id)) throw unknown(repository, id);
    const found = await staging.stat(id, signal ? { signal } : {});
    if (!found || found.repository !== repository) throw unknown(repository, id);
    if (now() - found.startedAt > ttlMs) {
      if (await staging.remove(id)) {
        publishUpload(() => ({ repository, id, outcome: 'expired', size: found.size }));
      }
      throw unknown(repository, id);
    }
    return found;
  }

  function rangeInvalid(requested: number, offset: number): RegistryError {
    return new RegistryError('RANGE_INVALID', `chunk starts at ${requested}, the upload is at ${offset}`, {
      details: { offset, requested },
    });
  }

  return {
    async startUpload(repository: string, opts: OperationOptions = {}) {
      parseRepositoryName(repository);
      opts.signal?.throwIfAborted();
      const id = randomBytes(16).toString('hex');
      return status(await staging.create(id, { repository, startedAt: now() }));
    },

    async appendUpload(repository: string, id: string, opts: AppendUploadOptions) {
      return serial(id, async () => {
        const found = await session(repository, id, opts.signal);
        const offset = await staging.append(id, opts.body, {
          offset: opts.offset ?? found.size,
          ...(opts.length === undefined ? {} : { length: opts.length }),
          ...(opts.signal === undefined ? {} : { signal: opts.signal }),
        });
        return status(found, offset);
      });
    },

    async getUpload(repository: string, id: string, opts: OperationOptions = {}) {
      return status(await session(repository, id, opts.signal));
    },

    async finishUpload(repository: string, id: string, opts: FinishUploadOptions) {
      const digest = parseDigest(opts.digest);
      return serial(id, async () => {
        const found = await session(repository, id, opts.signal);
        const last = opts.body === undefined ? undefined : checkLength(opts.body, opts.length);
        if (last && opts.offset !== undefined && opts.offset !== found.size) {
          throw rangeInvalid(opts.offset, found.size);
        }
        const total =
          last === undefined ? found.size : opts.length === undefined ? undefined : found.size + opts.length;
        const staged =
          found.size > 0 ? await staging.read(id, opts.signal ? { signal: opts.signal } : {}) : undefined;
        async function* whole(): AsyncGenerator<Uint8Array> {
          if (staged) yield* staged;
          if (last) yield* last.chunks;
        }
        let info: BlobInfo;
        try {
          info = await putBlob(repository, whole(), {
            digest,
            ...(total === undefined ? {} : { size: total }),
            ...(opts.signal === undefined ? {} : { signal: opts.signal }),
          });
        } catch (error) {
          staged?.destroy();
          // The whole blob is not what the client said: nothing was committed, and the session ends.
          const badContent = isStowageError(error, 'DIGEST_INVALID') || isStowageError(error, 'SIZE_INVALID');
          if (badContent && !last?.refused()) {
            await staging.remove(id);
            publishUpload(() => ({ repository, id, outcome: 'refused', size: found.size, digest }));
          }
          throw error;
        }
        // A putBlob that found the blob stored already may not have read the staged bytes to the end.
        staged?.destroy();
        await staging.remove(id);
        publishUpload(() => ({ repository, id, outcome: 'committed', size: info.size, digest }));
        return info;
      });
    },

    async cancelUpload(repository: string, id: string, opts: OperationOptions = {}) {
      return serial(id, async () => {
        const found = await session(repository, id, opts.signal);
        await staging.remove(id);
        publishUpload(() => ({ repository, id, outcome: 'cancelled', size: found.size }));
      });
    },

    async purge(opts: PurgeUploadsOptions = {}) {
      const olderThanMs = opts.olderThanMs ?? ttlMs;
      const cutoff = now() - olderThanMs;
      const old: StagedUpload[] = [];
      for await (const found of staging.list(opts.signal ? { signal: opts.signal } : {})) {
        if (found.startedAt < cutoff) old.push(found);
      }
      let removed = 0;
      for (const found of old) {
        opts.signal?.throwIfAborted();
        if (!(await serial(found.id, () => staging.remove(found.id)))) continue;
        removed++;
        publishUpload(() => ({
          repository: found.repository,
          id: found.id,
          outcome: 'expired',
          size: found.size,
        }));
      }
      return removed;
    },
  };
}

export interface WithUploadSessionsOptions {
  /** Where partial uploads live. */
  readonly staging: UploadStaging;
  /** The clock session ages are read from. Default `Date.now`. */
  readonly now?: () => number;
  /** Sessions older than this are gone. Default 24 hours. */
  readonly ttlMs?: number;
}

/**
 * A registry with upload sessions: the registry itself when it has its own,
 * otherwise a `Registry` that adds the shared implementation over the
 * registry's `putBlob` and the given staging area, and passes every other
 * member through unchanged. Its `capabilities()` adds `uploadSessions`,
 * `uploadStatus` and `outOfOrderChunkRefusal`.
 */
export function withUploadSessions<R extends Registry>(
  registry: R,
  options: WithUploadSessionsOptions,
): Registry & UploadSessions {
  if (hasUploadSessions(registry)) return registry;
  const sessions = createUploadSessions({
    staging: options.staging,
    putBlob: (repository, body, opts) => registry.putBlob(repository, body, opts),
    ...(options.now === undefined ? {} : { now: options.now }),
    ...(options.ttlMs === undefined ? {} : { ttlMs: options.ttlMs }),
  });
  const wrapped: Registry & UploadSessions = {
    get origin() {
      return registry.origin;
    },
    async capabilities(opts?: OperationOptions): Promise<RegistryCapabilities> {
      return {
        ...(await registry.capabilities(opts)),
        uploadSessions: true,
        uploadStatus: true,
        outOfOrderChunkRefusal: true,
      };
    },
    listRepositories: registry.listRepositories.bind(registry),
    listTags: registry.listTags.bind(registry),
    deleteTag: registry.deleteTag.bind(registry),
    getManifest: registry.getManifest.bind(registry),
    headManifest: registry.headManifest.bind(registry),
    putManifest: registry.putManifest.bind(registry),
    deleteManifest: registry.deleteManifest.bind(registry),
    listReferrers: registry.listReferrers.bind(registry),
    headBlob: registry.headBlob.bind(registry),
    getBlob: registry.getBlob.bind(registry),
    putBlob: registry.putBlob.bind(registry),
    mountBlob: registry.mountBlob.bind(registry),
    deleteBlob: registry.deleteBlob.bind(registry),
    startUpload: sessions.startUpload,
    appendUpload: sessions.appendUpload,
    getUpload: sessions.getUpload,
    finishUpload: sessions.finishUpload,
    cancelUpload: sessions.cancelUpload,
    ...(registry.lock ? { lock: registry.lock.bind(registry) } : {}),
    ...(registry.garbageCollect ? { garbageCollect: registry.garbageCollect.bind(registry) } : {}),
    ...(registry.close ? { close: registry.close.bind(registry) } : {}),
  };
  return wrapped;
}
