// stowage sync: a sync config file and a store root to one runSyncPass; progress
// on a terminal (stderr), the summary (or the report as JSON) on stdout.
import { readFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
// Our own mkdir -p: Node 20's recursive mkdir loops for ever where a parent refuses the entry (/proc).
import { mkdir } from '@stowage/blob-store';
import type { ImageStore } from '@stowage/image-store';
import { isStowageError } from '@stowage/oci';
import type { ImageOutcome, SyncConfig, SyncError, SyncEvent, SyncReport } from '@stowage/sync';
import {
  defineCommand,
  type GENERAL_OPTIONS,
  GENERAL_OPTIONS_HELP,
  quoted,
  type UsageError,
  usageError,
  type ValuesOf,
} from './command.js';
import type { Explained } from './errors.js';
import { type StatusLine, terminalStatusLine } from './progress.js';

/** Exit codes of stowage sync beyond the common ones (documented in the help and the README). */
export const SyncExit = {
  /** The config file cannot be read, is not YAML or JSON, holds no sync section, or the section is invalid. */
  config: 3,
  /** The pass ran, and some image (or an upstream as a whole) failed. */
  failed: 5,
  interrupted: 130,
} as const;

const SYNC_OPTIONS = {
  config: { type: 'string' },
  root: { type: 'string' },
  json: { type: 'boolean' },
  upstream: { type: 'string', multiple: true },
} as const;

type SyncValues = ValuesOf<typeof SYNC_OPTIONS & typeof GENERAL_OPTIONS>;

const USAGE = 'usage: stowage sync --config <file> --root <dir> [--json] [--upstream <n>]...';

const HELP = `${USAGE}

Runs one sync pass: for each upstream of the config with content rules (or repositories), lists
the repositories and tags the rules keep and copies into the store at --root what is missing or
changed, digests preserved; an image whose tag already holds the upstream digest is skipped. An
image that fails leaves nothing of itself in the store, and the others go on.

The config file is YAML or JSON: a zot config (extensions.sync), a stowage-server config (sync:),
or the section alone (registries: [...]), in zot's shape. A credentials file it names is read
relative to it.

options:
  --config <file>     the sync configuration
  --root <dir>        the image store to mirror into (created when missing; a stowage-server
                      storage root works, its state beside the store in <dir>/.sync)
  --upstream <n>      only registries[n] (repeatable); default every upstream with content
  --json              print the report (every image, its outcome and error) as JSON
${GENERAL_OPTIONS_HELP}

examples:
  stowage sync --config /etc/zot/config.json --root /srv/mirror
  stowage sync --config sync.yml --root /srv/mirror --upstream 1 --json

On a terminal one updating line on stderr shows the images done and the bytes copied. stdout gets
"synced N, skipped N, failed N (X MiB in Y s)" and one line per failure, or the JSON report.
Exit codes: 0 nothing failed, 5 some image failed, 3 the config, 2 usage, 130 interrupted.`;

function usage(message: string): UsageError {
  return usageError('sync', message);
}

/** `--config` problems: one line naming the file, exit code 3. */
async function configProblem(file: string, detail: string, cause?: unknown): Promise<SyncError> {
  const { SyncError } = await import('@stowage/sync');
  return new SyncError('CONFIG_INVALID', `${file}: ${detail}`, {
    details: { file },
    ...(cause !== undefined ? { cause } : {}),
  });
}

function isMapping(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Where the sync section sits in a document: zot's config, a stowage-server config, or the section alone. */
function findSection(document: unknown): { section: unknown; key: string } | undefined {
  if (!isMapping(document)) return undefined;
  const extensions = document.extensions;
  if (isMapping(extensions) && extensions.sync !== undefined && extensions.sync !== null) {
    return { section: extensions.sync, key: 'extensions.sync' };
  }
  if (document.sync !== undefined && document.sync !== null) return { section: document.sync, key: 'sync' };
  if (Object.hasOwn(document, 'registries')) return { section: document, key: '' };
  return undefined;
}

/** Reads and checks the sync configuration in `file` (YAML or JSON). */
export async function readSyncFile(file: string): Promise<SyncConfig> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    const why =
      code === 'ENOENT'
        ? 'does not exist'
        : code === 'EISDIR'
          ? 'is a directory, not a file'
          : code === 'EACCES'
            ? 'cannot be read (permission denied)'
            : `cannot be read (${(error as Error).message})`;
    throw await configProblem(file, `${why}; check --config`, error);
  }
  const { parse: parseYaml } = await import('yaml');
  const { parseSyncConfig } = await import('@stowage/sync');
  let document: unknown;
  try {
    document = parseYaml(text);
  } catch (error) {
    const reason = (error as Error).message.split('\n')[0]?.replace(/:$/, '');
    throw await configProblem(file, `not valid YAML or JSON: ${reason}`, error);
  }
  const found = findSection(document);
  if (found === undefined) {
    throw await configProblem(
      file,
      "no sync configuration: expected zot's extensions.sync, a stowage-server sync: section, or the section itself (registries: [...])",
    );
  }
  const keyOf = (key: string) => (found.key === '' ? key : key === '' ? found.key : `${found.key}.${key}`);
  let config: SyncConfig;
  try {
    config = await parseSyncConfig(found.section, {
      origin: found.key === '' ? file : `${file}: ${found.key}`,
      // a credentials file named relative to the config is found beside it
      readFile: (path) => readFile(resolve(dirname(file), path), 'utf8'),
    });
  } catch (error) {
    if (!isStowageError(error, 'CONFIG_INVALID')) throw error;
    const key = typeof error.details.key === 'string' ? error.details.key : '';
    const detail = typeof error.details.detail === 'string' ? error.details.detail : undefined;
    if (detail === undefined) throw error;
    throw await configProblem(file, `${keyOf(key)}: ${detail}`, error);
  }
  if (!config.enabled)
    throw await configProblem(file, `${keyOf('enable')} is false: there is nothing to sync`);
  return config;
}

/** `--upstream` values: positions in `registries`, each one there. */
function chooseUpstreams(values: readonly string[] | undefined, config: SyncConfig): number[] | undefined {
  if (values === undefined) return undefined;
  const chosen: number[] = [];
  for (const value of values) {
    if (!/^[0-9]+$/.test(value)) {
      throw usage(
        `--upstream takes the position of an upstream in registries (0, 1, ...), not ${JSON.stringify(value)}`,
      );
    }
    const index = Number(value);
    if (!config.upstreams.some((upstream) => upstream.index === index)) {
      const count = config.upstreams.length;
      throw usage(
        `--upstream ${index}: the config has ${count} upstream${count === 1 ? '' : 's'} (registries[0]${count > 1 ? ` to registries[${count - 1}]` : ''})`,
      );
    }
    if (!chosen.includes(index)) chosen.push(index);
  }
  return chosen;
}

const MiB = 1024 * 1024;

function mebibytes(bytes: number): string {
  return `${(bytes / MiB).toFixed(1)} MiB`;
}

/** `synced N, skipped N, failed N (X MiB in Y s)`. */
export function summaryLine(report: SyncReport): string {
  return `synced ${report.synced}, skipped ${report.skipped}, failed ${report.failed} (${mebibytes(report.bytesCopied)} in ${(report.durationMs / 1000).toFixed(1)} s)`;
}

function imageName(outcome: ImageOutcome): string {
  const separator = outcome.reference.includes(':') ? '@' : ':';
  return `${outcome.repository}${separator}${outcome.reference}`;
}

/** One line per failed image, then one per problem above an image (an upstream unreachable, a catalog refused). */
export function failureLines(report: SyncReport): string[] {
  const lines = report.images
    .filter((image) => image.status === 'failed')
    .map(
      (image) =>
        `failed: ${imageName(image)} from ${image.upstream}/${image.remote}: ${image.error ? `${image.error.message} (${image.error.code})` : 'failed'}`,
    );
  for (const error of report.errors) {
    lines.push(
      `failed: ${error.upstream}${error.repository ? `/${error.repository}` : ''}: ${error.message} (${error.code})`,
    );
  }
  return lines;
}

/** The one updating line on a terminal: images done of those planned, and bytes copied. */
/** The sync's status line: images done of those planned, bytes copied. */
function syncProgress(line: StatusLine): { onEvent: (event: SyncEvent) => void; end: () => void } {
  let planned = 0;
  let done = 0;
  let bytes = 0;
  return {
    onEvent(event) {
      if (event.type === 'plan') planned += event.images;
      else if (event.type === 'image-done') done++;
      else if (event.type === 'bytes') bytes += event.bytes;
      // bytes arrive per chunk: only they wait for the next tenth of a second
      line.draw(`sync: ${done}/${planned} images, ${mebibytes(bytes)}`, event.type !== 'bytes');
    },
    end: () => line.end(),
  };
}

export const syncCommand = defineCommand({
  name: 'sync',
  synopsis: 'sync --config <file> --root <dir>',
  summary: 'mirror the images a sync config names into a local store',
  usage: USAGE,
  help: HELP,
  options: SYNC_OPTIONS,
  run: ({ operands, values }) => runSync(operands, values),
});

async function runSync(operands: readonly string[], values: SyncValues): Promise<number> {
  if (operands.length > 0) {
    throw usage(`sync takes no arguments, not ${quoted(operands)}: give the file with --config`);
  }
  if (values.config === undefined) throw usage('sync needs --config <file> (a zot or stowage-server config)');
  if (values.root === undefined) throw usage('sync needs --root <dir>, the store to mirror into');
  const file = resolve(values.config);
  const root = resolve(values.root);
  const config = await readSyncFile(file);
  const upstreams = chooseUpstreams(values.upstream, config);

  const controller = new AbortController();
  const onSigint = () => {
    process.stderr.write('\nstowage: interrupted, stopping the sync (nothing half-copied is committed)\n');
    controller.abort();
  };
  process.once('SIGINT', onSigint);
  const line = terminalStatusLine();
  const progress = line ? syncProgress(line) : undefined;
  let store: ImageStore | undefined;
  let report: SyncReport;
  try {
    const { createImageStore } = await import('@stowage/image-store');
    store = await createImageStore({ root });
    // the same place stowage-server keeps it, so either may finish what the other left
    const stateDir = join(root, '.sync');
    await mkdir(stateDir, { recursive: true });
    const { runSyncPass } = await import('@stowage/sync');
    report = await runSyncPass({
      config,
      destination: store,
      stateDir,
      ...(upstreams ? { upstreams } : {}),
      ...(progress ? { onEvent: progress.onEvent } : {}),
      signal: controller.signal,
    });
  } catch (error) {
    if (controller.signal.aborted) return SyncExit.interrupted;
    throw error;
  } finally {
    progress?.end();
    process.off('SIGINT', onSigint);
    await store?.close();
  }
  if (values.json) {
    process.stdout.write(`${JSON.stringify(report)}\n`);
  } else {
    const lines = [summaryLine(report), ...failureLines(report)];
    process.stdout.write(`${lines.join('\n')}\n`);
  }
  if (controller.signal.aborted) return SyncExit.interrupted;
  return report.failed > 0 || report.errors.length > 0 ? SyncExit.failed : 0;
}

/** stowage sync's own failures (its config file), as errors.ts explains the others. */
export function explainSync(error: unknown): Explained | undefined {
  // only the sync command throws CONFIG_INVALID (the importer and the database say OPTIONS_INVALID)
  if (isStowageError(error, 'CONFIG_INVALID')) {
    return { exitCode: SyncExit.config, line: error.message };
  }
  return undefined;
}
