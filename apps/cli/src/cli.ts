#!/usr/bin/env node
// stowage: thin commands over the packages — flags to options, one package call each.
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { type ImportMode, type ImportProgress, importTree } from '@stowage/importer';
import { migrate, migrationStatus, openDatabase } from '@stowage/metadata-db';
import { isStowageError } from '@stowage/oci';

const USAGE = `usage:
  stowage import [options] <registry-root>   import a docker-registry filesystem tree
  stowage db migrate [--database-url <url>]   apply pending database migrations
  stowage db status [--database-url <url>]    applied and pending migrations

database (every command):
  --database-url <url>     PostgreSQL (or STOWAGE_DATABASE_URL / DATABASE_URL); without one,
                           embedded PGlite in --data-dir (default ./.stowage-metadata)
  --data-dir <dir>

import:
  --step-one, --pre-import          pre-import tagged manifests only
  --step-two, --all-repositories    import tags (and manifests not pre-imported)
  --step-three, --common-blobs      record every blob of the tree
                                    (no step flag: all three, in order)
  --repository <name>               only this repository (repeatable)
  --dry-run                         one transaction, rolled back
  --tag-concurrency <n>             tag links read at once, 1 to 5 (default 1, as GitLab)
  --pre-import-skip-recent <hours>  skip repositories pre-imported this recently
  --row-count                       print row counts when done
  --log-file <file>                 detailed JSON-lines log (default
                                    <RFC3339>-registry-import.log in --log-directory)
  --log-directory <dir>             where the default log file goes (default: the current directory)
  --log-to-stdout                   no progress bar and no log file: the log goes to stdout
  --no-lockfiles                    leave GitLab's lockfiles alone`;

async function database(values: { 'database-url'?: string; 'data-dir'?: string }) {
  const url = values['database-url'] ?? process.env.STOWAGE_DATABASE_URL ?? process.env.DATABASE_URL;
  return openDatabase(url ? { url } : { dataDir: resolve(values['data-dir'] ?? '.stowage-metadata') });
}

/** GitLab's range for `--tag-concurrency` (1–5) and its default (1); `undefined` for anything else. */
function tagConcurrency(text: string | undefined): number | undefined {
  if (text === undefined) return 1;
  if (!/^[0-9]+$/.test(text)) return undefined;
  const value = Number(text);
  return value >= 1 && value <= 5 ? value : undefined;
}

/** A 24-cell bar of the repositories done in this step, empty until the total is known. */
function bar(p: ImportProgress): string {
  const width = 24;
  const total = p.repositoriesTotal;
  const filled = total ? Math.min(width, Math.round((p.repositoriesDone / total) * width)) : 0;
  return `[${'#'.repeat(filled)}${'-'.repeat(width - filled)}]`;
}

async function main(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      'database-url': { type: 'string' },
      'data-dir': { type: 'string' },
      'step-one': { type: 'boolean' },
      'pre-import': { type: 'boolean' },
      'step-two': { type: 'boolean' },
      'all-repositories': { type: 'boolean' },
      'step-three': { type: 'boolean' },
      'common-blobs': { type: 'boolean' },
      repository: { type: 'string', multiple: true },
      'dry-run': { type: 'boolean' },
      'tag-concurrency': { type: 'string' },
      'pre-import-skip-recent': { type: 'string' },
      'row-count': { type: 'boolean' },
      'log-file': { type: 'string' },
      'log-directory': { type: 'string' },
      'log-to-stdout': { type: 'boolean' },
      'no-lockfiles': { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  const [command, sub, ...rest] = positionals;
  if (values.help || !command) {
    process.stdout.write(`${USAGE}\n`);
    return values.help ? 0 : 2;
  }

  if (command === 'db' && (sub === 'migrate' || sub === 'status') && rest.length === 0) {
    const db = await database(values);
    try {
      if (sub === 'migrate') {
        const applied = await migrate(db);
        process.stdout.write(applied.length ? `applied: ${applied.join(', ')}\n` : 'the schema is current\n');
      } else {
        process.stdout.write(`${JSON.stringify(await migrationStatus(db))}\n`);
      }
    } finally {
      await db.close();
    }
    return 0;
  }

  if (command === 'import' && sub !== undefined && rest.length === 0) {
    const stepOne = values['step-one'] || values['pre-import'];
    const stepTwo = values['step-two'] || values['all-repositories'];
    const stepThree = values['step-three'] || values['common-blobs'];
    if ([stepOne, stepTwo, stepThree].filter(Boolean).length > 1) {
      process.stderr.write('stowage import: choose at most one of the three steps\n');
      return 2;
    }
    const mode: ImportMode = stepOne ? 'pre-import' : stepTwo ? 'import' : stepThree ? 'blobs' : 'full';
    const concurrency = tagConcurrency(values['tag-concurrency']);
    if (concurrency === undefined) {
      process.stderr.write(
        `stowage import: --tag-concurrency must be a whole number from 1 to 5, not ${JSON.stringify(values['tag-concurrency'])}\n`,
      );
      return 2;
    }
    const controller = new AbortController();
    process.once('SIGINT', () => {
      process.stderr.write('\nstowage import: interrupted, rolling back the repository in progress\n');
      controller.abort();
    });
    const toStdout = values['log-to-stdout'] ?? false;
    const tty = process.stderr.isTTY && !toStdout;
    // GitLab's default: a detailed log beside the progress bar, named by when the run started
    const logFile = toStdout
      ? undefined
      : resolve(
          values['log-file'] ??
            join(
              values['log-directory'] ?? '.',
              `${new Date().toISOString().replace(/\.\d+Z$/, 'Z')}-registry-import.log`,
            ),
        );
    const db = await database(values);
    try {
      const result = await importTree({
        db,
        root: resolve(sub),
        mode,
        dryRun: values['dry-run'] ?? false,
        tagConcurrency: concurrency,
        ...(values.repository ? { repositories: values.repository } : {}),
        ...(values['pre-import-skip-recent']
          ? { preImportSkipRecentMs: Number(values['pre-import-skip-recent']) * 3_600_000 }
          : {}),
        ...(logFile ? { logFile } : {}),
        ...(toStdout ? { onLog: (entry) => process.stdout.write(`${JSON.stringify(entry)}\n`) } : {}),
        lockfiles: !values['no-lockfiles'],
        signal: controller.signal,
        onWarning: (w) =>
          process.stderr.write(
            `${tty ? '\n' : ''}warning: ${w.reason}: ${w.repository}${w.tag ? `:${w.tag}` : ''}${w.digest ? `@${w.digest}` : ''}${w.detail ? ` (${w.detail})` : ''}\n`,
          ),
        onProgress: (p) => {
          if (toStdout) return;
          const of =
            p.repositoriesTotal === undefined ? '' : ` (${p.repositoriesDone} of ${p.repositoriesTotal})`;
          const line = `${p.step}: ${p.repositoriesDone} repositories, ${p.tagsDone} tags, ${p.blobsDone} blobs${p.repository ? ` — ${p.repository}` : ''}`;
          process.stderr.write(tty ? `\r\u001b[K${bar(p)} ${line}` : `${line}${of}\n`);
        },
      });
      if (tty) process.stderr.write('\n');
      if (logFile) process.stderr.write(`stowage import: detailed log in ${logFile}\n`);
      const summary: Record<string, unknown> = {
        mode: result.mode,
        dryRun: result.dryRun,
        repositories: result.repositories,
        tags: result.tags,
        manifests: result.manifests,
        blobs: result.blobs,
        warnings: result.warnings.length,
        retries: result.retries,
        durationMs: result.durationMs,
      };
      if (values['row-count']) summary.rows = result.rows;
      process.stdout.write(`${JSON.stringify(summary)}\n`);
      return 0;
    } catch (error) {
      if (controller.signal.aborted) {
        process.stderr.write('stowage import: stopped; rerun to continue where it stopped\n');
        return 130;
      }
      throw error;
    } finally {
      await db.close();
    }
  }

  process.stdout.write(`${USAGE}\n`);
  return 2;
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    const message = isStowageError(error)
      ? `${error.code}: ${error.message}`
      : String((error as Error)?.stack ?? error);
    process.stderr.write(`stowage: ${message}\n`);
    process.exitCode = 1;
  },
);
