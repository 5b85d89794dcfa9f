#!/usr/bin/env node
// stowage-server: serve a registry from a local directory, or collect its garbage.
// Mistakes are one line on stderr (`stowage-server: …`) and an exit code from
// errors.ts; a stack trace only with --debug.
import { readFileSync } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { resolve } from 'node:path';
import { createSecureContext } from 'node:tls';
import { parseArgs } from 'node:util';
import { createImageStore, type ImageStore } from '@stowage/image-store';
import type { GarbageCollectReport } from '@stowage/oci';
import { destination, pino } from 'pino';
import { buildAuthorizer } from './auth.js';
import { openServerDatabaseRegistry } from './backend.js';
import { type ConfigWarning, loadConfig, type ServerConfig } from './config.js';
import { EXIT, explainFailure, pathFailure, StartupError, UsageError } from './errors.js';
import { type RunningServer, startServer } from './server.js';

type Command = 'serve' | 'gc';

const MAIN_USAGE = `stowage-server: an OCI registry over a local directory (or PostgreSQL and a directory)

usage:
  stowage-server [serve] [options] [config.yml]   serve the registry API (the default command)
  stowage-server gc [options] [config.yml]        remove unreferenced blobs and stale uploads
  stowage-server --version

Run stowage-server serve --help or stowage-server gc --help for the options of each.`;

const SERVE_USAGE = `usage: stowage-server serve [options] [config.yml]

Serves the OCI distribution API from a local directory, with /healthz, /readyz
and /metrics. SIGTERM or SIGINT drains requests in flight, then stops.

options:
  --config <file>        a YAML config shaped like distribution's config.yml
                         (or give the file after serve, as with distribution)
  --root <dir>           storage directory (default ./data)
  --database-url <url>   database mode: metadata in PostgreSQL (postgres://…),
                         blobs under --root (a docker-registry tree imported
                         with stowage import is served in place)
  --addr <[host]:port>   listen address (default :5000)
  --read-only            refuse every write
  --htpasswd <file>      basic auth with a bcrypt htpasswd file (htpasswd -B)
  --tls-cert <file>      serve HTTPS with this certificate (PEM)
  --tls-key <file>       and this key (PEM)
  --log-level <level>    trace, debug, info, warn, error, fatal or silent (default info)
  --debug                print the stack trace of an error
  -h, --help             this text

Environment variables STOWAGE_<SECTION>_<KEY> (or distribution's REGISTRY_…)
set the configuration key they name (STOWAGE_HTTP_ADDR=:6000 sets http.addr);
flags override them, and they override the file.

A sync: section (zot's extensions.sync) or distribution's proxy: section in
the config file mirrors other registries: a pull-through cache for on-demand
upstreams, a periodic sync for those with a pollInterval (see the README).

examples:
  stowage-server serve --root /srv/registry --addr 127.0.0.1:5000
  stowage-server serve /etc/docker/registry/config.yml`;

const GC_USAGE = `usage: stowage-server gc [options] [config.yml]

Removes blobs no manifest references, expired upload sessions and crash
leftovers older than the grace period, then prints a JSON report. Pushes running
at the same time are safe.

options:
  --config <file>        a YAML config shaped like distribution's config.yml
  --root <dir>           storage directory (default ./data); it must exist
  --database-url <url>   database mode: collect in the database's store now,
                         whatever the review times (the server's online GC
                         does it as content becomes unreferenced)
  --dry-run              report what would be removed, change nothing
  --delete-untagged      also delete manifests no tag keeps (children of tagged
                         indexes and referrers of kept manifests are kept)
  --grace-period <dur>   keep content younger than this (default 1h)
  --log-level <level>    trace, debug, info, warn, error, fatal or silent (default info)
  --debug                print the stack trace of an error
  -h, --help             this text

example:
  stowage-server gc --root /srv/registry --dry-run`;

function usage(command: Command | undefined): string {
  return command === 'serve' ? SERVE_USAGE : command === 'gc' ? GC_USAGE : MAIN_USAGE;
}

interface OptionSpec {
  readonly type: 'string' | 'boolean';
  readonly short?: string;
  /** The value's name in messages (`--root <dir>`). */
  readonly value?: string;
  /** Commands that take it; every command when absent. */
  readonly only?: Command;
}

const OPTIONS: Readonly<Record<string, OptionSpec>> = {
  config: { type: 'string', value: '<file>' },
  root: { type: 'string', value: '<dir>' },
  'database-url': { type: 'string', value: '<url>' },
  'log-level': { type: 'string', value: '<level>' },
  debug: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
  version: { type: 'boolean', short: 'v' },
  addr: { type: 'string', value: '<[host]:port>', only: 'serve' },
  'read-only': { type: 'boolean', only: 'serve' },
  htpasswd: { type: 'string', value: '<file>', only: 'serve' },
  'tls-cert': { type: 'string', value: '<file>', only: 'serve' },
  'tls-key': { type: 'string', value: '<file>', only: 'serve' },
  'dry-run': { type: 'boolean', only: 'gc' },
  'delete-untagged': { type: 'boolean', only: 'gc' },
  'grace-period': { type: 'string', value: '<duration>', only: 'gc' },
};

const COMMANDS: Readonly<Record<string, Command | 'help'>> = {
  serve: 'serve',
  gc: 'gc',
  'garbage-collect': 'gc',
  help: 'help',
};

interface Invocation {
  readonly command: Command;
  readonly help: boolean;
  readonly values: Readonly<Record<string, string | boolean | undefined>>;
  readonly configFile: string | undefined;
}

/** The command line, or a UsageError saying the first thing wrong with it. */
function parseCommandLine(argv: string[]): Invocation | { help: Command | undefined } | { version: true } {
  const { tokens } = parseArgs({
    args: argv,
    options: Object.fromEntries(
      Object.entries(OPTIONS).map(([name, spec]) => [
        name,
        spec.short ? { type: spec.type, short: spec.short } : { type: spec.type },
      ]),
    ),
    strict: false,
    allowPositionals: true,
    tokens: true,
  });
  const positionals = tokens.flatMap((token) => (token.kind === 'positional' ? [token.value] : []));
  const first = positionals[0];
  const command =
    first === undefined ? undefined : Object.hasOwn(COMMANDS, first) ? COMMANDS[first] : undefined;
  if (command === 'help') {
    const topic = positionals[1];
    return {
      help: topic !== undefined && Object.hasOwn(COMMANDS, topic) ? (COMMANDS[topic] as Command) : undefined,
    };
  }
  const known = first === undefined || command !== undefined;
  const chosen = command ?? 'serve';
  const values: Record<string, string | boolean | undefined> = {};
  // options first: in `--root --addr x`, the mistake is the missing value, not the command "x"
  for (const token of tokens) {
    if (token.kind !== 'option') continue;
    const spec = Object.hasOwn(OPTIONS, token.name) ? OPTIONS[token.name] : undefined;
    const shown = known ? chosen : undefined;
    if (spec === undefined) throw new UsageError(`unknown option ${token.rawName}`, shown);
    if (spec.type === 'boolean') {
      if (token.value !== undefined) throw new UsageError(`${token.rawName} takes no value`, shown);
      values[token.name] = true;
    } else {
      const value = token.value;
      if (value === undefined || value === '' || (!token.inlineValue && /^-./.test(value))) {
        throw new UsageError(`${token.rawName} needs a value: ${token.rawName} ${spec.value}`, shown);
      }
      values[token.name] = value;
    }
    if (known && spec.only !== undefined && spec.only !== chosen) {
      throw new UsageError(
        `${token.rawName} is an option of stowage-server ${spec.only}, not of ${chosen}`,
        chosen,
      );
    }
  }
  if (!known) {
    throw new UsageError(
      `unknown command ${JSON.stringify(first)}; the commands are serve and gc` +
        (/\.ya?ml$/.test(first ?? '')
          ? ` (to serve with this config file: stowage-server serve ${first})`
          : ''),
    );
  }
  if (values.version) return { version: true };
  if (values.help) return { help: command === undefined ? undefined : chosen };
  const rest = positionals.slice(first === undefined ? 0 : 1);
  if (rest.length > 1) {
    throw new UsageError(
      `unexpected argument ${JSON.stringify(rest[1])}; ${chosen} takes at most one config file`,
      chosen,
    );
  }
  if (rest[0] !== undefined && values.config !== undefined) {
    throw new UsageError(
      `give the config file once: --config ${values.config} or ${rest[0]}, not both`,
      chosen,
    );
  }
  const configFile = (values.config as string | undefined) ?? rest[0];
  return { command: chosen, help: false, values, configFile };
}

function version(): string {
  const manifest = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as {
    version: string;
  };
  return manifest.version;
}

/** The storage root is a directory (or, when `mustExist` is false, may be made). */
async function checkRoot(root: string, mustExist: boolean, whenMissing: string): Promise<void> {
  const where = '--root (storage.filesystem.rootdirectory)';
  let isDirectory: boolean;
  try {
    isDirectory = (await stat(root)).isDirectory();
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT' && !mustExist) return;
    throw pathFailure(
      error,
      `the storage root ${root}`,
      { ENOENT: whenMissing, ENOTDIR: `choose a directory with ${where}`, default: `check ${where}` },
      EXIT.unusable,
    );
  }
  if (!isDirectory) {
    throw new StartupError(
      `the storage root ${root} is not a directory; choose a directory with ${where}`,
      EXIT.unusable,
    );
  }
}

/** A failure of the store on a path in its root, in words (`fixes` by error code); anything else unchanged. */
function storageFailure(error: unknown, root: string, fixes: Readonly<Record<string, string>>): unknown {
  const path = (error as NodeJS.ErrnoException | undefined)?.path;
  if (typeof path !== 'string' || !(path === root || path.startsWith(`${root}/`))) return error;
  const what = path === root ? `the storage root ${root}` : `${path} (in the storage root)`;
  return pathFailure(
    error,
    what,
    {
      EACCES: 'give this user write access to the storage root',
      EPERM: 'give this user write access to the storage root',
      ENOSPC: 'free some space on its filesystem',
      default: 'check --root (storage.filesystem.rootdirectory)',
      ...fixes,
    },
    EXIT.unusable,
  );
}

/** Reads and parses the certificate and key before the server does, so a bad one is one line. */
async function checkTls(tls: NonNullable<ServerConfig['tls']>): Promise<void> {
  const files = [
    { path: tls.certificate, what: 'the TLS certificate', flag: '--tls-cert (http.tls.certificate)' },
    { path: tls.key, what: 'the TLS key', flag: '--tls-key (http.tls.key)' },
  ] as const;
  const [cert, key] = await Promise.all(
    files.map(async ({ path, what, flag }) => {
      let pem: string;
      try {
        pem = await readFile(path, 'utf8');
      } catch (error) {
        throw pathFailure(error, `${what} ${path}`, { default: `check ${flag}` }, EXIT.config);
      }
      if (pem.trim() === '')
        throw new StartupError(`${what} ${path} is empty; give a PEM file with ${flag}`, EXIT.config);
      return pem;
    }),
  );
  const attempts = [
    {
      options: { cert },
      file: files[0],
      fix: 'give a PEM certificate with --tls-cert (http.tls.certificate)',
    },
    {
      options: { key },
      file: files[1],
      fix: 'give an unencrypted PEM private key with --tls-key (http.tls.key)',
    },
    {
      options: { cert, key },
      file: files[1],
      fix: "give the certificate's own key with --tls-key (http.tls.key)",
    },
  ];
  for (const { options, file, fix } of attempts) {
    try {
      createSecureContext(options);
    } catch (error) {
      throw pathFailure(error, `${file.what} ${file.path}`, { default: fix }, EXIT.config);
    }
  }
}

const FLAG_KEYS: Readonly<Record<string, string>> = {
  root: 'storage.filesystem.rootdirectory',
  'database-url': 'database.url',
  addr: 'http.addr',
  'read-only': 'storage.maintenance.readonly.enabled',
  'log-level': 'log.level',
  htpasswd: 'auth.htpasswd',
  'tls-cert': 'http.tls.certificate',
  'tls-key': 'http.tls.key',
  'grace-period': 'gc.graceperiod',
};

async function main(argv: string[]): Promise<number> {
  const invocation = parseCommandLine(argv);
  if ('version' in invocation) {
    process.stdout.write(`stowage-server ${version()}\n`);
    return EXIT.ok;
  }
  if (!('command' in invocation)) {
    process.stdout.write(`${usage(invocation.help)}\n`);
    return EXIT.ok;
  }
  const { command, values, configFile } = invocation;
  const absolute = (value: unknown) => (typeof value === 'string' ? resolve(value) : undefined);
  const overrides: Record<string, unknown> = {
    'storage.filesystem.rootdirectory': absolute(values.root),
    'database.url': values['database-url'],
    'http.addr': values.addr,
    'storage.maintenance.readonly.enabled': values['read-only'],
    'log.level': values['log-level'],
    ...(values.htpasswd ? { 'auth.htpasswd': { realm: 'stowage', path: absolute(values.htpasswd) } } : {}),
    'http.tls.certificate': absolute(values['tls-cert']),
    'http.tls.key': absolute(values['tls-key']),
    'gc.graceperiod': values['grace-period'],
  };
  const warnings: ConfigWarning[] = [];
  const config = await loadConfig({
    ...(configFile !== undefined ? { configFile } : {}),
    env: process.env,
    overrides,
    overrideOrigins: Object.fromEntries(Object.entries(FLAG_KEYS).map(([flag, key]) => [key, `--${flag}`])),
    onWarning: (warning) => warnings.push(warning),
  });
  // Asynchronous writes to stdout: a request's line no longer costs a write(2) on the event
  // loop (lines logged meanwhile go out together); pino flushes what is left when the process
  // exits, process.exit() included.
  const logger = pino(
    { level: config.logLevel, base: { service: 'stowage-server', pid: process.pid } },
    destination({ dest: 1, sync: false }),
  );
  for (const warning of warnings) {
    logger.warn({ key: warning.key, ...(warning.origin ? { origin: warning.origin } : {}) }, warning.message);
  }

  if (command === 'gc') {
    const dryRun = values['dry-run'] === true;
    const gcFixes = { EROFS: 'a read-only store can only be looked at: gc --dry-run' };
    await checkRoot(config.root, true, 'nothing to collect: check --root (storage.filesystem.rootdirectory)');
    if (config.database) return collectInDatabase({ ...config, database: config.database }, values);
    let store: ImageStore;
    try {
      // a dry run opens the store read-only: it writes nothing, not even the store's own directories
      store = await createImageStore({
        root: config.root,
        readOnly: dryRun,
        uploadTtlMs: config.uploadPurging.ageMs,
      });
    } catch (error) {
      throw storageFailure(error, config.root, gcFixes);
    }
    try {
      const report = await store.garbageCollect({
        dryRun,
        deleteUntagged: values['delete-untagged'] === true,
        gracePeriodMs: config.gcGracePeriodMs,
      });
      printGcReport(report, { recordDataRemoved: report.recordDataRemoved.length });
    } catch (error) {
      throw storageFailure(error, config.root, gcFixes);
    } finally {
      await store.close();
    }
    return EXIT.ok;
  }

  await checkRoot(
    config.root,
    config.readOnly,
    'a read-only server creates nothing: check --root (storage.filesystem.rootdirectory)',
  );
  if (config.tls) await checkTls(config.tls);
  const auth = await buildAuthorizer(config);
  // Signals are ours before the server logs `listening`: one that arrives while it starts
  // stops it as soon as it has started, rather than killing the process mid-start.
  let stopRequested: ((signal: string) => void) | string | undefined;
  const onSignal = (signal: string) => {
    if (typeof stopRequested === 'function') stopRequested(signal);
    else stopRequested ??= signal;
  };
  const onSigint = () => onSignal('SIGINT');
  const onSigterm = () => onSignal('SIGTERM');
  process.once('SIGINT', onSigint);
  process.once('SIGTERM', onSigterm);
  let running: RunningServer;
  try {
    running = await startServer(config, { logger, ...(auth ? { auth } : {}) });
  } catch (error) {
    throw storageFailure(error, config.root, {
      EACCES: 'give this user write access to the storage root, or serve it with --read-only',
      EPERM: 'give this user write access to the storage root, or serve it with --read-only',
      EROFS: 'serve it with --read-only',
    });
  }
  await new Promise<void>((resolveStop) => {
    const stop = (signal: string) => {
      logger.info({ signal }, 'shutting down');
      running.close().then(resolveStop, resolveStop);
    };
    if (typeof stopRequested === 'string') stop(stopRequested);
    else stopRequested = stop;
  });
  return EXIT.ok;
}

/** The one JSON line `stowage-server gc` prints: counts, then the digests removed (`extra` before them). */
function printGcReport(report: GarbageCollectReport, extra: Record<string, number> = {}): void {
  process.stdout.write(
    `${JSON.stringify({
      dryRun: report.dryRun,
      manifestsRemoved: report.manifestsRemoved.length,
      blobsRemoved: report.blobsRemoved.length,
      bytesFreed: report.bytesFreed,
      uploadsRemoved: report.uploadsRemoved,
      ...extra,
      blobs: report.blobsRemoved,
    })}\n`,
  );
}

/** `stowage-server gc` in database mode: every unreferenced blob past the grace period, now. */
async function collectInDatabase(
  config: ServerConfig & { database: NonNullable<ServerConfig['database']> },
  values: Readonly<Record<string, string | boolean | undefined>>,
): Promise<number> {
  if (values['delete-untagged'] === true) {
    throw new UsageError(
      'in database mode untagged manifests are deleted by the online GC: set gc.deleteuntagged in the config',
      'gc',
    );
  }
  const dryRun = values['dry-run'] === true;
  const { registry } = await openServerDatabaseRegistry(config, { readOnly: dryRun });
  try {
    const report = await registry.garbageCollect({ dryRun, gracePeriodMs: config.gcGracePeriodMs });
    printGcReport(report);
  } finally {
    await registry.close();
  }
  return EXIT.ok;
}

const argv = process.argv.slice(2);
main(argv).then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    const { message, exitCode } = explainFailure(error);
    let text = `stowage-server: ${message}\n`;
    if (error instanceof UsageError) text += `\n${usage(error.command)}\n`;
    if (argv.includes('--debug')) {
      for (let e: unknown = error; e instanceof Error; e = e.cause) text += `${e.stack}\n`;
    }
    process.stderr.write(text);
    // a half-started server (a store opened, then listen failed) must not keep the process alive
    process.exit(exitCode);
  },
);
