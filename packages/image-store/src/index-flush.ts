import { randomBytes } from 'node:crypto';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { readFile, unlink } from '@stowage/blob-store';
import type { ResolvedLogger } from '@stowage/oci';
import { ifExists, writeFileAtomic } from './fs-utils.js';
import type { Layouts } from './layout.js';
import { processAlive } from './lock.js';
import type { StorePaths } from './paths.js';

export interface IndexFlusherOptions {
  readonly paths: StorePaths;
  readonly layouts: Layouts;
  /** How long a repository's `index.json` may lag behind its tags. */
  readonly delayMs: number;
  readonly logger: ResolvedLogger;
}

/**
 * Keeps each repository's `index.json` caught up with its tags, in batches: a
 * tag write costs O(1), and `index.json` (O(tags) to write) is regenerated at
 * most `delayMs` after the last change, and on `flush()`.
 *
 * Pending-index markers: before a repository's tags change, a durable marker
 * names it under `.stowage/pending-index`, and the flush that brings its
 * `index.json` up to date removes it. A process killed in between leaves the
 * marker, and the next store opened on the root rebuilds that `index.json`
 * (`recover`), so a crash cannot leave the OCI layout view stale.
 */
export class IndexFlusher {
  readonly #o: IndexFlusherOptions;
  readonly #dirty = new Set<string>();
  #timer: NodeJS.Timeout | undefined;
  /** Flushes run one after another, so `close()` waits for one a timer started. */
  #flushing: Promise<void> = Promise.resolve();
  readonly #markers = new Map<string, Promise<string>>();
  readonly #inFlight = new Map<string, number>();

  constructor(options: IndexFlusherOptions) {
    this.#o = options;
  }

  /** Runs a change of a repository's tags: its marker is durable first, its `index.json` is due after. */
  async changing<T>(repository: string, work: () => Promise<T>): Promise<T> {
    this.#inFlight.set(repository, (this.#inFlight.get(repository) ?? 0) + 1);
    try {
      let marker = this.#markers.get(repository);
      if (!marker) {
        marker = (async () => {
          const name = `${process.pid}-${randomBytes(8).toString('hex')}`;
          const path = this.#o.paths.internal('pending-index', name);
          await writeFileAtomic(path, repository);
          return path;
        })();
        this.#markers.set(repository, marker);
        marker.catch(() => this.#markers.delete(repository));
      }
      await marker;
      return await work();
    } finally {
      this.#inFlight.set(repository, (this.#inFlight.get(repository) ?? 1) - 1);
      this.#markDirty(repository);
    }
  }

  /** Writes every pending `index.json` now. */
  flush(): Promise<void> {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
    const run = this.#flushing.catch(() => undefined).then(() => this.#flushNow());
    this.#flushing = run;
    return run;
  }

  /** Rebuilds the `index.json` of repositories whose changes a dead process never flushed. */
  async recover(): Promise<void> {
    const { paths, layouts, logger } = this.#o;
    const dir = paths.internal('pending-index');
    for (const name of (await ifExists(readdir(dir))) ?? []) {
      const pid = Number(name.split('-')[0]);
      if (Number.isInteger(pid) && pid > 0 && pid !== process.pid && processAlive(pid)) continue;
      const path = join(dir, name);
      const repository = await ifExists(readFile(path, 'utf8'));
      if (repository !== undefined && layouts.validName(repository)) {
        logger.warn({ repository }, 'rebuilding an index.json a stopped process left behind its tags');
        await layouts.writeIndex(repository);
      }
      await ifExists(unlink(path));
    }
  }

  async #flushNow(): Promise<void> {
    const pending = [...this.#dirty];
    this.#dirty.clear();
    for (const repository of pending) {
      await this.#o.layouts.writeIndex(repository);
      // The marker goes once index.json has caught up with every change begun so far.
      const marker = this.#markers.get(repository);
      if (marker && !this.#dirty.has(repository) && !this.#inFlight.get(repository)) {
        this.#markers.delete(repository);
        await ifExists(unlink(await marker));
      }
    }
  }

  #markDirty(repository: string): void {
    this.#dirty.add(repository);
    if (!this.#timer) {
      this.#timer = setTimeout(() => void this.flush().catch(() => undefined), this.#o.delayMs);
      this.#timer.unref();
    }
  }
}
