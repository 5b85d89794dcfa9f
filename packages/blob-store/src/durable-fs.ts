import { closeSync, openSync } from 'node:fs';
import { dirname } from 'node:path';
import { fsyncFd, mkdir, unlink } from './quick-fs.js';

/**
 * Low-level durability helpers for stores that keep their state in files:
 * the pieces the file blob store commits with, exported so that a store built
 * on it (the image store) fsyncs and tolerates missing paths the same way,
 * sharing one group commit per directory with it. Paths only; no blob
 * semantics.
 */

/** True for the errors a missing file or directory gives. */
export function isMissing(error: unknown): boolean {
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  return code === 'ENOENT' || code === 'ENOTDIR';
}

/** The value of `work`, or `undefined` when it failed because a path does not exist. */
export async function ifExists<T>(work: Promise<T>): Promise<T | undefined> {
  try {
    return await work;
  } catch (error) {
    if (isMissing(error)) return undefined;
    throw error;
  }
}

/** Unlinks a file; false when it was not there. */
export async function unlinkIfExists(path: string): Promise<boolean> {
  return (await ifExists(unlink(path).then(() => true))) ?? false;
}

/** fsyncs a file or directory by path. */
export async function fsyncPath(path: string): Promise<void> {
  // opened and closed in place (cheap); only the fsync, which waits on the disk, goes to the pool
  const fd = openSync(path, 'r');
  try {
    await fsyncFd(fd);
  } finally {
    closeSync(fd);
  }
}

/** Per directory, the fsync not yet started that new callers join. */
const pendingSyncs = new Map<string, Promise<void>>();
/** Per directory, the fsync running now. */
const runningSyncs = new Map<string, Promise<void>>();

/**
 * fsyncs a directory so the entries just linked, renamed or unlinked in it
 * survive a crash. Callers arriving while an fsync runs share the next one,
 * which starts after it (an fsync that began before a caller's change would
 * not cover it), so a burst of writes into one directory costs two fsyncs.
 */
export function syncDir(dir: string): Promise<void> {
  const pending = pendingSyncs.get(dir);
  if (pending) return pending;
  const before = runningSyncs.get(dir) ?? Promise.resolve();
  const next: Promise<void> = before
    .catch(() => undefined)
    .then(() => {
      pendingSyncs.delete(dir);
      runningSyncs.set(dir, next);
      return fsyncPath(dir);
    })
    .finally(() => {
      if (runningSyncs.get(dir) === next) runningSyncs.delete(dir);
    });
  pendingSyncs.set(dir, next);
  return next;
}

/**
 * Creates a directory and its missing parents, and fsyncs the parent of each
 * directory it created so the new entries survive a crash.
 */
export async function makeDirDurable(dir: string): Promise<void> {
  const first = await mkdir(dir, { recursive: true });
  if (first === undefined) return;
  let created = dir;
  for (;;) {
    await syncDir(dirname(created));
    if (created === first || dirname(created) === created) return;
    created = dirname(created);
  }
}
