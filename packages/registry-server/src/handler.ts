// `createRegistryHandler`: one request's life (id, exchange, dispatch, error edge, record, log,
// diagnostics) around the route handlers of handlers/, composed over one backend.
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createFileStaging, type UploadStaging, withUploadSessions } from '@stowage/blob-store';
import {
  hasUploadSessions,
  type Logger,
  MAX_MANIFEST_SIZE,
  type Registry,
  type RegistryCapabilities,
  type RegistryWithUploads,
  resolveLogger,
} from '@stowage/oci';
import { anonymousAuthorizer } from './auth/anonymous.js';
import type { Authorizer } from './auth/types.js';
import { servedCapabilities } from './capabilities.js';
import { publishRequest } from './diagnostics.js';
import { dispatch } from './dispatch.js';
import { answerFailure, HttpError, safeLog } from './errors.js';
import { createBodyReader } from './internal/body.js';
import type { HandlerContext } from './internal/context.js';
import { API_VERSION, clientWentAway, discard, type Exchange, settled } from './internal/exchange.js';
import { createSessionTracker } from './internal/sessions.js';
import { parseRoute, type Route, routeLabel } from './routes.js';

export type { Logger } from '@stowage/oci';

export interface RegistryLimits {
  /** Largest manifest accepted, in bytes. Default 4 MiB. */
  readonly maxManifestSize?: number;
  /** Largest blob accepted, in bytes. Default: no limit. */
  readonly maxBlobSize?: number;
  /** A request body that sends nothing for this long is abandoned. Default 60 s. */
  readonly bodyIdleTimeoutMs?: number;
}

/** What the handler reports about each request when it ends (for metrics). */
export interface RequestRecord {
  readonly id: string;
  readonly method: string;
  readonly route: string;
  /** The status sent; 499 (nginx's "client closed request") when the request was `aborted`. */
  readonly status: number;
  /**
   * The client went away before the answer was complete (it closed the
   * connection mid-body or mid-download): its own outcome, neither a success
   * nor a server failure, and logged at info level, never as an error.
   */
  readonly aborted: boolean;
  readonly durationMs: number;
  readonly bytesIn: number;
  readonly bytesOut: number;
  readonly repository?: string;
  readonly subject?: string;
}

export interface RegistryHandlerOptions {
  readonly registry: Registry;
  /** Who may do what. Default: anyone may do anything. */
  readonly auth?: Authorizer;
  /** @deprecated The old name of `auth`, read only when `auth` is not given. */
  readonly authorizer?: Authorizer;
  readonly limits?: RegistryLimits;
  /** A pino-compatible logger (`@stowage/oci`'s `Logger`): `info` per request, `error` for 5xx. Silent by default. */
  readonly logger?: Logger;
  /** Refuse every write with 405 `UNSUPPORTED`. */
  readonly readOnly?: boolean;
  /** Allow `DELETE` of manifests, tags and blobs (upload cancels are always allowed). Default true. */
  readonly allowDelete?: boolean;
  /**
   * Where partial uploads live when the registry has no upload sessions of its
   * own (they then come from `@stowage/blob-store`'s `withUploadSessions`).
   * Default: files in a new directory under the system temp directory, so
   * memory stays bounded whatever is uploaded. Unused when the registry has sessions.
   */
  readonly uploadStaging?: UploadStaging;
  /** Called once per request after the response ends. */
  readonly onRequest?: (record: RequestRecord) => void;
  /**
   * Called with +1 when an upload session is started through this handler, and
   * with −1 once when that session ends: finished, refused in a way the store
   * ends it (a wrong digest, say), cancelled, or found gone (purged or expired;
   * see `sweepUploads`). Sessions started elsewhere are never reported.
   */
  readonly onUpload?: (delta: 1 | -1) => void;
}

export interface RegistryHandler {
  (request: IncomingMessage, response: ServerResponse): Promise<void>;
  /**
   * Asks the store about every session this handler started and still counts
   * as open, and reports those it no longer knows (purged, expired) as ended
   * through `onUpload`. Call it after purging uploads. Returns how many ended.
   */
  sweepUploads(): Promise<number>;
}

/** The status an aborted request is recorded with (nginx's "client closed request"). */
const ABORTED_STATUS = 499;

/** The registry with upload sessions: its own, or the shared ones over a staging area. */
function withSessions(registry: Registry, staging: UploadStaging | undefined): RegistryWithUploads {
  if (hasUploadSessions(registry)) return registry;
  return withUploadSessions(registry, {
    staging:
      staging ??
      // a temp directory of our own; chunks are not fsynced: the sessions do not outlive the process
      createFileStaging({ dir: join(tmpdir(), `stowage-uploads-${randomUUID()}`), durable: false }),
  });
}

/**
 * The OCI distribution API (v1.1) over any `Registry`. Returns a Node
 * `(request, response)` handler; every refusal is an OCI error body with the
 * matching status, and no error ever escapes as a crash.
 */
export function createRegistryHandler(options: RegistryHandlerOptions): RegistryHandler {
  const registry = withSessions(options.registry, options.uploadStaging);
  const authorizer = options.auth ?? options.authorizer ?? anonymousAuthorizer;
  const openAccess = authorizer === anonymousAuthorizer;
  const readOnly = options.readOnly === true;
  const allowDelete = options.allowDelete !== false;
  const logger = resolveLogger(options.logger);
  const sessions = createSessionTracker(registry, options.onUpload);

  let served: Promise<RegistryCapabilities> | undefined;
  /** Asked of the backend once, when first needed; a failure is not kept, so the next ping asks again. */
  function capabilities(): Promise<RegistryCapabilities> {
    if (served) return served;
    const asked = registry
      .capabilities()
      .then((backend) => servedCapabilities(backend, { openAccess, readOnly, allowDelete }));
    served = asked;
    asked.catch(() => {
      if (served === asked) served = undefined;
    });
    return asked;
  }

  const context: HandlerContext = {
    registry,
    authorizer,
    openAccess,
    readOnly,
    allowDelete,
    maxManifestSize: options.limits?.maxManifestSize ?? MAX_MANIFEST_SIZE,
    maxBlobSize: options.limits?.maxBlobSize,
    body: createBodyReader(options.limits?.bodyIdleTimeoutMs ?? 60_000),
    sessions,
    capabilities,
  };

  async function handle(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const started = performance.now();
    const incomingId = request.headers['x-request-id'];
    const id =
      typeof incomingId === 'string' && /^[\w.-]{1,128}$/.test(incomingId) ? incomingId : randomUUID();
    const controller = new AbortController();
    let url: URL;
    try {
      url = new URL(request.url ?? '/', 'http://registry.invalid');
    } catch {
      url = new URL('http://registry.invalid/');
    }
    const exchange: Exchange = {
      request,
      response,
      url,
      signal: controller.signal,
      bytesIn: 0,
      bytesOut: 0,
      clientGone: false,
      cutHere: false,
    };
    const socket = request.socket;
    response.on('close', () => {
      if (response.writableFinished) return;
      if (!exchange.cutHere) exchange.clientGone = true;
      controller.abort(new HttpError('UNKNOWN', 'client went away', { status: ABORTED_STATUS }));
    });
    // Node finishes a response whose connection broke mid-write too (the write fails, the
    // response still ends): a connection already gone by then means the client did not get it all.
    response.on('finish', () => {
      if (!exchange.cutHere && (socket?.destroyed || socket?.errored)) exchange.clientGone = true;
    });
    response.setHeader('docker-distribution-api-version', API_VERSION);
    response.setHeader('x-request-id', id);
    let route: Route | undefined;
    let aborted = false;
    try {
      // The raw path, not the URL parser's: it would resolve `..` and `%2e%2e` segments away.
      route = parseRoute((request.url ?? '/').split('?')[0] ?? '/');
      await dispatch(context, exchange, route);
    } catch (error) {
      aborted = clientWentAway(exchange);
      if (aborted) {
        // Nobody to answer, and nothing went wrong here: the request is recorded as aborted.
        discard(exchange);
      } else {
        // A stalled body is a 408 even when the store reported it in its own words.
        answerFailure(exchange, exchange.bodyTimeout ?? error, { id, logger });
      }
    } finally {
      // The answer may still be on its way (a large blob): the outcome is known once it is out, or cut.
      await settled(response);
      aborted ||= exchange.clientGone;
      const record: RequestRecord = {
        id,
        method: request.method ?? '',
        route: routeLabel(route),
        status: aborted ? ABORTED_STATUS : response.statusCode,
        aborted,
        durationMs: performance.now() - started,
        bytesIn: exchange.bytesIn,
        bytesOut: exchange.bytesOut,
        ...(route && 'name' in route ? { repository: route.name } : {}),
        ...(exchange.principal?.subject ? { subject: exchange.principal.subject } : {}),
      };
      try {
        options.onRequest?.(record);
      } catch (error) {
        safeLog(logger, 'error', { requestId: id, err: error }, 'onRequest failed');
      }
      publishRequest(() => ({
        id: record.id,
        method: record.method,
        route: record.route,
        status: record.status,
        durationMs: record.durationMs,
        aborted: record.aborted,
        ...(record.repository === undefined ? {} : { repository: record.repository }),
      }));
      safeLog(
        logger,
        'info',
        {
          requestId: record.id,
          method: record.method,
          path: url.pathname,
          route: record.route,
          status: record.status,
          ...(aborted ? { aborted: true } : {}),
          durationMs: Math.round(record.durationMs * 10) / 10,
          bytesIn: record.bytesIn,
          bytesOut: record.bytesOut,
          ...(record.subject ? { user: record.subject } : {}),
        },
        aborted ? 'request aborted by the client' : 'request',
      );
    }
  }

  /** The handler's promise never rejects, and nothing it does can end the process. */
  const handler = async (request: IncomingMessage, response: ServerResponse): Promise<void> => {
    try {
      await handle(request, response);
    } catch (error) {
      safeLog(logger, 'error', { err: error }, 'request handler failed');
      try {
        if (!response.writableEnded) response.destroy();
      } catch {
        // already gone
      }
    }
  };
  return Object.assign(handler, { sweepUploads: () => sessions.sweep() });
}
