import { open, opendir } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { addAbortSignal, type Readable } from 'node:stream';
import { type BlobBody, type OperationOptions, RegistryError } from '@stowage/oci';
import { ifExists, makeDirDurable, syncDir } from './durable-fs.js';
import { BlobStoreOptionsError } from './errors.js';
import { writeBody } from './internal/body.js';
import { mkdir, readFile, rename, rm, stat } from './quick-fs.js';
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

/**
 * A staging area on disk: `<dir>/<id>/data` holds a session's bytes in order,
 * `<dir>/<id>/meta.json` its repository and start time. The session's size is
 * the size of `data`; an append that fails midway truncates `data` back, so
 * the session stays at its old offset.
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

  async function statOf(id: string): Promise<StagedUpload | undefined> {
    if (!isStagingId(id)) return undefined;
    const meta = await readMeta(id);
    if (!meta) return undefined;
    const data = await ifExists(stat(join(sessionDir(id), 'data')));
    return data && { id, repository: meta.repository, startedAt: meta.startedAt, size: data.size };
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
      const data = await open(join(session, 'data'), 'wx', 0o644);
      await data.close();
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
      const handle = await ifExists(open(join(sessionDir(id), 'data'), 'r+'));
      if (!handle) throw unknown(id);
      try {
        const start = (await handle.stat()).size;
        if (opts.offset !== start) {
          throw new RegistryError(
            'RANGE_INVALID',
            `chunk starts at ${opts.offset}, the upload is at ${start}`,
            {
              details: { offset: start, requested: opts.offset },
            },
          );
        }
        let position = start;
        try {
          position += await writeBody(handle, body, {
            position,
            ...(opts.length === undefined ? {} : { length: opts.length }),
            ...(opts.signal ? { signal: opts.signal } : {}),
          });
          if (durable) await handle.sync();
        } catch (error) {
          // Whatever part of the chunk reached the file goes: the session stays at its old offset.
          await handle.truncate(start);
          if (durable) await handle.sync();
          throw error;
        }
        return position;
      } finally {
        await handle.close();
      }
    },

    async read(id: string, opts: OperationOptions = {}): Promise<Readable> {
      opts.signal?.throwIfAborted();
      if (!(await readMeta(id))) throw unknown(id);
      const handle = await ifExists(open(join(sessionDir(id), 'data'), 'r'));
      if (!handle) throw unknown(id);
      const stream = handle.createReadStream({ highWaterMark: 1 << 20 });
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
