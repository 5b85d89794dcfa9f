import { randomBytes } from 'node:crypto';
import { basename, dirname, join } from 'node:path';
import { isMissing, mkdir, rename, syncDir, utimes, writeFileDurable } from '@stowage/blob-store';

// fsyncs, the per-directory group commit and the missing-path helpers are blob-store's
// durability helpers: one `syncDir` shared with the content store's commits.
export { fsyncPath, ifExists, syncDir, unlinkIfExists } from '@stowage/blob-store';

/** Sets a file's times to now (on a hard link, its inode's); false when it is not there. */
export async function touch(path: string): Promise<boolean> {
  const now = new Date();
  try {
    await utimes(path, now, now);
    return true;
  } catch (error) {
    if (isMissing(error)) return false;
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
  await writeFileDurable(temp, data);
  await rename(temp, path);
  await syncDir(dirname(path));
}
