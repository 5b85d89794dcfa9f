import { readFile } from 'node:fs/promises';
import {
  createServer as createHttpServer,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { createImageStore, type ImageStore } from '@stowage/image-store';
import { type Authorizer, createRegistryHandler, type Logger } from '@stowage/registry-server';
import type { ServerConfig } from './config.js';
import { ServerMetrics } from './metrics.js';

export interface RunningServer {
  /** `http(s)://host:port` the server listens on. */
  readonly url: string;
  readonly store: ImageStore;
  readonly metrics: ServerMetrics;
  readonly server: Server;
  /** Stops accepting, lets requests in flight finish up to the drain timeout, closes the store. */
  close(): Promise<void>;
}

export interface StartOptions {
  readonly logger: Logger & { child?: (bindings: object) => Logger };
  /** Who may do what; default: anyone, anything. */
  readonly auth?: Authorizer;
}

/** Starts stowage-server: the registry API over the image store at `config.root`, plus health and metrics. */
export async function startServer(config: ServerConfig, options: StartOptions): Promise<RunningServer> {
  const logger = options.logger;
  const store = await createImageStore({
    root: config.root,
    readOnly: config.readOnly,
    uploadTtlMs: config.uploadPurging.ageMs,
    maxManifestSize: config.limits.maxManifestSize,
  });
  const metrics = new ServerMetrics();
  const handler = createRegistryHandler({
    registry: store,
    ...(options.auth ? { auth: options.auth } : {}),
    limits: config.limits,
    logger,
    readOnly: config.readOnly,
    allowDelete: config.deleteEnabled,
    onRequest: (record) => metrics.record(record),
    onUpload: (delta) => metrics.upload(delta),
  });
  let draining = false;
  let inFlight = 0;
  let drained: (() => void) | undefined;

  function plain(response: ServerResponse, status: number, type: string, body: string): void {
    response.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(body) }).end(body);
  }

  function onRequest(request: IncomingMessage, response: ServerResponse): void {
    const path = (request.url ?? '/').split('?')[0];
    if (path === '/healthz') {
      plain(response, 200, 'text/plain', 'ok\n');
      return;
    }
    if (path === '/readyz') {
      plain(response, draining ? 503 : 200, 'text/plain', draining ? 'draining\n' : 'ready\n');
      return;
    }
    if (path === '/metrics') {
      plain(response, 200, 'text/plain; version=0.0.4', metrics.render());
      return;
    }
    inFlight++;
    response.once('close', () => {
      inFlight--;
      if (draining && inFlight === 0) drained?.();
    });
    if (draining) response.setHeader('connection', 'close');
    void handler(request, response);
  }

  const server = config.tls
    ? createHttpsServer(
        { cert: await readFile(config.tls.certificate), key: await readFile(config.tls.key) },
        onRequest,
      )
    : createHttpServer(onRequest);
  // Large uploads may take long; the handler's own idle timeout covers stalled bodies.
  server.requestTimeout = 0;
  server.headersTimeout = 60_000;
  server.keepAliveTimeout = 65_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(config.port, config.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address() as AddressInfo;
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  const url = `${config.tls ? 'https' : 'http'}://${host}:${address.port}`;

  let purgeTimer: NodeJS.Timeout | undefined;
  if (config.uploadPurging.enabled && !config.readOnly) {
    purgeTimer = setInterval(() => {
      store
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
      await store.close();
      logger.info({}, 'stopped');
    })();
    return closing;
  }

  logger.info({ url, root: config.root, readOnly: config.readOnly }, 'listening');
  return { url, store, metrics, server, close };
}
