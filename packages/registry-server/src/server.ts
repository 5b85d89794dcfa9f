import {
  createServer as createHttpServer,
  type IncomingMessage,
  type Server,
  type ServerOptions,
  type ServerResponse,
  STATUS_CODES,
} from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { Duplex } from 'node:stream';
import { type Logger, resolveLogger } from '@stowage/oci';
import { HttpError } from './errors.js';

/** A request body slower than `bytesPerSecond` on average over `windowMs` is cut. */
export interface MinBodyRate {
  /** 0 turns the check off. */
  readonly bytesPerSecond: number;
  readonly windowMs: number;
}

export interface RegistryServerOptions {
  /** Serves each request: the handler of `createRegistryHandler`, or a function that calls it. */
  readonly handler: (request: IncomingMessage, response: ServerResponse) => Promise<void> | void;
  /** Serve HTTPS with this PEM certificate (chain) and key instead of plain HTTP. */
  readonly tls?: { readonly cert: string | Buffer; readonly key: string | Buffer };
  /**
   * A pino-compatible logger: `error` for a failure that escaped the handler,
   * `warn` (rate-limited) for dropped connections and cut bodies. Silent by default.
   */
  readonly logger?: Logger;
  /** Default 1024 bytes per second over 60 s. */
  readonly minBodyRate?: MinBodyRate;
  /** Connections beyond this many are closed as soon as they are accepted. Default 1000. */
  readonly maxConnections?: number;
  /** The request line and headers must arrive within this long. Default 60 s. */
  readonly headersTimeoutMs?: number;
  /** An idle keep-alive connection is closed after this long. Default 65 s. */
  readonly keepAliveTimeoutMs?: number;
  /** The shortest time between two warn lines of one kind. Default 60 s. */
  readonly warnIntervalMs?: number;
}

const API_VERSION = 'registry/2.0';
/** How long an answered bad connection may keep sending before it is destroyed. */
const LINGER_MS = 2000;
/** Headers a 500 keeps from what the failed handler had set. */
const KEPT_ON_FAILURE = new Set(['docker-distribution-api-version', 'x-request-id']);
/** Socket errors that only mean the peer went away. */
const GONE = new Set(['ECONNRESET', 'EPIPE', 'ECONNABORTED', 'ETIMEDOUT', 'ERR_STREAM_DESTROYED']);

function errorBody(code: string, message: string): string {
  return JSON.stringify({ errors: [{ code, message }] });
}

/**
 * What to answer for an error Node's HTTP parser (or its header timer) raised
 * before any handler ran; `undefined` when the socket should just be closed.
 */
function parserAnswer(
  error: NodeJS.ErrnoException,
): { status: number; code: string; message: string } | undefined {
  const code = error.code ?? '';
  const reason = error.message.replace(/^Parse Error: /, '');
  if (code === 'HPE_HEADER_OVERFLOW') {
    return { status: 431, code: 'SIZE_INVALID', message: 'the request headers are too large' };
  }
  if (code === 'HPE_CHUNK_EXTENSIONS_OVERFLOW') {
    return { status: 413, code: 'SIZE_INVALID', message: 'the chunk extensions are too large' };
  }
  if (code === 'ERR_HTTP_REQUEST_TIMEOUT') {
    return { status: 408, code: 'UNSUPPORTED', message: 'the request headers did not arrive in time' };
  }
  if (code.startsWith('HPE_')) {
    return { status: 400, code: 'UNSUPPORTED', message: `malformed HTTP request: ${reason}` };
  }
  return undefined;
}

/** Path and query of an absolute-form request target (RFC 9112 3.2.2), left raw: no dot segment is resolved. */
export function originForm(target: string): string {
  const match = /^[a-z][a-z\d+.-]*:\/\/[^/?#]*/i.exec(target);
  if (!match) return target;
  const rest = target.slice(match[0].length);
  return rest.startsWith('/') ? rest : `/${rest}`;
}

/** Calls `warn` at once, then at most once per interval, with how many events each line stands for. */
function rateLimited(interval: number, warn: (count: number) => void): () => void {
  let last = Number.NEGATIVE_INFINITY;
  let pending = 0;
  return () => {
    pending++;
    const now = performance.now();
    if (now - last < interval) return;
    last = now;
    const count = pending;
    pending = 0;
    warn(count);
  };
}

interface Watched {
  readonly request: IncomingMessage;
  readonly response: ServerResponse;
  /** Time the body has been waited for (ms), leaving out our own backlog and event-loop lag. */
  counted: number;
  last: number;
  /** `socket.bytesRead` against `counted`, oldest first; the first is at or before the window's start. */
  readonly samples: { counted: number; bytes: number }[];
}

/**
 * An HTTP (or HTTPS) server, not yet listening, that serves `handler` safely:
 *
 * - an error escaping the handler (thrown or rejected) is a 500 `UNKNOWN` OCI error for
 *   that request (or a closed connection when the answer had begun) and one `error` log
 *   line, never a crash; socket errors never crash either;
 * - requests Node's parser refuses before any handler runs (a NUL or tab in the target,
 *   headers too large, headers too slow, an `Expect` other than `100-continue`, `CONNECT`)
 *   get an OCI error body with `Connection: close`; absolute-form targets
 *   (`GET http://host/v2/ HTTP/1.1`) reach the handler as path and query;
 * - a request body slower than `minBodyRate` on average over its window is cut (408);
 * - beyond `maxConnections`, new connections are closed as soon as they are accepted.
 */
export function createRegistryServer(options: RegistryServerOptions): Server {
  const logger = resolveLogger(options.logger);
  const bytesPerSecond = options.minBodyRate?.bytesPerSecond ?? 1024;
  const windowMs = options.minBodyRate?.windowMs ?? 60_000;
  const headersTimeout = options.headersTimeoutMs ?? 60_000;
  const warnInterval = options.warnIntervalMs ?? 60_000;
  const httpOptions: ServerOptions = {
    // The whole request may take as long as it needs: large uploads are long. Slow
    // bodies are cut by the minimum rate below, slow headers by headersTimeout.
    requestTimeout: 0,
    headersTimeout,
    keepAliveTimeout: options.keepAliveTimeoutMs ?? 65_000,
    // how often Node looks for connections past headersTimeout
    connectionsCheckingInterval: Math.min(30_000, Math.max(100, Math.floor(headersTimeout / 4))),
  };
  const server: Server = options.tls
    ? (createHttpsServer({
        ...httpOptions,
        cert: options.tls.cert,
        key: options.tls.key,
      }) as unknown as Server)
    : createHttpServer(httpOptions);
  server.maxConnections = options.maxConnections ?? 1000;

  /** The responses not yet finished on each socket, so a late parser error does not write over one. */
  const responses = new WeakMap<Duplex, Set<ServerResponse>>();
  /** Sockets already answered by an error of their own: what they still send is ignored. */
  const answered = new WeakSet<Duplex>();

  /** Writes a whole error answer straight onto a socket that has no response object, then closes it. */
  function answerSocket(socket: Duplex, status: number, code: string, message: string, extra = ''): void {
    answered.add(socket);
    socket.on('error', () => socket.destroy());
    if (!socket.writable) {
      socket.destroy();
      return;
    }
    const body = errorBody(code, message);
    socket.end(
      `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ''}\r\n` +
        'content-type: application/json\r\n' +
        `content-length: ${Buffer.byteLength(body)}\r\n` +
        `docker-distribution-api-version: ${API_VERSION}\r\n` +
        `${extra}connection: close\r\n\r\n${body}`,
    );
    // Closing while the peer still sends would reset the connection and could lose the
    // answer: wait for the peer to finish (or a short while), discarding what it sends.
    const timer = setTimeout(() => socket.destroy(), LINGER_MS);
    timer.unref();
    socket.once('end', () => socket.destroy());
    socket.once('close', () => clearTimeout(timer));
  }

  /** Replaces whatever the response had with an OCI error answer and `Connection: close`. */
  function answerResponse(response: ServerResponse, status: number, code: string, message: string): void {
    for (const name of response.getHeaderNames()) {
      if (!KEPT_ON_FAILURE.has(name)) response.removeHeader(name);
    }
    const body = errorBody(code, message);
    response.setHeader('docker-distribution-api-version', API_VERSION);
    response.setHeader('content-type', 'application/json');
    response.setHeader('content-length', Buffer.byteLength(body));
    response.setHeader('connection', 'close');
    response.writeHead(status).end(response.req.method === 'HEAD' ? undefined : body);
  }

  function failed(request: IncomingMessage, response: ServerResponse, error: unknown): void {
    // The client went away (the handler saw its body abort, say): nobody to answer, nothing wrong here.
    if (request.socket.destroyed || response.destroyed) return;
    logger.error(
      { err: error, method: request.method, path: (request.url ?? '').split('?')[0]?.slice(0, 300) },
      'request handler failed',
    );
    if (response.writableEnded) return;
    if (response.headersSent) {
      response.destroy();
      return;
    }
    try {
      answerResponse(response, 500, 'UNKNOWN', 'internal error');
    } catch {
      response.destroy();
    }
  }

  // -- minimum body rate --------------------------------------------------------------------

  const tickMs = Math.min(1000, Math.max(50, Math.floor(windowMs / 20)));
  const watched = new Set<Watched>();
  let ticker: NodeJS.Timeout | undefined;
  const warnCut = rateLimited(warnInterval, (count) =>
    logger.warn({ count, bytesPerSecond, windowMs }, 'request bodies slower than the minimum rate were cut'),
  );

  function watch(request: IncomingMessage, response: ServerResponse): void {
    if (bytesPerSecond <= 0 || windowMs <= 0) return;
    const length = request.headers['content-length'];
    const hasBody =
      request.headers['transfer-encoding'] !== undefined || (length !== undefined && length !== '0');
    if (!hasBody || request.complete) return;
    const now = performance.now();
    watched.add({
      request,
      response,
      counted: 0,
      last: now,
      samples: [{ counted: 0, bytes: request.socket.bytesRead }],
    });
    ticker ??= setInterval(check, tickMs);
    ticker.unref();
  }

  function check(): void {
    const now = performance.now();
    for (const entry of watched) {
      const { request } = entry;
      if (request.complete || request.socket.destroyed) {
        watched.delete(entry);
        continue;
      }
      const elapsed = now - entry.last;
      entry.last = now;
      // Data waiting in the request means we are slower than the client: that time is
      // not held against it; nor is more than two ticks of a late tick (our event-loop lag).
      if (request.readableLength === 0) entry.counted += Math.min(elapsed, 2 * tickMs);
      const bytes = request.socket.bytesRead;
      const samples = entry.samples;
      const newest = samples[samples.length - 1];
      if (newest && newest.counted === entry.counted) newest.bytes = bytes;
      else samples.push({ counted: entry.counted, bytes });
      while (samples.length > 1 && (samples[1]?.counted ?? 0) <= entry.counted - windowMs) samples.shift();
      const oldest = samples[0];
      if (!oldest || entry.counted < windowMs) continue;
      const span = entry.counted - oldest.counted;
      if ((bytes - oldest.bytes) * 1000 < bytesPerSecond * span) cut(entry);
    }
    if (watched.size === 0 && ticker) {
      clearInterval(ticker);
      ticker = undefined;
    }
  }

  function cut(entry: Watched): void {
    watched.delete(entry);
    warnCut();
    const { request, response } = entry;
    const message = `the request body arrived slower than ${bytesPerSecond} bytes per second over ${windowMs / 1000} s`;
    // Ends the body for whoever reads it (the handler's read fails with this 408), and the
    // connection with it. Node would not do it by itself once the response is finished:
    // a request already answered is never aborted, and its reader would wait on.
    const end = () => request.destroy(new HttpError('BLOB_UPLOAD_INVALID', message, { status: 408 }));
    if (response.headersSent || response.destroyed) {
      end();
      return;
    }
    try {
      answerResponse(response, 408, 'BLOB_UPLOAD_INVALID', message);
    } catch {
      end();
      return;
    }
    // The rest of the body is not coming in time: close once the answer is out.
    const timer = setTimeout(end, LINGER_MS);
    timer.unref();
    response.once('finish', end);
    request.socket.once('close', () => clearTimeout(timer));
  }

  // -- events ----------------------------------------------------------------------------------

  server.on('request', (request: IncomingMessage, response: ServerResponse) => {
    const socket = request.socket;
    if (request.url) request.url = originForm(request.url);
    let open = responses.get(socket);
    if (!open) {
      open = new Set();
      responses.set(socket, open);
    }
    open.add(response);
    const done = () => open.delete(response);
    response.once('finish', done);
    response.once('close', done);
    // A stream error with no listener would be thrown as an uncaught exception.
    response.on('error', (error: NodeJS.ErrnoException) => {
      if (!GONE.has(error.code ?? '')) logger.error({ err: error }, 'response stream failed');
    });
    watch(request, response);
    let result: Promise<void> | void;
    try {
      result = options.handler(request, response);
    } catch (error) {
      failed(request, response, error);
      return;
    }
    if (result && typeof result.then === 'function') {
      result.then(undefined, (error: unknown) => failed(request, response, error));
    }
  });

  server.on('clientError', (error: NodeJS.ErrnoException, socket: Duplex) => {
    if (answered.has(socket)) return;
    const answer = parserAnswer(error);
    const started = [...(responses.get(socket) ?? [])].some((response) => response.headersSent);
    if (!answer || !socket.writable || started) {
      socket.destroy();
      return;
    }
    answerSocket(socket, answer.status, answer.code, answer.message);
  });

  server.on('checkExpectation', (request: IncomingMessage, response: ServerResponse) => {
    response.on('error', () => response.destroy());
    answerResponse(
      response,
      417,
      'UNSUPPORTED',
      `Expect: ${String(request.headers.expect).slice(0, 100)} is not supported (only 100-continue is)`,
    );
  });

  server.on('connect', (_request: IncomingMessage, socket: Duplex) => {
    answerSocket(
      socket,
      405,
      'UNSUPPORTED',
      'CONNECT is not supported: this is a registry, not a proxy',
      'allow: GET, HEAD, POST, PUT, PATCH, DELETE\r\n',
    );
  });

  const warnDrop = rateLimited(warnInterval, (count) =>
    logger.warn(
      { count, maxConnections: server.maxConnections },
      'connection cap reached: new connections are closed',
    ),
  );
  server.on('drop', () => warnDrop());
  server.on('close', () => {
    if (ticker) clearInterval(ticker);
    ticker = undefined;
    watched.clear();
  });
  return server;
}
