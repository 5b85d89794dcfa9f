import { randomBytes } from 'node:crypto';
import { mkdir, open, rename, rm, unlink, utimes } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

/** fsyncs a file or directory by path. */
export async function fsyncPath(path: string): Promise<void> {
  const handle = await open(path, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** Per directory: the fsync running, and the one not started yet that new callers share. */
const dirSyncs = new Map<string, { running?: Promise<void>; queued?: Promise<void> }>();

/**
 * fsyncs a directory so a rename or unlink inside it survives a crash.
 *
 * Concurrent callers share fsyncs (group commit). A caller is only ever handed an
 * fsync that starts after its call, so its change is covered: while one runs, the
 * callers arriving share the next, queued behind it. Sixteen tag writes at once
 * into one repository cost two directory fsyncs instead of sixteen.
 */
export function syncDir(dir: string): Promise<void> {
  let state = dirSyncs.get(dir);
  if (!state) {
    state = {};
    dirSyncs.set(dir, state);
  }
  if (state.queued) return state.queued;
  const own = state;
  const sync: Promise<void> = (own.running ?? Promise.resolve())
    .catch(() => undefined)
    .then(() => {
      own.queued = undefined;
      own.running = sync;
      return fsyncPath(dir);
    })
    .finally(() => {
      if (own.running !== sync) return;
      own.running = undefined;
      if (!own.queued && dirSyncs.get(dir) === own) dirSyncs.delete(dir);
    });
  own.queued = sync;
  return sync;
}

/** Sets a file's times to now (on a hard link, its inode's); false when it is not there. */
export async function touch(path: string): Promise<boolean> {
  const now = new Date();
  try {
    await utimes(path, now, now);
    return true;
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return false;
    throw error;
  }
}

/** A temporary name beside `path`, on the same filesystem. */
export function tempBeside(path: string): string {
  return join(dirname(path), `.${basename(path)}.${randomBytes(6).toString('hex')}.tmp`);
}

/** Replaces `path` atomically: write a temp file, fsync it, rename it over, fsync the directory. */
export async function writeFileAtomic(path: string, data: Uint8Array | string): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  const temp = tempBeside(path);
  const handle = await open(temp, 'wx', 0o644);
  try {
    await handle.writeFile(data);
    await handle.sync();
  } catch (error) {
    await handle.close();
    await rm(temp, { force: true });
    throw error;
  }
  await handle.close();
  await rename(temp, path);
  await syncDir(dirname(path));
}

/** `undefined` for ENOENT (and ENOTDIR), rethrows anything else. */
export async function ifExists<T>(work: Promise<T>): Promise<T | undefined> {
  try {
    return await work;
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return undefined;
    throw error;
  }
}

/** Unlinks a file; false when it was not there. */
export async function unlinkIfExists(path: string): Promise<boolean> {
  try {
    await unlink(path);
    return true;
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return false;
    throw error;
  }
}
