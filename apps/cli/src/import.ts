// stowage import: flags to importTree's options, progress on stderr, the summary on stdout.
// An image-store root (stowage-server --root's ./data) imports through importRegistry instead.
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { ImportMode, ImportProgress } from '@stowage/importer';
import {
  type CommandRun,
  DATABASE_OPTIONS,
  DATABASE_OPTIONS_HELP,
  defineCommand,
  type GENERAL_OPTIONS,
  GENERAL_OPTIONS_HELP,
  quoted,
  URL_EXAMPLE,
  type UsageError,
  usageError,
  type ValuesOf,
} from './command.js';
import { chooseDatabase, openChosen } from './database.js';
import { jsonLinesLogger } from './log.js';

const IMPORT_OPTIONS = {
  ...DATABASE_OPTIONS,
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
} as const;

type ImportValues = ValuesOf<typeof IMPORT_OPTIONS & typeof GENERAL_OPTIONS>;

const USAGE = 'usage: stowage import [options] <registry-root | store-root>';

const HELP = `${USAGE}

Imports a docker-registry (distribution v2) storage tree into the metadata database, as GitLab's
importer does. <registry-root> is the registry's storage root (storage.filesystem.rootdirectory,
the directory holding docker/registry/v2) or that v2 directory; any other path is refused before
anything is written. The database must exist and be migrated first (stowage db migrate).

An image-store root (the directory stowage-server --root serves, holding .stowage/blobs) imports
too: its tags, manifests and blob links are recorded over its own content store, no byte copied
and nothing in it changed, so stowage-server --database-url serves it from the same directory.
Of the options below only --repository and --row-count apply to it.

steps (none given: all three, in order):
  --step-one, --pre-import          pre-import tagged manifests only
  --step-two, --all-repositories    import tags (and manifests not pre-imported)
  --step-three, --common-blobs      record every blob of the tree

options:
  --repository <name>               only this repository (repeatable); lockfiles are left alone
  --dry-run                         one transaction, rolled back; no lockfile is read or written
  --tag-concurrency <n>             tag links read at once, 1 to 5 (default 1, as GitLab)
  --pre-import-skip-recent <hours>  skip repositories pre-imported this recently
  --row-count                       print row counts when done
  --log-file <file>                 detailed JSON-lines log (default
                                    <RFC3339>-registry-import.log in --log-directory)
  --log-directory <dir>             where the default log file goes (default: the current directory)
  --log-to-stdout                   no progress bar and no log file: the log goes to stdout
  --no-lockfiles                    leave GitLab's lockfiles alone
${DATABASE_OPTIONS_HELP}
${GENERAL_OPTIONS_HELP}

examples:
  stowage db migrate --database-url ${URL_EXAMPLE}
  stowage import /var/lib/docker-registry --dry-run --database-url ${URL_EXAMPLE}
  stowage import /var/lib/docker-registry --row-count --database-url ${URL_EXAMPLE}

Progress and warnings go to stderr, the summary is one JSON line on stdout. SIGINT rolls back the
repository in progress; the same command run again continues. Exit codes: stowage --help.`;

function usage(message: string): UsageError {
  return usageError('import', message);
}

/** GitLab's range for `--tag-concurrency` (1–5) and its default (1); `undefined` for anything else. */
function tagConcurrency(text: string | undefined): number | undefined {
  if (text === undefined) return 1;
  if (!/^[0-9]+$/.test(text)) return undefined;
  const value = Number(text);
  return value >= 1 && value <= 5 ? value : undefined;
}

/** `--pre-import-skip-recent <hours>` in milliseconds: a non-negative number of hours. */
function skipRecent(text: string | undefined): number | undefined {
  if (text === undefined) return 0;
  if (!/^[0-9]+(\.[0-9]+)?$/.test(text)) return undefined;
  return Number(text) * 3_600_000;
}

/** A 24-cell bar of the repositories done in this step, empty until the total is known. */
function bar(p: ImportProgress): string {
  const width = 24;
  const total = p.repositoriesTotal;
  const filled = total ? Math.min(width, Math.round((p.repositoriesDone / total) * width)) : 0;
  return `[${'#'.repeat(filled)}${'-'.repeat(width - filled)}]`;
}

export const importCommand = defineCommand({
  name: 'import',
  synopsis: 'import [options] <registry-root>',
  summary: 'import a docker-registry storage tree into the database',
  usage: USAGE,
  help: HELP,
  options: IMPORT_OPTIONS,
  run: ({ operands, values, run }) => runImport(operands, values, run),
});

async function runImport(
  operands: readonly string[],
  values: ImportValues,
  run: CommandRun,
): Promise<number> {
  const { ImportError, importTree, isImportError, openDistributionTree } = await import('@stowage/importer');
  if (operands.length === 0) {
    throw usage("import needs the registry's storage root");
  }
  if (operands.length > 1) {
    throw usage(`import takes one registry root, not ${operands.length}: ${quoted(operands)}`);
  }
  const root = resolve(operands[0] as string);
  if (isStoreRoot(root)) return runStoreImport(root, values, run);
  const stepOne = values['step-one'] || values['pre-import'];
  const stepTwo = values['step-two'] || values['all-repositories'];
  const stepThree = values['step-three'] || values['common-blobs'];
  if ([stepOne, stepTwo, stepThree].filter(Boolean).length > 1) {
    throw usage('choose at most one of the three steps (--step-one, --step-two, --step-three)');
  }
  const mode: ImportMode = stepOne ? 'pre-import' : stepTwo ? 'import' : stepThree ? 'blobs' : 'full';
  const concurrency = tagConcurrency(values['tag-concurrency']);
  if (concurrency === undefined) {
    throw usage(
      `--tag-concurrency must be a whole number from 1 to 5, not ${JSON.stringify(values['tag-concurrency'])}`,
    );
  }
  const skipMs = skipRecent(values['pre-import-skip-recent']);
  if (skipMs === undefined) {
    throw usage(
      `--pre-import-skip-recent must be a number of hours, not ${JSON.stringify(values['pre-import-skip-recent'])}`,
    );
  }
  const choice = chooseDatabase(values, 'import');
  // the tree first: a path that is not one gets no database, no log file and no lockfile
  await openDistributionTree(root);

  const controller = new AbortController();
  process.once('SIGINT', () => {
    process.stderr.write('\nstowage: interrupted, rolling back the repository in progress\n');
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
  run.database = choice;
  if (logFile) run.logFile = logFile;
  // an import needs a migrated database: a missing embedded one is refused, not created empty
  const db = await openChosen(choice, { create: false });
  try {
    const result = await importTree({
      db,
      root,
      mode,
      dryRun: values['dry-run'] ?? false,
      tagConcurrency: concurrency,
      ...(values.repository ? { repositories: values.repository } : {}),
      ...(skipMs > 0 ? { preImportSkipRecentMs: skipMs } : {}),
      ...(logFile ? { logFile } : {}),
      ...(toStdout ? { logger: jsonLinesLogger((line) => process.stdout.write(line)) } : {}),
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
    if (logFile) process.stderr.write(`stowage: detailed log in ${logFile}\n`);
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
    // whatever the interrupted work threw, SIGINT is what stopped it
    if (controller.signal.aborted && !isImportError(error, 'ABORTED')) {
      throw new ImportError('ABORTED', 'the import was interrupted', { cause: error });
    }
    throw error;
  } finally {
    await db.close();
  }
}

/** An image store's root: its content store is there, and it is not a docker-registry tree. */
function isStoreRoot(root: string): boolean {
  return existsSync(join(root, '.stowage', 'blobs')) && !existsSync(join(root, 'docker', 'registry', 'v2'));
}

/** The flags that only mean something for a docker-registry tree. */
const TREE_ONLY = [
  'step-one',
  'pre-import',
  'step-two',
  'all-repositories',
  'step-three',
  'common-blobs',
  'dry-run',
  'tag-concurrency',
  'pre-import-skip-recent',
  'log-file',
  'log-directory',
  'log-to-stdout',
  'no-lockfiles',
] as const;

/** `stowage import <store-root>`: the image store's metadata into the database, its bytes left where they are. */
async function runStoreImport(root: string, values: ImportValues, run: CommandRun): Promise<number> {
  const given = TREE_ONLY.find((flag) => values[flag] !== undefined);
  if (given) {
    throw usage(`--${given} applies to a docker-registry tree; ${root} is an image-store root`);
  }
  const [
    { createFileBlobStore },
    { createDatabaseRegistry, importRegistry },
    { createImageStore },
    { MetadataStore },
  ] = await Promise.all([
    import('@stowage/blob-store'),
    import('@stowage/database-store'),
    import('@stowage/image-store'),
    import('@stowage/metadata-db'),
  ]);
  const choice = chooseDatabase(values, 'import');
  run.database = choice;
  const controller = new AbortController();
  process.once('SIGINT', () => {
    process.stderr.write('\nstowage: interrupted; the same command run again continues\n');
    controller.abort();
  });
  const started = performance.now();
  const source = await createImageStore({ root, readOnly: true });
  try {
    const db = await openChosen(choice, { create: false });
    const target = await createDatabaseRegistry({
      database: db,
      // read only: an import records, it never writes into the root
      blobs: createFileBlobStore({
        root: join(root, '.stowage', 'blobs'),
        layout: 'stowage',
        readOnly: true,
      }),
      closeDatabase: true,
    }).catch(async (error: unknown) => {
      await db.close();
      throw error;
    });
    try {
      const tty = process.stderr.isTTY;
      const result = await importRegistry({
        source,
        target,
        ...(values.repository ? { repositories: values.repository } : {}),
        signal: controller.signal,
        onProgress: (p) => {
          const line = `import: ${p.repositoriesDone} repositories, ${p.tagsDone} tags — ${p.repository}`;
          if (tty) process.stderr.write(`\r\u001b[K${line}`);
        },
      });
      if (tty) process.stderr.write('\n');
      const summary: Record<string, unknown> = {
        source: 'image-store',
        repositories: result.repositories,
        tags: result.tags,
        manifests: result.manifests,
        blobs: result.blobs,
        blobsCopied: result.blobsCopied,
        durationMs: Math.round(performance.now() - started),
      };
      if (values['row-count']) summary.rows = await new MetadataStore(db).counts();
      process.stdout.write(`${JSON.stringify(summary)}\n`);
      return 0;
    } finally {
      await target.close();
    }
  } finally {
    await source.close();
  }
}
