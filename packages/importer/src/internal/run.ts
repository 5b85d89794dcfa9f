// The state one importTree call shares between its steps: options, the tree,
// counters, the detailed log, warnings, progress and the retried transaction.
import { appendFile } from 'node:fs/promises';
import { MetadataStore, type Transaction } from '@stowage/metadata-db';
import { type Clock, isStowageError, type LogLevel, retry } from '@stowage/oci';
import { ImportError } from '../errors.js';
import type { DistributionTree } from '../layout.js';
import type { ImportProgress, ResolvedImportOptions } from '../options.js';
import { type ImportWarning, warningKey } from '../warnings.js';

export interface Counters {
  repositories: number;
  tags: number;
  manifests: number;
  blobs: number;
  retries: number;
}

export interface ImportRun {
  readonly options: ResolvedImportOptions;
  readonly tree: DistributionTree;
  /** The store on the database itself; `store.on(tx)` inside a transaction. */
  readonly store: MetadataStore;
  readonly counters: Counters;
  /** Every warning reported, in order, each once. */
  readonly warnings: ImportWarning[];
  /** The repositories the current step goes through, once it has listed them. */
  repositoriesTotal: number | undefined;
  /** One entry of the detailed log (the log file and the logger); nothing is built when neither is set. */
  log(level: LogLevel, fields: () => Record<string, unknown>, message?: string): Promise<void>;
  /** Reports a warning once: kept for the result, to `onWarning`, to the log. */
  warn(warning: ImportWarning): Promise<void>;
  progress(step: ImportProgress['step'], repository?: string): void;
  /** Throws `ABORTED` once the signal fired. */
  checkAbort(): void;
  /**
   * Runs one unit of work in a transaction (or on the dry run's, `run`),
   * retrying retryable failures until `retryBudgetMs` after the first one: a
   * transaction longer than the budget still gets its retries.
   */
  inTransaction<T>(run: Transaction | undefined, work: (tx: Transaction) => Promise<T>): Promise<T>;
}

function aborted(cause?: unknown): ImportError {
  return new ImportError('ABORTED', 'the import was interrupted', cause === undefined ? {} : { cause });
}

export function createRun(options: ResolvedImportOptions, tree: DistributionTree): ImportRun {
  const counters: Counters = { repositories: 0, tags: 0, manifests: 0, blobs: 0, retries: 0 };
  const warnings: ImportWarning[] = [];
  const warned = new Set<string>();
  const { db, clock, signal, logger, logFile } = options;

  async function log(level: LogLevel, fields: () => Record<string, unknown>, message?: string) {
    if (!options.logging) return;
    const entry = fields();
    if (message === undefined) logger[level](entry);
    else logger[level](entry, message);
    if (logFile) {
      const line = {
        time: new Date().toISOString(),
        level,
        ...(message === undefined ? {} : { msg: message }),
        ...entry,
      };
      await appendFile(logFile, `${JSON.stringify(line)}\n`);
    }
  }

  /** The waits between attempts, cut short (as `ABORTED`, caused by the failure it was to retry) when the signal fires. */
  function waitsAfter(last: () => unknown): Clock {
    if (!signal) return clock;
    return {
      now: () => clock.now(),
      sleep: (ms) =>
        clock.sleep(ms, signal).catch((error: unknown) => {
          throw signal.aborted ? aborted(last()) : error;
        }),
    };
  }

  const run: ImportRun = {
    options,
    tree,
    store: new MetadataStore(db),
    counters,
    warnings,
    repositoriesTotal: undefined,
    log,

    async warn(warning) {
      const key = warningKey(warning);
      if (warned.has(key)) return;
      warned.add(key);
      warnings.push(warning);
      options.onWarning?.(warning);
      await log('warn', () => ({ ...warning }));
    },

    progress(step, repository) {
      options.onProgress?.({
        step,
        ...(repository ? { repository } : {}),
        repositoriesDone: counters.repositories,
        ...(run.repositoriesTotal === undefined ? {} : { repositoriesTotal: run.repositoriesTotal }),
        tagsDone: counters.tags,
        blobsDone: counters.blobs,
      });
    },

    checkAbort() {
      if (signal?.aborted) throw aborted();
    },

    async inTransaction(tx, work) {
      if (tx) return work(tx);
      let deadline: number | undefined;
      let lastFailure: unknown;
      // the log line of a retry is written before the next attempt starts
      let logged: Promise<void> = Promise.resolve();
      return retry(
        async () => {
          await logged;
          return db.transaction((t) => work(t));
        },
        {
          attempts: Number.POSITIVE_INFINITY,
          baseDelayMs: 100,
          maxDelayMs: 5_000,
          clock: waitsAfter(() => lastFailure),
          shouldRetry: (error) => {
            deadline ??= clock.now() + options.retryBudgetMs;
            return isStowageError(error) && error.retryable && clock.now() < deadline && !signal?.aborted;
          },
          onRetry: ({ error }) => {
            lastFailure = error;
            counters.retries++;
            logged = log(
              'warn',
              () => ({ error: String(error) }),
              'retrying after a transient database error',
            );
            // awaited by the next attempt; a failure to write it is that attempt's failure
            logged.catch(() => undefined);
          },
        },
      );
    },
  };
  return run;
}
