import { randomBytes } from 'node:crypto';
import { open, opendir, readdir } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { addAbortSignal, Readable } from 'node:stream';
import { type BlobBody, type OperationOptions, RegistryError } from '@stowage/oci';
import { ifExists, makeDirDurable, syncDir } from './durable-fs.js';
import { BlobStoreOptionsError } from './errors.js';
import { writeBody } from './internal/body.js';
import { link, mkdir, readFile, rename, rm, stat, unlink } from './quick-fs.js';
import {
  type CreateStagedUploadOptions,
  isStagingId,
  type StagedUpload,
  type StagingAppendOptions,
  type UploadStaging,
} from './upload-staging.js';

export interface FileStagingOptions {
  /** The directory sessions live in, one subdirectory each (created when missing). */
  readonly dir: string;
  /**
   * fsync each chunk before its append is answered, so the offset a client is
   * told survives a crash. Default true; false trades that for speed.
   */
  readonly durable?: boolean;
}

interface Meta {
  readonly repository: string;
  readonly startedAt: number;
}

function unknown(id: string): RegistryError {
  return new RegistryError('BLOB_UPLOAD_UNKNOWN', `upload ${id.slice(0, 64)} is not staged`);
}

/** A chunk file: its offset, zero-padded so names sort in offset order. */
const CHUNK = /^(\d{16})\.chunk$/;
const chunkName = (offset: number) => `${String(offset).padStart(16, '0')}.chunk`;

interface Chunk {
  readonly file: string;
  readonly offset: number;
  readonly size: number;
}

/**
 * A staging area on disk that any number of processes may share (replicas of
 * a server on one filesystem): `<dir>/<id>/meta.json` holds a session's
 * repository and start time, and each accepted chunk is a file named by the
 * offset it starts at. A chunk is written to a temporary file first and linked
 * under its offset's name only if no other chunk took that name, so of two
 * appends at one offset, from any two processes, exactly one is accepted; a
 * chunk that fails midway never becomes visible, and nothing acknowledged is
 * ever undone. A session of an earlier version (its bytes in `data`) reads on
 * as the chunk at offset 0.
 */
export function createFileStaging(options: FileStagingOptions): UploadStaging {
  if (typeof options?.dir !== 'string' || options.dir === '') {
    throw new BlobStoreOptionsError('a file staging area needs a directory');
  }
  const dir = resolve(options.dir);
  const durable = options.durable ?? true;

  function sessionDir(id: string): string {
    if (!isStagingId(id)) throw unknown(String(id));
    return join(dir, id);
  }

  async function readMeta(id: string): Promise<Meta | undefined> {
    const text = await ifExists(readFile(join(sessionDir(id), 'meta.json'), 'utf8'));
    if (text === undefined) return undefined;
    try {
      const meta = JSON.parse(text) as Partial<Meta>;
      if (typeof meta.repository !== 'string' || typeof meta.startedAt !== 'number') return undefined;
      return { repository: meta.repository, startedAt: meta.startedAt };
    } catch {
      return undefined;
    }
  }

  /** The session's chunks in order, and its size; a gap (a damaged session) ends it there. */
  async function chunksOf(id: string): Promise<{ chunks: Chunk[]; size: number } | undefined> {
    const session = sessionDir(id);
    const names = await ifExists(readdir(session));
    if (!names) return undefined;
    const found: { file: string; offset: number }[] = [];
    for (const name of names) {
      if (name === 'data') found.push({ file: join(session, name), offset: 0 });
      const match = CHUNK.exec(name);
      if (match) found.push({ file: join(session, name), offset: Number(match[1]) });
    }
    found.sort((a, b) => a.offset - b.offset);
    const chunks: Chunk[] = [];
    let size = 0;
    for (const { file, offset } of found) {
      if (offset !== size) break;
      const info = await ifExists(stat(file));
      if (!info) break;
      chunks.push({ file, offset, size: info.size });
      size += info.size;
    }
    return { chunks, size };
  }

  async function statOf(id: string): Promise<StagedUpload | undefined> {
    if (!isStagingId(id)) return undefined;
    const meta = await readMeta(id);
    if (!meta) return undefined;
    const data = await chunksOf(id);
    return data && { id, repository: meta.repository, startedAt: meta.startedAt, size: data.size };
  }

  function rangeInvalid(requested: number, offset: number): RegistryError {
    return new RegistryError('RANGE_INVALID', `chunk starts at ${requested}, the upload is at ${offset}`, {
      details: { offset, requested },
    });
  }

  return {
    async create(id: string, opts: CreateStagedUploadOptions) {
      opts.signal?.throwIfAborted();
      const session = sessionDir(id);
      await makeDirDurable(dir);
      try {
        await mkdir(session);
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === 'EEXIST') {
          throw new RegistryError('BLOB_UPLOAD_INVALID', `upload ${id} is staged already`);
        }
        throw error;
      }
      // The metadata last, renamed into place: a session is usable only once it is complete.
      const meta: Meta = { repository: opts.repository, startedAt: opts.startedAt };
      const temp = join(session, 'meta.json.tmp');
      const handle = await open(temp, 'wx', 0o644);
      try {
        await handle.writeFile(JSON.stringify(meta));
        await handle.sync();
      } finally {
        await handle.close();
      }
      await rename(temp, join(session, 'meta.json'));
      await syncDir(session);
      await syncDir(dir);
      return { id, ...meta, size: 0 };
    },

    async stat(id: string, opts: OperationOptions = {}) {
      opts.signal?.throwIfAborted();
      return statOf(id);
    },

    async append(id: string, body: BlobBody, opts: StagingAppendOptions) {
      opts.signal?.throwIfAborted();
      if (!(await readMeta(id))) throw unknown(id);
      const before = await chunksOf(id);
      if (!before) throw unknown(id);
      if (opts.offset !== before.size) throw rangeInvalid(opts.offset, before.size);
      const session = sessionDir(id);
      const temp = join(session, `.${randomBytes(8).toString('hex')}.tmp`);
      const handle = await ifExists(open(temp, 'wx', 0o644));
      if (!handle) throw unknown(id);
      let written: number;
      try {
        written = await writeBody(handle, body, {
          position: 0,
          ...(opts.length === undefined ? {} : { length: opts.length }),
          ...(opts.signal ? { signal: opts.signal } : {}),
        });
        if (durable && written > 0) await handle.sync();
      } catch (error) {
        // the chunk never became visible: the session stays at its old offset
        await handle.close();
        await unlink(temp).catch(() => undefined);
        throw error;
      }
      await handle.close();
      try {
        // an empty chunk adds nothing (and must not take the name the next one needs)
        if (written === 0) return before.size;
        try {
          await link(temp, join(session, chunkName(before.size)));
        } catch (error) {
          const code = (error as NodeJS.ErrnoException).code;
          // another append (in any process) took this offset first
          if (code === 'EEXIST') throw rangeInvalid(opts.offset, (await chunksOf(id))?.size ?? before.size);
          if (code === 'ENOENT') throw unknown(id);
          throw error;
        }
        if (durable) await syncDir(session);
        return before.size + written;
      } finally {
        await unlink(temp).catch(() => undefined);
      }
    },

    async read(id: string, opts: OperationOptions = {}): Promise<Readable> {
      opts.signal?.throwIfAborted();
      if (!(await readMeta(id))) throw unknown(id);
      const data = await chunksOf(id);
      if (!data) throw unknown(id);
      // every chunk opened now, so a session removed while it is read still reads whole
      const handles = [];
      try {
        for (const chunk of data.chunks) handles.push(await open(chunk.file, 'r'));
      } catch (error) {
        for (const handle of handles) await handle.close();
        if ((error as NodeJS.ErrnoException).code === 'ENOENT') throw unknown(id);
        throw error;
      }
      const stream = Readable.from(
        (async function* () {
          try {
            for (const handle of handles) {
              yield* handle.createReadStream({ highWaterMark: 1 << 20, autoClose: false });
            }
          } finally {
            for (const handle of handles) await handle.close().catch(() => undefined);
          }
        })(),
        { objectMode: false },
      );
      return opts.signal ? addAbortSignal(opts.signal, stream) : stream;
    },

    async remove(id: string, opts: OperationOptions = {}) {
      opts.signal?.throwIfAborted();
      if (!isStagingId(id)) return false;
      const session = sessionDir(id);
      if (!(await ifExists(stat(session)))) return false;
      await rm(session, { recursive: true, force: true });
      return true;
    },

    async *list(opts: OperationOptions = {}) {
      const entries = await ifExists(opendir(dir));
      if (!entries) return;
      for await (const entry of entries) {
        opts.signal?.throwIfAborted();
        if (!entry.isDirectory() || !isStagingId(entry.name)) continue;
        const found = await statOf(entry.name);
        if (found) {
          yield found;
          continue;
        }
        // Created up to a crash (no metadata yet): listed with the directory's age, so it can be purged.
        const info = await ifExists(stat(join(dir, entry.name)));
        if (info) yield { id: entry.name, repository: '', startedAt: info.mtimeMs, size: 0 };
      }
    },
  };
}
