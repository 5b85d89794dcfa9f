// The error edge: what a failure looks like on the wire (status, OCI error body, headers), and the
// answer that carries it. Everything the route handlers throw ends up here.
import {
  DISTRIBUTION_ERROR_CODES,
  isStowageError,
  OCI_ERROR_CODES,
  type ResolvedLogger,
  STOWAGE_ERROR_CODES,
  StowageError,
  wireErrorCode,
} from '@stowage/oci';
import type { AuthDecision } from './auth/types.js';
import { API_VERSION, discard, type Exchange, json } from './internal/exchange.js';

/** One entry of an OCI error body. */
export interface OciError {
  readonly code: string;
  readonly message: string;
  readonly detail?: unknown;
}

export interface WireError {
  readonly status: number;
  readonly body: { readonly errors: readonly OciError[] };
  readonly headers?: Readonly<Record<string, string>>;
}

/**
 * Every code that may appear in an error body this server sends: the spec's,
 * distribution's two (used where distribution uses them) and Stowage's own
 * (`UNAVAILABLE`, `UNKNOWN`); any other becomes a 500 `UNKNOWN`.
 */
export const WIRE_ERROR_CODES: ReadonlySet<string> = new Set<string>([
  ...OCI_ERROR_CODES,
  ...DISTRIBUTION_ERROR_CODES,
  ...STOWAGE_ERROR_CODES,
]);

/** The one message a 500 carries: what went wrong is in the log (with the request id), never in the answer. */
export const INTERNAL_MESSAGE = 'internal error';

const INTERNAL: WireError = {
  status: 500,
  body: { errors: [{ code: 'UNKNOWN', message: INTERNAL_MESSAGE }] },
};

/** Marks the handler's own errors, whose status they carry themselves (from any copy of this package). */
const HTTP_ERROR: unique symbol = Symbol.for('@stowage/registry-server/http-error') as never;

export interface HttpErrorOptions {
  /** The status to answer with. Default: the one `@stowage/oci`'s table gives the code, else 500. */
  readonly status?: number;
  /** The `detail` of the OCI error body. */
  readonly detail?: unknown;
  /** Extra headers for the answer (`Allow`, `WWW-Authenticate`, `Content-Range`). */
  readonly headers?: Readonly<Record<string, string>>;
  /** For a 429 or 503: how long the client should wait (`Retry-After`, in whole seconds, at least 1). */
  readonly retryAfterMs?: number;
  readonly cause?: unknown;
}

/**
 * A refusal the handler raises itself, with the status to answer with. Its
 * code is a wire code (`WIRE_ERROR_CODES`); one that is not goes out as a 500.
 */
export class HttpError extends StowageError<string> {
  readonly status: number;
  readonly detail: unknown;
  readonly headers: Readonly<Record<string, string>>;
  declare readonly [HTTP_ERROR]: true;

  constructor(code: string, message: string, options: HttpErrorOptions = {}) {
    const detail = options.detail;
    const plain = typeof detail === 'object' && detail !== null && !Array.isArray(detail);
    super(code, message, {
      ...(plain ? { details: detail as Record<string, unknown> } : {}),
      retryable: options.status === 429 || options.status === 503 || options.status === 408,
      ...(options.retryAfterMs === undefined ? {} : { retryAfterMs: options.retryAfterMs }),
      ...(options.cause === undefined ? {} : { cause: options.cause }),
    });
    this.status = options.status ?? wireErrorCode(code)?.status ?? 500;
    this.detail = detail;
    this.headers = options.headers ?? {};
    Object.defineProperty(this, HTTP_ERROR, { value: true });
  }
}

/** True for an error the handler raised itself (an `HttpError` from any copy of this package). */
export function isHttpError(value: unknown): value is HttpError {
  return isStowageError(value) && (value as { [HTTP_ERROR]?: unknown })[HTTP_ERROR] === true;
}

/** The `Retry-After` of a 429 or 503, in seconds: the error's own delay rounded up, at least 1; 1 without one. */
export function retryAfterSeconds(retryAfterMs: number | undefined): number {
  if (retryAfterMs === undefined || !Number.isFinite(retryAfterMs)) return 1;
  return Math.max(1, Math.ceil(retryAfterMs / 1000));
}

/**
 * Maps anything thrown while serving a request to its status and OCI error
 * body. Codes go out through `@stowage/oci`'s table (`RANGE_INVALID` as a 416
 * `BLOB_UPLOAD_INVALID`, say); the handler's own `HttpError`s keep their
 * status. A code with no place on the wire, and anything that is not a
 * Stowage error, is a 500 `UNKNOWN`; every 500 says only `internal error`.
 * A 429 or 503 carries `Retry-After` from the error's `retryAfterMs` (default 1 s).
 */
export function toWireError(error: unknown): WireError {
  if (!isStowageError(error)) return INTERNAL;
  let code: string;
  let status: number;
  let detail: unknown;
  let headers: Readonly<Record<string, string>> = {};
  if (isHttpError(error)) {
    if (!WIRE_ERROR_CODES.has(error.code)) return INTERNAL;
    code = error.code;
    status = error.status;
    detail = error.detail;
    headers = error.headers;
  } else {
    const wire = wireErrorCode(error.code);
    if (!wire || !WIRE_ERROR_CODES.has(wire.code)) return INTERNAL;
    code = wire.code;
    status = wire.status;
    detail = Object.keys(error.details).length > 0 ? error.details : undefined;
  }
  if (status >= 500 && status !== 503) return INTERNAL;
  const retryAfter: Record<string, string> =
    status === 429 || status === 503 ? { 'retry-after': String(retryAfterSeconds(error.retryAfterMs)) } : {};
  return {
    status,
    body: { errors: [{ code, message: error.message, ...(detail === undefined ? {} : { detail }) }] },
    // headers the refusal names itself (an authorizer's own Retry-After, say) win
    headers: { ...retryAfter, ...headers },
  };
}

/** Headers an error answer keeps from before the failure (`connection: close` set while draining, say). */
const KEPT_ON_ERROR = new Set([
  'docker-distribution-api-version',
  'x-request-id',
  'connection',
  'www-authenticate',
  'stowage-capabilities',
]);

/** Logs without ever throwing: a logger that fails must not turn into a failed request. */
export function safeLog(
  logger: ResolvedLogger,
  level: 'info' | 'error',
  fields: object,
  message: string,
): void {
  try {
    logger[level](fields, message);
  } catch {
    // nothing left to tell it with
  }
}

/**
 * Answers a failure with its OCI error. Never throws: when that answer cannot
 * be sent (a header value Node refuses, from wherever it came), a bare 500
 * `UNKNOWN` without the offending headers goes out instead, or the connection
 * is cut once the headers are already gone. A 5xx is logged at error level
 * with the failure itself and the request id.
 */
export function answerFailure(
  exchange: Exchange,
  failure: unknown,
  context: { readonly id: string; readonly logger: ResolvedLogger },
): void {
  const { request, response } = exchange;
  const { id, logger } = context;
  let wire: WireError;
  try {
    wire = toWireError(failure);
  } catch {
    wire = INTERNAL;
  }
  if (wire.status >= 500) safeLog(logger, 'error', { requestId: id, err: failure }, 'request failed');
  try {
    if (response.headersSent) {
      exchange.cutHere = true;
      response.destroy();
      return;
    }
    for (const name of response.getHeaderNames()) {
      if (!KEPT_ON_ERROR.has(name)) response.removeHeader(name);
    }
    if (exchange.bodyTimeout) {
      // The rest of the body is never coming: answer, then drop the connection.
      response.once('finish', () => request.socket?.destroy());
    } else {
      discard(exchange);
    }
    if (wire.status === 413 || wire.status === 408) response.setHeader('connection', 'close');
    json(exchange, wire.status, wire.body, { ...wire.headers });
  } catch (sendError) {
    safeLog(
      logger,
      'error',
      { requestId: id, err: sendError },
      'the error answer could not be sent; a bare 500 instead',
    );
    bareFailure(exchange, id);
  }
}

/** A 500 with nothing in it that could be refused; the connection is cut if even that fails. */
function bareFailure(exchange: Exchange, id: string): void {
  const { request, response } = exchange;
  try {
    if (response.headersSent) throw new Error('headers already sent');
    for (const name of response.getHeaderNames()) response.removeHeader(name);
    const body = Buffer.from(JSON.stringify(INTERNAL.body));
    response.writeHead(500, {
      'content-type': 'application/json',
      'content-length': body.byteLength,
      'docker-distribution-api-version': API_VERSION,
      'x-request-id': id,
    });
    if (request.method === 'HEAD') {
      response.end();
    } else {
      exchange.bytesOut += body.byteLength;
      response.end(body);
    }
  } catch {
    exchange.cutHere = true;
    response.destroy();
  }
}

/** The error of an authorizer's refusal: its status, code, message and headers, the challenge as `WWW-Authenticate`. */
export function refusalError(decision: Extract<AuthDecision, { ok: false }>, detail?: unknown): HttpError {
  return new HttpError(decision.code, decision.message, {
    status: decision.status,
    headers: {
      ...decision.headers,
      ...(decision.challenge ? { 'www-authenticate': decision.challenge } : {}),
    },
    ...(detail === undefined ? {} : { detail }),
    ...(decision.retryAfterMs === undefined ? {} : { retryAfterMs: decision.retryAfterMs }),
  });
}
