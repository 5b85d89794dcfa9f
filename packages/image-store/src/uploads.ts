import { createHash, type Hash, randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, readdir, readFile, rm, stat, truncate as truncateFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable, Transform, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
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
  SizeMismatchError,
  truncate,
  type UploadStatus,
} from '@stowage/oci';
import type { ContentStore } from './content-store.js';
import { ifExists, writeFileAtomic } from './fs-utils.js';
import type { StorePaths } from './paths.js';

interface UploadState {
  readonly repository: string;
  readonly startedAt: number;
}

/** Bytes gathered before one write: network chunks are 16–64 KiB, disks like larger writes. */
const WRITE_BATCH = 1 << 20;

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
  readonly #hashes = new Map<string, { offset: number; hash: Hash }>();

  constructor(options: UploadsOptions) {
    this.#o = options;
  }

  async start(repository: string): Promise<UploadStatus> {
    this.#o.paths.repository(repository);
    const id = randomBytes(16).toString('hex');
    const dir = this.#o.paths.upload(id);
    const state: UploadState = { repository, startedAt: Date.now() };
    await mkdir(dir, { recursive: true });
    await writeFileAtomic(join(dir, 'data'), '');
    await writeFileAtomic(join(dir, 'state.json'), JSON.stringify(state));
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
      try {
        const size = (await stat(data)).size;
        const actual =
          running && running.offset === size && digestAlgorithm(digest) === 'sha256'
            ? { digest: `sha256:${running.hash.digest('hex')}` as Digest, size }
            : await digestStream(createReadStream(data, { highWaterMark: 1 << 20 }), digestAlgorithm(digest));
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
    const state = JSON.parse(text) as UploadState;
    if (state.repository !== repository) throw unknown();
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
      if (options.length !== undefined && written !== options.length) {
        throw new SizeMismatchError(options.length, written);
      }
      if (running) running.offset = start + written;
    } catch (error) {
      this.#hashes.delete(id);
      await truncateFile(data, start);
      throw error;
    }
  }
}
