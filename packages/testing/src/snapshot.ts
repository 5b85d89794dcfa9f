import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';

export interface SnapshotOptions {
  /** A path below the directory to leave out, with everything under it. */
  readonly skip?: string;
  /**
   * Whether a directory's mtime counts (default true). Off where a reader may
   * take and release a lock inside a directory, which changes its mtime and
   * nothing else.
   */
  readonly directoryTimes?: boolean;
}

/**
 * Every path under `dir` with its kind, mode, size and mtime, in a stable
 * order: compare two snapshots to prove a command wrote, created or removed
 * nothing. A missing `dir` is an empty snapshot.
 */
export async function snapshotTree(dir: string, options: SnapshotOptions = {}): Promise<string[]> {
  const entries: string[] = [];
  const walk = async (path: string, relative: string): Promise<void> => {
    if (options.skip !== undefined && path === options.skip) return;
    const info = await stat(path).catch(() => undefined);
    if (!info) return;
    if (info.isDirectory()) {
      entries.push(`${relative}/ ${info.mode}${options.directoryTimes === false ? '' : ` ${info.mtimeMs}`}`);
      for (const name of (await readdir(path)).sort()) await walk(join(path, name), `${relative}/${name}`);
    } else {
      entries.push(`${relative} ${info.mode} ${info.size} ${info.mtimeMs}`);
    }
  };
  await walk(dir, '.');
  return entries;
}
