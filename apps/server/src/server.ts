import { readFile } from 'node:fs/promises';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { ImageStore } from '@stowage/image-store';
import { type Logger, type RegistryWithUploads, resolveLogger } from '@stowage/oci';
import { type Authorizer, createRegistryHandler, createRegistryServer } from '@stowage/registry-server';
import type { PullThroughRegistry, SyncService } from '@stowage/sync';
import { type Backend, openBackend } from './backend.js';
import type { ServerConfig } from './config.js';
import { ServerMetrics } from './metrics.js';
import { type ServerSync, startServerSync } from './sync.js';
import { createUi } from './ui.js';

export interface RunningServer {
  /** `http(s)://host:port` the server listens on. */
  readonly url: string;
  /** What is served (before any pull-through): the image store, or the database registry. */
  readonly store: RegistryWithUploads;
  /** The image store, when the server is not in database mode. */
  readonly imageStore?: ImageStore;
  readonly backend: Backend;
  readonly metrics: ServerMetrics;
  readonly server: Server;
  /** The periodic sync (`sync:` upstreams with a `pollInterval`), when configured. */
  readonly sync?: SyncService;
  /** What the server serves when an upstream is on demand (`proxy:`, or `sync:` with `onDemand`). */
  readonly pullThrough?: PullThroughRegistry;
  /** Stops accepting, lets requests in flight finish up to the drain timeout, closes the store. */
  close(): Promise<void>;
}

export interface StartOptions {
  /** A pino logger (or anything of `@stowage/oci`'s `Logger` shape); the handler and the HTTP server log through it too. */
  readonly logger?: Logger;
  /** Who may do what; default: anyone, anything. */
  readonly auth?: Authorizer;
  /** Where the built web UI is (default: `dist/ui` of the package). */
  readonly uiDirectory?: string;
}

/** File descriptors each connection may need: its socket, and a file it reads or writes (a blob, an upload). */
const FILES_PER_CONNECTION = 2;
/** File descriptors kept for everything else: the listening socket, logs, store locks and indexes. */
const FILES_RESERVED = 64;

/**
 * The soft and hard open-file limits of this process (`RLIMIT_NOFILE`), read from
 * `/proc/self/limits`; `undefined` where that file does not exist (not Linux).
 * Node raises the soft limit to the hard one at start-up, so soft is normally hard here.
 */
export async function openFileLimit(
  path = '/proc/self/limits',
): Promise<{ soft: number; hard: number } | undefined> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch {
    return undefined;
  }
  const match = /^Max open files\s+(\S+)\s+(\S+)/m.exec(text);
  if (!match) return undefined;
  const value = (field: string | undefined) =>
    field === 'unlimited' ? Number.POSITIVE_INFINITY : Number(field);
  const soft = value(match[1]);
  const hard = value(match[2]);
  return Number.isNaN(soft) || Number.isNaN(hard) ? undefined : { soft, hard };
}

/**
 * How many connections fit in `openFiles` descriptors, at most `requested`: each
 * connection may hold its socket and a file, and a reserve is kept for the rest,
 * so connections beyond it are closed at once instead of every request failing
 * with EMFILE.
 */
export function connectionsWithin(requested: number, openFiles: number): number {
  const fit = Math.floor((openFiles - FILES_RESERVED) / FILES_PER_CONNECTION);
  return Math.max(1, Math.min(requested, fit));
}

/**
 * Starts stowage-server: the registry API over the image store at
 * `config.root` (or, in database mode, over the database and the blobs at the
 * root), plus health and metrics.
 */
export async function startServer(config: ServerConfig, options: StartOptions): Promise<RunningServer> {
  const logger = resolveLogger(options.logger);
  const backend = await openBackend(config, { logger });
  const store = backend.registry;
  let sync: ServerSync | undefined;
  if (config.sync) {
    try {
      sync = await startServerSync({ sync: config.sync, store, root: config.root, logger });
    } catch (error) {
      await backend.close();
      throw error;
    }
  }
  const metrics = new ServerMetrics();
  const handler = createRegistryHandler({
    registry: sync?.registry ?? store,
    ...(options.auth ? { auth: options.auth } : {}),
    limits: config.limits,
    logger: options.logger,
    readOnly: config.readOnly,
    allowDelete: config.deleteEnabled,
    onRequest: (record) => metrics.record(record),
    onUpload: (delta) => metrics.upload(delta),
  });
  const ui = config.ui.enabled
    ? createUi({
        auth: options.auth,
        login: config.auth.htpasswd ? 'htpasswd' : config.auth.token ? 'token' : 'none',
        secure: config.tls !== undefined,
        writable: { push: !config.readOnly, delete: !config.readOnly && config.deleteEnabled },
        ...(options.uiDirectory ? { directory: options.uiDirectory } : {}),
      })
    : undefined;
  let draining = false;
  let inFlight = 0;
  let drained: (() => void) | undefined;

  function plain(response: ServerResponse, status: number, type: string, body: string): void {
    response.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(body) }).end(body);
  }

  function onRequest(request: IncomingMessage, response: ServerResponse): Promise<void> | undefined {
    const path = (request.url ?? '/').split('?')[0];
    if (path === '/healthz') {
      plain(response, 200, 'text/plain', 'ok\n');
      return undefined;
    }
    if (path === '/readyz') {
      // while draining, the 503 says when to look again like every other 503 of the server (1 s)
      if (draining) {
        response.setHeader('retry-after', '1');
        plain(response, 503, 'text/plain', 'draining\n');
        return undefined;
      }
      return backend.unready().then((problem) => {
        if (problem !== undefined) response.setHeader('retry-after', '1');
        plain(response, problem === undefined ? 200 : 503, 'text/plain', `${problem ?? 'ready'}\n`);
      });
    }
    if (path === '/metrics') {
      plain(response, 200, 'text/plain; version=0.0.4', metrics.render() + backend.metrics());
      return undefined;
    }
    if (ui) {
      const served = ui.handle(request, response, path ?? '/');
      if (served) return served;
      if (ui.prepare(request, response)) return undefined;
    }
    inFlight++;
    response.once('close', () => {
      inFlight--;
      if (draining && inFlight === 0) drained?.();
    });
    if (draining) response.setHeader('connection', 'close');
    // returned to createRegistryServer, which turns anything that escapes into a 500
    return handler(request, response);
  }

  let maxConnections = config.limits.maxConnections;
  const files = await openFileLimit();
  if (files && connectionsWithin(maxConnections, files.soft) < maxConnections) {
    maxConnections = connectionsWithin(maxConnections, files.soft);
    logger.warn(
      {
        maxConnections: config.limits.maxConnections,
        openFileLimit: files.soft,
        openFileHardLimit: files.hard,
        effectiveMaxConnections: maxConnections,
      },
      `the open-file limit (${files.soft}) is too low for http.maxconnections ${config.limits.maxConnections}: ` +
        `serving at most ${maxConnections} connections; raise the limit (ulimit -n, systemd LimitNOFILE=) to allow more`,
    );
  }
  // Uploads may take as long as they need (no request timeout): a body slower than the
  // minimum rate is cut, and so are headers slower than 60 s.
  const server = createRegistryServer({
    handler: onRequest,
    logger: options.logger,
    minBodyRate: config.limits.minBodyRate,
    maxConnections,
    headersTimeoutMs: 60_000,
    keepAliveTimeoutMs: 65_000,
    ...(config.tls
      ? { tls: { cert: await readFile(config.tls.certificate), key: await readFile(config.tls.key) } }
      : {}),
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(config.port, config.host, () => {
      server.off('error', reject);
      resolve();
    });
  }).catch(async (error: unknown) => {
    // the sync timers and GC workers must not keep a server that never listened alive
    await sync?.close();
    await backend.close();
    throw error;
  });
  const address = server.address() as AddressInfo;
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  const url = `${config.tls ? 'https' : 'http'}://${host}:${address.port}`;

  let purgeTimer: NodeJS.Timeout | undefined;
  if (config.uploadPurging.enabled && !config.readOnly) {
    purgeTimer = setInterval(() => {
      backend
        .purgeUploads()
        .then(async (count) => {
          if (count > 0) logger.info({ uploadsPurged: count }, 'purged stale uploads');
          // the sessions purged (or expired) are no longer in progress: let the gauge know
          await handler.sweepUploads();
        })
        .catch((error: unknown) => logger.error({ err: error }, 'upload purge failed'));
    }, config.uploadPurging.intervalMs);
    purgeTimer.unref();
  }

  let closing: Promise<void> | undefined;
  async function close(): Promise<void> {
    closing ??= (async () => {
      draining = true;
      clearInterval(purgeTimer);
      // no new passes while draining; a running one is aborted, and awaited before the store closes
      const syncStopped = sync?.stopService();
      const stopped = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeIdleConnections();
      if (inFlight > 0) {
        logger.info({ inFlight, drainTimeoutMs: config.drainTimeoutMs }, 'draining requests in flight');
        await new Promise<void>((resolve) => {
          drained = resolve;
          setTimeout(resolve, config.drainTimeoutMs).unref();
        });
      }
      server.closeAllConnections();
      await stopped;
      await syncStopped;
      await sync?.close();
      await backend.close();
      logger.info({}, 'stopped');
    })();
    return closing;
  }

  logger.info({ url, root: config.root, readOnly: config.readOnly, backend: backend.kind }, 'listening');
  return {
    url,
    store,
    ...(backend.imageStore ? { imageStore: backend.imageStore } : {}),
    backend,
    metrics,
    server,
    ...(sync?.service ? { sync: sync.service } : {}),
    ...(sync?.pullThrough ? { pullThrough: sync.pullThrough } : {}),
    close,
  };
}
