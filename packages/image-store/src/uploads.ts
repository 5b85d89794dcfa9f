import { createHash, type Hash, randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { open, readdir, truncate as truncateFile } from 'node:fs/promises';
import { rm, stat, writeBody, writeFile } from '@stowage/blob-store';
import {
  type AppendUploadOptions,
  type BlobBody,
  type BlobInfo,
  type Digest,
  DigestMismatchError,
  digestAlgorithm,
  digestStream,
  type FinishUploadOptions,
  isStowageError,
  parseDigest,
  RegistryError,
  truncate,
  type UploadStatus,
  verifiedDigestOf,
} from '@stowage/oci';
import type { ContentStore } from './content-store.js';
import { fsyncPath, ifExists } from './fs-utils.js';
import type { StorePaths } from './paths.js';

function unknownUpload(id: string, repository: string): RegistryError {
  return new RegistryError('BLOB_UPLOAD_UNKNOWN', `upload ${truncate(id, 64)} is not known in ${repository}`);
}

export interface UploadsOptions {
  readonly paths: StorePaths;
  readonly content: ContentStore;
  /** Sessions older than this are gone. */
  readonly ttlMs: number;
}

/** A session file's name: `<id>-<repository key>`; the id's first 12 hex digits are its start time in ms. */
const SESSION_FILE = /^([0-9a-f]{40})-[0-9a-f]{16}$/;

/** When a session started, from its id. */
function startedAtOf(id: string): number {
  return Number.parseInt(id.slice(0, 12), 16);
}

/**
 * Chunked upload sessions on disk, surviving a restart: one file per session,
 * `.stowage/uploads/<id>-<key>`, holding the bytes so far. The id begins with
 * the session's start time and `key` is a hash of its repository, so a session
 * is found, bound to its repository and aged from its name alone: starting one
 * creates one inode and finishing one unlinks it (allocating inodes is the
 * dear part of a small blob's write on ext4). A finished upload's file is
 * verified and becomes the content-store blob itself (a link, never a copy).
 * Sessions of the earlier layout (a directory with `data` and `state.json`)
 * are no longer known; the purge removes them by age.
 *
 * The sha256 of each session's bytes so far is kept while this process
 * appends in order, so finishing does not read the whole upload back. A
 * session this process has not seen from its start (or a sha512 one) is
 * hashed from disk.
 */
export class Uploads {
  readonly #o: UploadsOptions;
  readonly #queues = new Map<string, Promise<unknown>>();
  /**
   * Per session this process appended from its start: the bytes so far and
   * their running sha256, or (for a session filled by one verified body, see
   * `markVerified`) the digest that body was checked against instead.
   */
  readonly #hashes = new Map<
    string,
    { offset: number; hash?: Hash; verified?: Digest; flushing?: Promise<void> }
  >();

  constructor(options: UploadsOptions) {
    this.#o = options;
  }

  async start(repository: string): Promise<UploadStatus> {
    const startedAt = Date.now();
    const id = `${startedAt.toString(16).padStart(12, '0')}${randomBytes(14).toString('hex')}`;
    // Not fsynced: a session a crash loses is garbage the purge removes, never part of a blob.
    await writeFile(this.#o.paths.upload(id, repository), '', { flag: 'wx', mode: 0o644 });
    this.#hashes.set(id, { offset: 0, hash: createHash('sha256') });
    return { id, repository, offset: 0, startedAt };
  }

  append(repository: string, id: string, opts: AppendUploadOptions): Promise<UploadStatus> {
    return this.#serial(id, async () => {
      const file = await this.#session(repository, id);
      await this.#appendChunk(id, file, opts.body, opts);
      return this.#status(id, file, repository);
    });
  }

  async get(repository: string, id: string): Promise<UploadStatus> {
    return this.#status(id, await this.#session(repository, id), repository);
  }

  finish(repository: string, id: string, opts: FinishUploadOptions): Promise<BlobInfo> {
    const digest = parseDigest(opts.digest);
    return this.#serial(id, async () => {
      const data = await this.#session(repository, id);
      if (opts.body !== undefined) {
        await this.#appendChunk(id, data, opts.body, {
          ...(opts.offset === undefined ? {} : { offset: opts.offset }),
          ...(opts.length === undefined ? {} : { length: opts.length }),
          ...(opts.signal === undefined ? {} : { signal: opts.signal }),
        });
      }
      const running = this.#hashes.get(id);
      this.#hashes.delete(id);
      await running?.flushing;
      try {
        const size = (await stat(data)).size;
        const actual =
          running && running.offset === size && running.verified !== undefined
            ? { digest: running.verified, size }
            : running && running.offset === size && running.hash && digestAlgorithm(digest) === 'sha256'
              ? { digest: `sha256:${running.hash.digest('hex')}` as Digest, size }
              : await digestStream(
                  createReadStream(data, { highWaterMark: 1 << 20 }),
                  digestAlgorithm(digest),
                );
        if (actual.digest !== digest) throw new DigestMismatchError(digest, actual.digest);
        // Verified above; adopt fsyncs it and links (or moves) it into the content store.
        await this.#o.content.blobs.adopt(data, { digest, size });
        await this.#o.content.link(repository, digest);
        return { digest, size: actual.size };
      } finally {
        await rm(data, { force: true });
      }
    });
  }

  async cancel(repository: string, id: string): Promise<void> {
    const data = await this.#session(repository, id);
    this.#hashes.delete(id);
    await rm(data, { force: true });
  }

  /** Sessions past their age (and the directories of the earlier layout), removed unless `dryRun`; answers how many. */
  async expire(dryRun: boolean): Promise<number> {
    const { paths, ttlMs } = this.#o;
    let count = 0;
    for (const name of (await ifExists(readdir(paths.internal('uploads')))) ?? []) {
      const path = paths.internal('uploads', name);
      const session = SESSION_FILE.exec(name);
      let startedAt: number;
      if (session) startedAt = startedAtOf(session[1] as string);
      else {
        // Anything else (a session directory of the earlier layout): its age on disk counts.
        const info = await ifExists(stat(path));
        if (!info) continue;
        startedAt = info.mtimeMs;
      }
      if (Date.now() - startedAt <= ttlMs) continue;
      count++;
      if (!dryRun) {
        if (session) this.#hashes.delete(session[1] as string);
        await rm(path, { recursive: true, force: true });
      }
    }
    return count;
  }

  /** Serializes work on one upload session. */
  #serial<T>(key: string, work: () => Promise<T>): Promise<T> {
    const previous = this.#queues.get(key) ?? Promise.resolve();
    const next = previous.catch(() => undefined).then(work);
    this.#queues.set(key, next);
    const cleanup = () => {
      if (this.#queues.get(key) === next) this.#queues.delete(key);
    };
    next.then(cleanup, cleanup);
    return next;
  }

  /** The file of a session of `repository`, or BLOB_UPLOAD_UNKNOWN (malformed, another repository's, gone, expired). */
  async #session(repository: string, id: string): Promise<string> {
    const { paths, ttlMs } = this.#o;
    let file: string;
    try {
      file = paths.upload(id, repository);
    } catch (error) {
      if (isStowageError(error, 'BLOB_UPLOAD_UNKNOWN')) throw unknownUpload(id, repository);
      throw error;
    }
    if (!(await ifExists(stat(file)))) throw unknownUpload(id, repository);
    if (Date.now() - startedAtOf(id) > ttlMs) {
      await rm(file, { force: true });
      throw unknownUpload(id, repository);
    }
    return file;
  }

  async #status(id: string, file: string, repository: string): Promise<UploadStatus> {
    const size = (await stat(file)).size;
    return { id, repository, offset: size, startedAt: startedAtOf(id) };
  }

  async #appendChunk(
    id: string,
    data: string,
    body: BlobBody,
    options: { offset?: number; length?: number; signal?: AbortSignal },
  ): Promise<void> {
    const start = (await stat(data)).size;
    let running = this.#hashes.get(id);
    if (running && running.offset !== start) {
      this.#hashes.delete(id);
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
    // A body checked against its digest on the way (markVerified) is not hashed again; the
    // session then holds that digest, valid only while this body is all it holds.
    const verified = running && start === 0 ? verifiedDigestOf(body) : undefined;
    const hash = verified === undefined ? running?.hash : undefined;
    const handle = await open(data, 'a');
    try {
      const written = await writeBody(handle, body, {
        ...(options.length === undefined ? {} : { length: options.length }),
        ...(hash ? { onChunk: (chunk: Uint8Array) => hash.update(chunk) } : {}),
        ...(options.signal ? { signal: options.signal } : {}),
      });
      if (running) {
        running.offset = start + written;
        if (verified !== undefined) {
          running.verified = verified;
          delete running.hash;
          // A whole verified blob: start flushing it now, while other transfers run, so the
          // fsync finishing it waits for little (write-behind). Failures surface there.
          running.flushing = fsyncPath(data).catch(() => undefined);
        } else if (running.verified !== undefined && written > 0) {
          // More bytes after a verified body: its digest no longer describes the session.
          this.#hashes.delete(id);
        }
      }
      await handle.close();
    } catch (error) {
      await handle.close().catch(() => undefined);
      this.#hashes.delete(id);
      await truncateFile(data, start);
      throw error;
    }
  }
}
