import { randomBytes } from 'node:crypto';
import { chmod, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
// Our own mkdir -p: Node 20's recursive mkdir loops for ever where a parent refuses the entry (/proc).
import { mkdir } from '@stowage/blob-store';
import type { LockManager } from '../locks/index.js';

/**
 * Writes `data` to `path` so a reader sees the old file or the new one, never
 * a part: a temporary file beside it, then a rename. Directories are created
 * (mode 0777 before the umask, as Go's `os.ModePerm`); the file gets 0644.
 */
export async function writeFileAtomic(path: string, data: string): Promise<void> {
  const dir = dirname(path);
  await mkdir(dir, { recursive: true, mode: 0o777 });
  const temporary = join(dir, `.${basename(path)}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
  try {
    await writeFile(temporary, data, { mode: 0o644 });
    await chmod(temporary, 0o644);
    await rename(temporary, path);
  } catch (error) {
    await rm(temporary, { force: true });
    throw error;
  }
}

/** The file's text, or undefined when there is none. */
export async function readFileIfExists(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
}

/** Runs `fn` holding the exclusive lock `name` when a lock manager is given. */
export async function withLock<T>(
  locks: LockManager | undefined,
  name: string,
  fn: () => Promise<T>,
  signal?: AbortSignal,
): Promise<T> {
  if (!locks) return await fn();
  const handle = await locks.acquire(name, signal ? { signal } : {});
  try {
    return await fn();
  } finally {
    await handle.release();
  }
}
