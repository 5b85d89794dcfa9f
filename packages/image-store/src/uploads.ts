import { createHash, type Hash, randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { open, readdir, truncate as truncateFile } from 'node:fs/promises';
import { join } from 'node:path';
import { mkdir, readFile, rename, rm, stat, writeBody, writeFile } from '@stowage/blob-store';
import {
  type AppendUploadOptions,
  type BlobBody,
  type BlobInfo,
  type Digest,
  DigestMismatchError,
  digestAlgorithm,
  digestStream,
  type FinishUploadOptions,
  parseDigest,
  RegistryError,
  truncate,
  type UploadStatus,
  verifiedDigestOf,
} from '@stowage/oci';
import type { ContentStore } from './content-store.js';
import { fsyncPath, ifExists } from './fs-utils.js';
import type { StorePaths } from './paths.js';

interface UploadState {
  readonly repository: string;
  readonly startedAt: number;
}

export interface UploadsOptions {
  readonly paths: StorePaths;
  readonly content: ContentStore;
  /** Sessions older than this are gone. */
  readonly ttlMs: number;
}

/**
 * Chunked upload sessions on disk, surviving a restart:
 * `.stowage/uploads/<id>/data` holds the bytes so far, `state.json` the
 * repository and start time. A finished upload's data file is verified and
 * becomes the content-store blob itself (a link, never a copy).
 *
 * The sha256 of each session's bytes so far is kept while this process
 * appends in order, so finishing does not read the whole upload back. A
 * session this process has not seen from its start (or a sha512 one) is
 * hashed from disk.
 */
/** The directory of a session id when the id is well formed, else undefined. */
function ifExistsPath(paths: StorePaths, id: string): string | undefined {
  try {
    return paths.upload(id);
  } catch {
    return undefined;
  }
}

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
    this.#o.paths.repository(repository);
    const id = randomBytes(16).toString('hex');
    const dir = this.#o.paths.upload(id);
    const state: UploadState = { repository, startedAt: Date.now() };
    // Not fsynced: a session a crash loses is garbage the purge removes, never part of a blob,
    // and its state file appears whole (renamed into place) or not at all.
    await mkdir(dir, { recursive: true });
    await writeFile(join(dir, 'data'), '', { flag: 'wx', mode: 0o644 });
    const temp = join(dir, 'state.json.tmp');
    await writeFile(temp, JSON.stringify(state), { flag: 'wx' });
    await rename(temp, join(dir, 'state.json'));
    this.#hashes.set(id, { offset: 0, hash: createHash('sha256') });
    return { id, repository, offset: 0, startedAt: state.startedAt };
  }

  append(repository: string, id: string, opts: AppendUploadOptions): Promise<UploadStatus> {
    return this.#serial(id, async () => {
      const { dir, state } = await this.#session(repository, id);
      await this.#appendChunk(id, dir, opts.body, opts);
      return this.#status(id, dir, state);
    });
  }

  async get(repository: string, id: string): Promise<UploadStatus> {
    const { dir, state } = await this.#session(repository, id);
    return this.#status(id, dir, state);
  }

  finish(repository: string, id: string, opts: FinishUploadOptions): Promise<BlobInfo> {
    const digest = parseDigest(opts.digest);
    return this.#serial(id, async () => {
      const { dir } = await this.#session(repository, id);
      if (opts.body !== undefined) {
        await this.#appendChunk(id, dir, opts.body, {
          ...(opts.offset === undefined ? {} : { offset: opts.offset }),
          ...(opts.length === undefined ? {} : { length: opts.length }),
          ...(opts.signal === undefined ? {} : { signal: opts.signal }),
        });
      }
      const data = join(dir, 'data');
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
        await rm(dir, { recursive: true, force: true });
      }
    });
  }

  async cancel(repository: string, id: string): Promise<void> {
    let dir: string;
    try {
      ({ dir } = await this.#session(repository, id));
    } catch (error) {
      // A session whose removal a crash cut short (its state file gone first): finish removing it.
      // Its id was handed out, so it is not one still being created.
      const leftover = ifExistsPath(this.#o.paths, id);
      if (leftover) await rm(leftover, { recursive: true, force: true });
      throw error;
    }
    this.#hashes.delete(id);
    await rm(dir, { recursive: true, force: true });
  }

  /** Sessions past their age, removed unless `dryRun`; answers how many. */
  async expire(dryRun: boolean): Promise<number> {
    const { paths, ttlMs } = this.#o;
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
      if (Date.now() - startedAt <= ttlMs) continue;
      count++;
      if (!dryRun) {
        this.#hashes.delete(id);
        await rm(dir, { recursive: true, force: true });
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

  async #session(repository: string, id: string): Promise<{ dir: string; state: UploadState }> {
    const { paths, ttlMs } = this.#o;
    paths.repository(repository);
    const unknown = () =>
      new RegistryError('BLOB_UPLOAD_UNKNOWN', `upload ${truncate(id, 64)} is not known in ${repository}`);
    let dir: string;
    try {
      dir = paths.upload(id);
    } catch {
      throw unknown();
    }
    const text = await ifExists(readFile(join(dir, 'state.json'), 'utf8'));
    if (text === undefined) throw unknown();
    let state: UploadState;
    try {
      state = JSON.parse(text) as UploadState;
    } catch {
      // Torn by a crash (its creation is not fsynced): a lost session, which the purge removes.
      throw unknown();
    }
    if (state?.repository !== repository) throw unknown();
    if (Date.now() - state.startedAt > ttlMs) {
      await rm(dir, { recursive: true, force: true });
      throw unknown();
    }
    return { dir, state };
  }

  async #status(id: string, dir: string, state: UploadState): Promise<UploadStatus> {
    const size = (await stat(join(dir, 'data'))).size;
    return { id, repository: state.repository, offset: size, startedAt: state.startedAt };
  }

  async #appendChunk(
    id: string,
    dir: string,
    body: BlobBody,
    options: { offset?: number; length?: number; signal?: AbortSignal },
  ): Promise<void> {
    const data = join(dir, 'data');
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
