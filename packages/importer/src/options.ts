import type { Database } from '@stowage/metadata-db';
import { type Clock, type Logger, type ResolvedLogger, resolveLogger, systemClock } from '@stowage/oci';
import { ImportError } from './errors.js';
import type { ImportWarning } from './warnings.js';

export type ImportMode = 'full' | 'pre-import' | 'import' | 'blobs';

export interface ImportProgress {
  readonly step: 'pre-import' | 'import' | 'blobs';
  readonly repository?: string;
  readonly repositoriesDone: number;
  /** How many repositories this step goes through (known once the tree has been listed). */
  readonly repositoriesTotal?: number;
  readonly tagsDone: number;
  readonly blobsDone: number;
}

export interface ImportOptions {
  readonly db: Database;
  /**
   * The registry's storage root (`rootdirectory`), or its `docker/registry/v2`.
   * Anything else (a missing path, a file, an OCI image layout, a directory
   * without `docker/registry/v2/repositories` or `blobs`) fails with
   * `NOT_A_DISTRIBUTION_TREE` before anything is read from the database or written.
   */
  readonly root: string;
  /** Default `full`: pre-import, import, common blobs, in that order. */
  readonly mode?: ImportMode;
  /**
   * Only these repositories (pre-import and import). One the tree does not
   * hold fails the import with `NAME_UNKNOWN` before anything is written.
   * Lockfiles are left alone: part of the registry is not all of it.
   */
  readonly repositories?: readonly string[];
  /** Everything in one transaction, rolled back at the end. Lockfiles are neither read nor written. */
  readonly dryRun?: boolean;
  /** Tag links read at once per repository: a positive integer (1–5 in GitLab). Default 4. */
  readonly tagConcurrency?: number;
  /** Skip pre-importing repositories pre-imported more recently than this. Default 0 (never skip). */
  readonly preImportSkipRecentMs?: number;
  /** Configuration payloads up to this size are stored. Default 256,000 bytes, as GitLab. */
  readonly configPayloadLimit?: number;
  /**
   * A repository's transaction failing with a retryable error is retried until
   * this long after its first failure (however long the attempt itself took). Default 60 s.
   */
  readonly retryBudgetMs?: number;
  /** Time for the retry budget and the waits between attempts. Default: the system clock. */
  readonly clock?: Clock;
  /** Stops between repositories and tags, and cuts a wait between retries short; the repository in progress is rolled back. */
  readonly signal?: AbortSignal;
  /** Write GitLab's lockfiles (`filesystem-in-use`, `database-in-use`). Default true, but never with `repositories` nor in a dry run. */
  readonly lockfiles?: boolean;
  /** Detailed JSON lines log. */
  readonly logFile?: string;
  /** Receives each entry of the detailed log as it is written (with or without `logFile`), pino-style: fields first, then the message. */
  readonly logger?: Logger;
  /** Called once a repository's transaction committed (dry run: once its work is done), never for one rolled back. */
  readonly onWarning?: (warning: ImportWarning) => void;
  readonly onProgress?: (progress: ImportProgress) => void;
  /** Record an `import_statistics` row. Default true (never in a dry run). */
  readonly statistics?: boolean;
}

/** `ImportOptions` with every default filled in and every conflict settled. */
export interface ResolvedImportOptions {
  readonly db: Database;
  readonly root: string;
  readonly mode: ImportMode;
  readonly dryRun: boolean;
  readonly repositories: readonly string[] | undefined;
  readonly tagConcurrency: number;
  readonly preImportSkipRecentMs: number;
  readonly configPayloadLimit: number;
  readonly retryBudgetMs: number;
  readonly clock: Clock;
  readonly signal: AbortSignal | undefined;
  /** Whether this run maintains the lockfiles: asked for, not a dry run, a mode that imports tags, the whole registry. */
  readonly lockfiles: boolean;
  readonly logFile: string | undefined;
  /** Whether anything listens to the detailed log (a file or a logger): when not, entries are not even built. */
  readonly logging: boolean;
  readonly logger: ResolvedLogger;
  readonly onWarning: ((warning: ImportWarning) => void) | undefined;
  readonly onProgress: ((progress: ImportProgress) => void) | undefined;
  /** Whether to record an `import_statistics` row (never in a dry run). */
  readonly statistics: boolean;
}

/** Defaults and checks of `importTree`'s options; throws `OPTIONS_INVALID` before anything is read. */
export function resolveOptions(options: ImportOptions): ResolvedImportOptions {
  const mode = options.mode ?? 'full';
  const dryRun = options.dryRun ?? false;
  const tagConcurrency = options.tagConcurrency ?? 4;
  if (!Number.isInteger(tagConcurrency) || tagConcurrency < 1) {
    throw new ImportError(
      'OPTIONS_INVALID',
      `tagConcurrency must be a positive integer, not ${tagConcurrency}`,
      {
        details: { tagConcurrency },
      },
    );
  }
  return {
    db: options.db,
    root: options.root,
    mode,
    dryRun,
    repositories: options.repositories,
    tagConcurrency,
    preImportSkipRecentMs: options.preImportSkipRecentMs ?? 0,
    configPayloadLimit: options.configPayloadLimit ?? 256_000,
    retryBudgetMs: options.retryBudgetMs ?? 60_000,
    clock: options.clock ?? systemClock,
    signal: options.signal,
    // importing some repositories does not move the registry to the database, and a dry run moves
    // nothing (GitLab's dry run rewrites filesystem-in-use, or fails after a completed import): lockfiles
    // stay as they are
    lockfiles:
      (options.lockfiles ?? true) &&
      !dryRun &&
      (mode === 'full' || mode === 'import') &&
      options.repositories === undefined,
    logFile: options.logFile || undefined,
    logging: Boolean(options.logFile) || options.logger !== undefined,
    logger: resolveLogger(options.logger),
    onWarning: options.onWarning,
    onProgress: options.onProgress,
    statistics: (options.statistics ?? true) && !dryRun,
  };
}
