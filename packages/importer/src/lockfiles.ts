import { readFile, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
// Our own mkdir -p: Node 20's recursive mkdir loops for ever where a parent refuses the entry (/proc).
import { mkdir } from '@stowage/blob-store';
import { ImportError } from './errors.js';

const LOCK_CONTENT = '{"version":1}';

/** GitLab's lockfiles, at `<root>/docker/registry/lockfiles/`, with its state machine. */
export class Lockfiles {
  readonly dir: string;
  constructor(registryDir: string) {
    this.dir = join(registryDir, 'lockfiles');
  }

  async #exists(name: string): Promise<boolean> {
    try {
      return !(await stat(join(this.dir, name))).isDirectory();
    } catch {
      return false;
    }
  }

  filesystemInUse(): Promise<boolean> {
    return this.#exists('filesystem-in-use');
  }

  databaseLocked(): Promise<boolean> {
    return this.#exists('database-in-use');
  }

  /** After a successful import: the database holds the metadata now. */
  async databaseInUse(): Promise<void> {
    await mkdir(this.dir, { recursive: true });
    await rm(join(this.dir, 'filesystem-in-use'), { force: true });
    await writeFile(join(this.dir, 'database-in-use'), LOCK_CONTENT);
  }

  /** After a failed import or a dry run: the filesystem still holds the metadata. */
  async restore(dryRun: boolean): Promise<void> {
    if (dryRun && (await this.databaseLocked())) {
      throw new ImportError('LOCKFILE', 'could not restore lockfiles: database-in-use lockfile exists');
    }
    await mkdir(this.dir, { recursive: true });
    await rm(join(this.dir, 'database-in-use'), { force: true });
    await writeFile(join(this.dir, 'filesystem-in-use'), LOCK_CONTENT);
  }

  async read(name: 'filesystem-in-use' | 'database-in-use'): Promise<string | undefined> {
    try {
      return await readFile(join(this.dir, name), 'utf8');
    } catch {
      return undefined;
    }
  }
}
