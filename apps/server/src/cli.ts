#!/usr/bin/env node
// stowage-server: serve a registry from a local directory, or collect its garbage.
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { createImageStore } from '@stowage/image-store';
import { isStowageError } from '@stowage/oci';
import { pino } from 'pino';
import { buildAuthorizer } from './auth.js';
import { loadConfig } from './config.js';
import { startServer } from './server.js';

const USAGE = `usage:
  stowage-server [serve] [options]      serve the OCI distribution API
  stowage-server gc [--dry-run] [--delete-untagged] [options]
                                        remove unreferenced blobs, stale uploads

options:
  --config <file>        a YAML config shaped like distribution's config.yml
  --root <dir>           storage directory (default ./data)
  --addr <[host]:port>   listen address (default :5000)
  --read-only            refuse every write
  --log-level <level>    trace, debug, info, warn, error (default info)
  --htpasswd <file>      basic auth with a bcrypt htpasswd file (htpasswd -B)
  --tls-cert <file>      serve HTTPS with this certificate
  --tls-key <file>       and this key
  --dry-run              gc: report what would be removed
  --delete-untagged      gc: also delete manifests no tag keeps (children of tagged
                         indexes and referrers of kept manifests are kept)
  --grace-period <dur>   gc: keep content younger than this (default 1h)

Environment variables STOWAGE_<SECTION>_<KEY> (or REGISTRY_…) override the file;
flags override both.`;

async function main(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      config: { type: 'string' },
      root: { type: 'string' },
      addr: { type: 'string' },
      'read-only': { type: 'boolean' },
      'log-level': { type: 'string' },
      htpasswd: { type: 'string' },
      'tls-cert': { type: 'string' },
      'tls-key': { type: 'string' },
      'dry-run': { type: 'boolean' },
      'delete-untagged': { type: 'boolean' },
      'grace-period': { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  const command = positionals[0] ?? 'serve';
  if (values.help || !['serve', 'gc'].includes(command) || positionals.length > 1) {
    process.stdout.write(`${USAGE}\n`);
    return values.help ? 0 : 2;
  }
  const absolute = (value: string | undefined) => (value === undefined ? undefined : resolve(value));
  const config = await loadConfig({
    ...(values.config ? { configFile: values.config } : {}),
    env: process.env,
    overrides: {
      'storage.filesystem.rootdirectory': absolute(values.root),
      'http.addr': values.addr,
      'storage.maintenance.readonly.enabled': values['read-only'],
      'log.level': values['log-level'],
      ...(values.htpasswd ? { 'auth.htpasswd': { realm: 'stowage', path: absolute(values.htpasswd) } } : {}),
      'http.tls.certificate': absolute(values['tls-cert']),
      'http.tls.key': absolute(values['tls-key']),
      'gc.graceperiod': values['grace-period'],
    },
  });
  const logger = pino({ level: config.logLevel, base: { service: 'stowage-server' } });

  if (command === 'gc') {
    const store = await createImageStore({ root: config.root, uploadTtlMs: config.uploadPurging.ageMs });
    try {
      const report = await store.garbageCollect({
        dryRun: values['dry-run'] ?? false,
        deleteUntagged: values['delete-untagged'] ?? false,
        gracePeriodMs: config.gcGracePeriodMs,
      });
      process.stdout.write(
        `${JSON.stringify({
          dryRun: report.dryRun,
          manifestsRemoved: report.manifestsRemoved.length,
          blobsRemoved: report.blobsRemoved.length,
          bytesFreed: report.bytesFreed,
          uploadsRemoved: report.uploadsRemoved,
          recordDataRemoved: report.recordDataRemoved.length,
          blobs: report.blobsRemoved,
        })}\n`,
      );
    } finally {
      await store.close();
    }
    return 0;
  }

  const running = await startServer(config, { logger, auth: await buildAuthorizer(config) });
  await new Promise<void>((resolveStop) => {
    const stop = (signal: string) => {
      logger.info({ signal }, 'shutting down');
      running.close().then(resolveStop, resolveStop);
    };
    process.once('SIGINT', () => stop('SIGINT'));
    process.once('SIGTERM', () => stop('SIGTERM'));
  });
  return 0;
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    const message = isStowageError(error)
      ? `${error.code}: ${error.message}`
      : String((error as Error)?.stack ?? error);
    process.stderr.write(`stowage-server: ${message}\n`);
    process.exitCode = 1;
  },
);
