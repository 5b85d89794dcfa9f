import * as fs from 'node:fs';
import { dirname, resolve } from 'node:path';

/**
 * The cheap filesystem calls of a store's metadata path, made synchronously
 * behind the promise signatures of `node:fs/promises`.
 *
 * Why: each `fs/promises` call is a round trip through libuv's thread pool.
 * On the 2-core VMs this project is measured on, that round trip costs
 * 70-190 µs of wall time and most of it in system CPU (thread wake-ups), while
 * the `stat`, `rename` or `mkdir` itself costs 5-10 µs against the page cache:
 * 2,000 sequential `stat`s take 150 ms through the pool and 11 ms without it.
 * A sync pass makes thousands of such calls; a manifest GET makes several.
 *
 * What stays asynchronous: anything that waits on the disk (`fsync`), moves
 * blob content, or makes a new inode (`mkdir`, `writeFile`, `writeFileDurable`'s
 * create). Allocating an inode is not a page-cache operation: on the ext4
 * volumes measured here it costs 0.1-0.8 ms (ext4 searches the inode bitmap and,
 * without a journal, skips every recently deleted inode), so a sync pass making
 * ~500 of them on the main thread spent 40% of that thread there, stalling every
 * socket read meanwhile; in the pool they overlap with the rest. `readFile` and `writeFile` here are for small metadata files
 * only, never blobs; a recursive `rm` for directories of a few entries (an
 * upload session, a lock). Listings (`readdir`, of 10,000 tags perhaps) and
 * walks of large trees (GC, fsck) stay with `node:fs/promises`.
 * Errors are the same `ErrnoException`s, as rejections, so callers (and
 * `ifExists`) treat them exactly as before.
 */
function attempt<T>(work: () => T): Promise<T> {
  try {
    return Promise.resolve(work());
  } catch (error) {
    return Promise.reject(error);
  }
}

export const stat = (path: string): Promise<fs.Stats> => attempt(() => fs.statSync(path));

export const lstat = (path: string): Promise<fs.Stats> => attempt(() => fs.lstatSync(path));

export const mkdir = (path: string, options?: fs.MakeDirectoryOptions): Promise<string | undefined> =>
  options?.recursive ? mkdirParents(path, options.mode) : fs.promises.mkdir(path, options);

/**
 * `mkdir -p`, answering the first directory it created as `fs.mkdir` does. Not
 * Node's own recursive mkdir: that one loops for ever (Node 20) where a parent
 * exists but refuses the new entry with ENOENT, as /proc does (`--root /proc/x`
 * hung the CLI); here each level is made once and the refusal is thrown. The
 * checks are synchronous (page-cache lookups); the creations go to the pool.
 */
async function mkdirParents(path: string, mode: fs.Mode | undefined): Promise<string | undefined> {
  const missing: string[] = [];
  for (let dir = resolve(path); ; ) {
    try {
      if (fs.statSync(dir).isDirectory()) break;
      // shaped as Node's own errors (code, syscall, path), so callers that map them see one
      throw Object.assign(new Error(`ENOTDIR: not a directory, mkdir '${dir}'`), {
        code: 'ENOTDIR',
        errno: -20,
        syscall: 'mkdir',
        path: dir,
      });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    }
    missing.push(dir);
    const parent = dirname(dir);
    if (parent === dir) break;
    dir = parent;
  }
  let first: string | undefined;
  for (const dir of missing.reverse()) {
    try {
      await fs.promises.mkdir(dir, mode === undefined ? {} : { mode });
      first ??= dir;
    } catch (error) {
      // made meanwhile by someone else: the same outcome
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST' || !fs.statSync(dir).isDirectory()) throw error;
    }
  }
  return first;
}

export const rename = (from: string, to: string): Promise<void> => attempt(() => fs.renameSync(from, to));

export const link = (existing: string, path: string): Promise<void> =>
  attempt(() => fs.linkSync(existing, path));

export const unlink = (path: string): Promise<void> => attempt(() => fs.unlinkSync(path));

export const utimes = (path: string, atime: Date, mtime: Date): Promise<void> =>
  attempt(() => fs.utimesSync(path, atime, mtime));

/** A small metadata file's text or bytes. */
export function readFile(path: string): Promise<Buffer>;
export function readFile(path: string, encoding: 'utf8'): Promise<string>;
export function readFile(path: string, encoding?: 'utf8'): Promise<Buffer | string> {
  return attempt(() => (encoding ? fs.readFileSync(path, encoding) : fs.readFileSync(path)));
}

/** Writes a small metadata file (no fsync: callers that need one use `writeFileDurable`); in the pool, as it may create one. */
export const writeFile = (
  path: string,
  data: string | Uint8Array,
  options: { readonly flag?: string; readonly mode?: number } = {},
): Promise<void> => fs.promises.writeFile(path, data, options);

/** `rm` of a file or of a directory of a few entries. */
export const rm = (path: string, options: fs.RmOptions = {}): Promise<void> =>
  attempt(() => fs.rmSync(path, options));

/** fsync of an open descriptor, in the thread pool: it waits on the disk. */
export function fsyncFd(fd: number): Promise<void> {
  return new Promise((resolve, reject) => fs.fsync(fd, (error) => (error ? reject(error) : resolve())));
}

/**
 * Creates `path` (failing when it exists, like flag `wx`), writes `data`,
 * fsyncs it and closes it; on a failure the file is removed again.
 */
export async function writeFileDurable(path: string, data: string | Uint8Array, mode = 0o644): Promise<void> {
  const fd = await openFd(path, 'wx', mode);
  try {
    fs.writeFileSync(fd, data);
    await fsyncFd(fd);
  } catch (error) {
    fs.closeSync(fd);
    fs.rmSync(path, { force: true });
    throw error;
  }
  fs.closeSync(fd);
}

/** `open` in the thread pool (a create allocates an inode), answering the bare descriptor. */
function openFd(path: string, flags: string, mode: number): Promise<number> {
  return new Promise((resolve, reject) =>
    fs.open(path, flags, mode, (error, fd) => (error ? reject(error) : resolve(fd))),
  );
}
