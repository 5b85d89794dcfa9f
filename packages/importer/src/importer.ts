import { join } from 'node:path';
// Our own mkdir -p: Node 20's recursive mkdir loops for ever where a parent refuses the entry (/proc).
import { mkdir } from '@stowage/blob-store';
import { assertMigrated, type RowCounts, type Transaction } from '@stowage/metadata-db';
import { ImportError } from './errors.js';
import { importBlobs } from './internal/blobs.js';
import { eachRepository, importRepository } from './internal/repository.js';
import { createRun, type ImportRun } from './internal/run.js';
import { openDistributionTree } from './layout.js';
import { Lockfiles } from './lockfiles.js';
import { type ImportMode, type ImportOptions, resolveOptions } from './options.js';
import type { ImportWarning } from './warnings.js';

export interface ImportResult {
  readonly mode: ImportMode;
  readonly dryRun: boolean;
  readonly repositories: number;
  readonly tags: number;
  readonly manifests: number;
  readonly blobs: number;
  readonly warnings: readonly ImportWarning[];
  readonly retries: number;
  readonly durationMs: number;
  /** Row counts after the run (inside the transaction for a dry run). */
  readonly rows: RowCounts;
}

/** Internal: unwinds a dry run's transaction. */
class DryRunRollback extends Error {}

const emptyCounts: RowCounts = {
  namespaces: 0,
  repositories: 0,
  manifests: 0,
  manifestReferences: 0,
  layers: 0,
  tags: 0,
  blobs: 0,
  repositoryBlobs: 0,
};

/** The steps of the run's mode, in order, on the dry run's transaction or on one per repository/batch. */
async function steps(run: ImportRun, dry: Transaction | undefined): Promise<void> {
  const mode = run.options.mode;
  if (mode === 'pre-import') {
    await eachRepository(run, 'pre-import', (r) =>
      importRepository(run, dry, { repository: r, step: 'pre-import', manifests: true, tags: false }),
    );
  } else if (mode === 'import') {
    await eachRepository(run, 'import', (r) =>
      importRepository(run, dry, { repository: r, step: 'import', manifests: true, tags: true }),
    );
  } else if (mode === 'blobs') {
    await importBlobs(run, dry);
  } else {
    // pre-import and import of a repository are one pass: each manifest is imported once, fully
    await eachRepository(run, 'import', (r) =>
      importRepository(run, dry, { repository: r, step: 'import', manifests: true, tags: true }),
    );
    await importBlobs(run, dry);
  }
}

/** Fails with `NAME_UNKNOWN` when a repository asked for by name is not in the tree. */
async function checkRepositories(run: ImportRun): Promise<void> {
  const { tree, options } = run;
  if (!options.repositories) return;
  const missing: string[] = [];
  for (const name of options.repositories) if (!(await tree.hasRepository(name))) missing.push(name);
  if (missing.length > 0) {
    throw new ImportError(
      'NAME_UNKNOWN',
      `${missing.length === 1 ? 'repository' : 'repositories'} not in the tree at ${tree.v2}: ${missing.map((m) => JSON.stringify(m)).join(', ')}`,
      { details: { repositories: missing } },
    );
  }
}

/** GitLab's `import_statistics` row; a failure to write it does not fail the import. */
async function recordStatistics(
  run: ImportRun,
  started: number,
  result: ImportResult,
  failure: unknown,
): Promise<void> {
  const { db, mode } = run.options;
  await db
    .query(
      `INSERT INTO import_statistics (started_at, finished_at, pre_import, tag_import, blob_import, pre_import_error,
         repositories_count, tags_count, manifests_count, blobs_count, storage_driver)
       VALUES ($1, now(), $2, $3, $4, $5, $6, $7, $8, $9, 'filesystem')`,
      [
        new Date(started),
        mode === 'full' || mode === 'pre-import',
        mode === 'full' || mode === 'import',
        mode === 'full' || mode === 'blobs',
        failure === undefined ? null : String(failure).slice(0, 1000),
        result.rows.repositories,
        result.rows.tags,
        result.rows.manifests,
        result.rows.blobs,
      ],
    )
    .catch(() => undefined);
}

/**
 * Imports a distribution filesystem tree into the metadata database, as
 * GitLab's importer does, with these differences: every repository is one
 * transaction in every step (an interrupted or failed repository leaves no
 * rows), tags are made to match the tree instead of refusing a non-empty tags
 * table (so a rerun after any failure continues and converges), and a
 * repository failing with a retryable database error is retried whole.
 */
export async function importTree(input: ImportOptions): Promise<ImportResult> {
  const started = Date.now();
  const options = resolveOptions(input);
  const { db, mode, dryRun } = options;
  // before the database, the log file or a lockfile: a path that is not a registry tree gets nothing written
  const tree = await openDistributionTree(options.root);
  const run = createRun(options, tree);
  // a repository asked for by name must be there: fail before the database is touched
  await checkRepositories(run);
  await assertMigrated(db);

  const locks = new Lockfiles(tree.registryDir);
  if (options.logFile) await mkdir(join(options.logFile, '..'), { recursive: true });
  await run.log('info', () => ({ mode, dryRun, root: tree.v2 }), 'import started');
  let failure: unknown;
  let rows: RowCounts | undefined;
  try {
    if (dryRun) {
      await db
        .transaction(async (tx) => {
          await steps(run, tx);
          rows = await run.store.on(tx).counts();
          throw new DryRunRollback();
        })
        .catch((error: unknown) => {
          if (!(error instanceof DryRunRollback)) throw error;
        });
    } else {
      await steps(run, undefined);
      // a read, but on the same connections as the import: a lost one is retried like a repository
      rows = await run.inTransaction(undefined, (tx) => run.store.on(tx).counts());
    }
  } catch (error) {
    failure = error;
  }
  if (options.lockfiles) {
    if (failure === undefined) await locks.databaseInUse();
    else await locks.restore(false);
  }
  const result: ImportResult = {
    mode,
    dryRun,
    ...run.counters,
    warnings: run.warnings,
    durationMs: Date.now() - started,
    rows: rows ?? (await run.store.counts().catch(() => emptyCounts)),
  };
  if (options.statistics) await recordStatistics(run, started, result, failure);
  await run.log(
    failure ? 'error' : 'info',
    () => ({ ...result, warnings: run.warnings.length }),
    'import finished',
  );
  if (failure !== undefined) throw failure;
  return result;
}
