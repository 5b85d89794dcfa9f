import { randomBytes } from 'node:crypto';
import { closeSync, open, writeSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { fsyncFd, mkdir, readFile, unlink } from '@stowage/blob-store';
import type { ResolvedLogger } from '@stowage/oci';
import { ifExists, syncDir } from './fs-utils.js';
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
 * Pending-index journal: before a repository's tags change, its name is in
 * a durable journal of this process under `.stowage/pending-index`
 * (`<pid>-<random>`, one name per line, appended and fdatasynced; names
 * arriving while one append syncs share the next). Once every `index.json`
 * has caught up with every change begun, the journal is removed and the next
 * change starts another. A process killed in between leaves its journal, and
 * the next store opened on the root rebuilds the `index.json` of each name in
 * it (`recover`), so a crash cannot leave the OCI layout view stale. One file
 * per quiet period, not one per repository: creating files is the dear part.
 */
export class IndexFlusher {
  readonly #o: IndexFlusherOptions;
  readonly #dirty = new Set<string>();
  #timer: NodeJS.Timeout | undefined;
  /** Flushes run one after another, so `close()` waits for one a timer started. */
  #flushing: Promise<void> = Promise.resolve();
  readonly #inFlight = new Map<string, number>();
  #journal: PendingJournal | undefined;

  constructor(options: IndexFlusherOptions) {
    this.#o = options;
  }

  /** Runs a change of a repository's tags: its name is durable in the journal first, its `index.json` is due after. */
  async changing<T>(repository: string, work: () => Promise<T>): Promise<T> {
    this.#inFlight.set(repository, (this.#inFlight.get(repository) ?? 0) + 1);
    try {
      this.#journal ??= new PendingJournal(this.#o.paths.internal('pending-index'));
      await this.#journal.note(repository);
      return await work();
    } finally {
      const left = (this.#inFlight.get(repository) ?? 1) - 1;
      if (left > 0) this.#inFlight.set(repository, left);
      else this.#inFlight.delete(repository);
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
      const text = await ifExists(readFile(path, 'utf8'));
      // One name per line (a line torn by the crash is not a valid name, and was never acted on).
      for (const repository of new Set((text ?? '').split('\n'))) {
        if (!repository || !layouts.validName(repository)) continue;
        logger.warn({ repository }, 'rebuilding an index.json a stopped process left behind its tags');
        await layouts.writeIndex(repository);
      }
      await ifExists(unlink(path));
    }
  }

  async #flushNow(): Promise<void> {
    const pending = [...this.#dirty];
    this.#dirty.clear();
    for (const repository of pending) await this.#o.layouts.writeIndex(repository);
    // The journal goes once every index.json has caught up with every change begun so far.
    const journal = this.#journal;
    if (journal && this.#dirty.size === 0 && this.#inFlight.size === 0) {
      this.#journal = undefined;
      await journal.remove();
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

/** This process's pending-index journal: repository names appended durably, each once. */
class PendingJournal {
  readonly #dir: string;
  readonly #path: string;
  #fd: Promise<number> | undefined;
  /** Per name, the append that makes it durable. */
  readonly #noted = new Map<string, Promise<void>>();
  /** Names waiting for the next append, and the promise that append settles. */
  #queued: { names: string[]; done: Promise<void>; settle: (error?: unknown) => void } | undefined;
  #appending: Promise<void> = Promise.resolve();

  constructor(dir: string) {
    this.#dir = dir;
    this.#path = join(dir, `${process.pid}-${randomBytes(8).toString('hex')}`);
  }

  note(repository: string): Promise<void> {
    let noted = this.#noted.get(repository);
    if (!noted) {
      noted = this.#enqueue(repository);
      this.#noted.set(repository, noted);
      // A failed append is retried by the next change of that repository.
      noted.catch(() => this.#noted.delete(repository));
    }
    return noted;
  }

  #enqueue(repository: string): Promise<void> {
    if (!this.#queued) {
      let settle!: (error?: unknown) => void;
      const done = new Promise<void>((resolve, reject) => {
        settle = (error) => (error === undefined ? resolve() : reject(error));
      });
      const batch = { names: [] as string[], done, settle };
      this.#queued = batch;
      // After the append running now: every name queued meanwhile goes in one write and one sync.
      this.#appending = this.#appending.then(async () => {
        this.#queued = undefined;
        try {
          const fd = await this.#open();
          writeSync(fd, `${batch.names.join('\n')}\n`);
          await fsyncFd(fd);
          batch.settle();
        } catch (error) {
          batch.settle(error);
        }
      });
    }
    this.#queued.names.push(repository);
    return this.#queued.done;
  }

  #open(): Promise<number> {
    this.#fd ??= (async () => {
      await mkdir(this.#dir, { recursive: true });
      const fd = await new Promise<number>((resolve, reject) =>
        open(this.#path, 'a', 0o644, (error, value) => (error ? reject(error) : resolve(value))),
      );
      // Its directory entry is durable before any change it covers.
      await syncDir(this.#dir);
      return fd;
    })();
    this.#fd.catch(() => {
      this.#fd = undefined;
    });
    return this.#fd;
  }

  /** Every change it names has reached its index.json: closed and removed. */
  async remove(): Promise<void> {
    await this.#appending;
    const fd = await this.#fd?.catch(() => undefined);
    if (fd === undefined) return;
    closeSync(fd);
    await ifExists(unlink(this.#path));
  }
}
