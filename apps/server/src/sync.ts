// Mirroring in stowage-server: the `sync:` section (zot's `extensions.sync`
// shape) and distribution's `proxy:` section read into one SyncConfig, and at
// start the registry the handler serves (the image store, or a pull-through
// registry over it) and the periodic sync service, stopped on drain.
import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
// Our own mkdir -p: Node 20's recursive mkdir loops for ever where a parent refuses the entry (/proc).
import { mkdir } from '@stowage/blob-store';
import {
  isStowageError,
  type Logger,
  type Registry,
  type RegistryWithUploads,
  resolveLogger,
} from '@stowage/oci';
import {
  configError,
  createPullThroughRegistry,
  type PullThroughRegistry,
  parseSyncConfig,
  proxyToSyncConfig,
  type SyncConfig,
  type SyncService,
  startSyncService,
} from '@stowage/sync';

/** What the configuration asks the server to mirror. */
export interface ServerSyncConfig {
  /** The section it came from: `sync` (zot's shape) or `proxy` (distribution's pull-through cache). */
  readonly section: 'sync' | 'proxy';
  readonly config: SyncConfig;
}

export interface SyncSectionOptions {
  /** Relative paths in the section (`credentialsFile`) resolve against it: the config file's directory. */
  readonly baseDir: string;
  /** The config file, for messages. */
  readonly origin?: string;
  /** A read-only server cannot mirror: the section is refused. */
  readonly readOnly?: boolean;
}

type Raw = Record<string, unknown>;

/** `registries[0].urls` → `sync.registries[0].urls`; a key already under the section is kept. */
function under(section: string, key: string): string {
  return key === section || key.startsWith(`${section}.`) || key.startsWith(`${section}[`)
    ? key
    : `${section}.${key}`;
}

/**
 * The `sync:` or `proxy:` section of a parsed server config, checked; `undefined`
 * when there is neither (or `sync.enable` is false). A problem is a `SyncError`
 * `CONFIG_INVALID` whose `details.key` is the whole key (`sync.registries[0].urls[0]`)
 * and `details.detail` what is wrong with it.
 */
export async function readSyncSections(
  raw: Readonly<Raw>,
  options: SyncSectionOptions,
): Promise<ServerSyncConfig | undefined> {
  const given = (key: string) => Object.hasOwn(raw, key) && raw[key] !== undefined && raw[key] !== null;
  const hasSync = given('sync');
  const hasProxy = given('proxy');
  if (!hasSync && !hasProxy) return undefined;
  if (hasSync && hasProxy) {
    throw configError(
      'proxy',
      'choose one of sync and proxy (proxy is an on-demand sync of one upstream: sync.registries[].onDemand)',
    );
  }
  const section = hasSync ? 'sync' : 'proxy';
  const parseOptions = {
    ...(options.origin !== undefined ? { origin: options.origin } : {}),
    readFile: (path: string) => readFile(resolve(options.baseDir, path), 'utf8'),
  };
  let config: SyncConfig;
  try {
    config =
      section === 'sync'
        ? await parseSyncConfig(raw.sync, parseOptions)
        : await proxyToSyncConfig(raw.proxy, parseOptions);
  } catch (error) {
    if (!isStowageError(error, 'CONFIG_INVALID')) throw error;
    const key = typeof error.details.key === 'string' ? error.details.key : '';
    const detail = typeof error.details.detail === 'string' ? error.details.detail : error.message;
    throw configError(key === '' ? section : under(section, key), detail);
  }
  if (!config.enabled) return undefined;
  if (options.readOnly && config.upstreams.length > 0) {
    throw configError(
      section,
      'a read-only server cannot mirror (storage.maintenance.readonly); remove one of them',
    );
  }
  return { section, config };
}

/** The directory under the storage root where sync keeps its state: a dot directory, which the image store neither lists nor owns. */
export function syncStateDir(root: string): string {
  return join(root, '.sync');
}

export interface ServerSync {
  /** What the registry handler serves: the pull-through registry, or the store itself. */
  readonly registry: Registry;
  /** The pull-through registry, when an upstream is `onDemand`. */
  readonly pullThrough: PullThroughRegistry | undefined;
  /** The periodic service, when an upstream has a `pollInterval`. */
  readonly service: SyncService | undefined;
  /** Stops the periodic passes (aborting those running, and waiting for them). */
  stopService(): Promise<void>;
  /** Stops the service and closes the pull-through registry's upstream clients (not the store). */
  close(): Promise<void>;
}

export interface StartServerSyncOptions {
  readonly sync: ServerSyncConfig;
  readonly store: RegistryWithUploads;
  /** The storage root (`config.root`). */
  readonly root: string;
  readonly logger?: Logger;
}

/** Starts what the section asks for: a pull-through registry for `onDemand` upstreams, the service for `pollInterval` ones. */
export async function startServerSync(options: StartServerSyncOptions): Promise<ServerSync> {
  const { sync, store } = options;
  const logger = resolveLogger(options.logger);
  const { config } = sync;
  let pullThrough: PullThroughRegistry | undefined;
  if (config.upstreams.some((upstream) => upstream.onDemand)) {
    pullThrough = createPullThroughRegistry({
      local: store,
      config,
      // distribution's proxy refuses pushes; a zot-style sync keeps the store writable
      writes: sync.section === 'proxy' ? 'refuse' : 'pass',
      ...(options.logger ? { logger: options.logger } : {}),
    });
  }
  let service: SyncService | undefined;
  if (config.upstreams.some((upstream) => upstream.pollIntervalMs !== undefined)) {
    const stateDir = syncStateDir(options.root);
    await mkdir(stateDir, { recursive: true });
    service = startSyncService({
      config,
      destination: store,
      stateDir,
      ...(options.logger ? { logger: options.logger } : {}),
      onReport: (report, upstream) => {
        const fields = {
          upstream: config.upstreams.find((u) => u.index === upstream)?.urls[0],
          synced: report.synced,
          skipped: report.skipped,
          failed: report.failed,
          bytesCopied: report.bytesCopied,
          durationMs: report.durationMs,
        };
        if (report.failed > 0 || report.errors.length > 0) {
          logger.warn(
            {
              ...fields,
              failures: report.images
                .filter((image) => image.status === 'failed')
                .map((image) => ({
                  upstream: image.upstream,
                  repository: image.repository,
                  reference: image.reference,
                  ...(image.error ? { code: image.error.code, error: image.error.message } : {}),
                })),
              errors: report.errors,
            },
            'sync pass finished with failures',
          );
        } else {
          logger.info(fields, 'sync pass finished');
        }
      },
    });
  }
  logger.info(
    {
      section: sync.section,
      onDemand: pullThrough !== undefined,
      periodic: service !== undefined,
      upstreams: config.upstreams.map((upstream) => upstream.urls[0]),
    },
    'mirroring',
  );
  let stopping: Promise<void> | undefined;
  const stopService = () => {
    stopping ??= service ? service.stop() : Promise.resolve();
    return stopping;
  };
  let closing: Promise<void> | undefined;
  return {
    registry: pullThrough ?? store,
    pullThrough,
    service,
    stopService,
    close() {
      closing ??= (async () => {
        await stopService();
        await pullThrough?.close();
      })();
      return closing;
    },
  };
}
