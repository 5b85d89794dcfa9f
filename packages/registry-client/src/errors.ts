import {
  isStowageError,
  RegistryError,
  type RegistryErrorCode,
  registryErrorCodeFromWire,
  StowageError,
  wireErrorCode,
} from '@stowage/oci';
import { redactUrl } from './internal/redact.js';

/** One entry of the OCI error body `{"errors":[{code,message,detail}]}`. */
export interface RegistryDiagnostic {
  readonly code: string;
  readonly message?: string;
  readonly detail?: unknown;
}

/** Which API a request addressed; it decides what a bare 404 means. */
export type RegistryEndpoint =
  | 'ping'
  | 'catalog'
  | 'tags'
  | 'manifest'
  | 'blob'
  | 'upload'
  | 'referrers'
  | 'token';

/** Facts about an HTTP exchange shared by the response errors. */
export interface ResponseErrorInit {
  readonly status: number;
  readonly method: string;
  /** The request URL; it is redacted before being stored. */
  readonly url: string;
  readonly diagnostics?: readonly RegistryDiagnostic[];
  readonly endpoint?: RegistryEndpoint;
  /** Overrides the code derived from the status and body. */
  readonly code?: RegistryErrorCode;
  /** A server-requested delay (from `Retry-After`), in milliseconds. */
  readonly retryAfterMs?: number;
  /** Overrides whether repeating may succeed (derived from the status otherwise). */
  readonly retryable?: boolean;
  readonly message?: string;
  readonly cause?: unknown;
}

const notFoundCodes: Readonly<Record<RegistryEndpoint, RegistryErrorCode>> = {
  ping: 'UNSUPPORTED',
  catalog: 'UNSUPPORTED',
  tags: 'NAME_UNKNOWN',
  manifest: 'MANIFEST_UNKNOWN',
  blob: 'BLOB_UNKNOWN',
  upload: 'BLOB_UPLOAD_UNKNOWN',
  referrers: 'MANIFEST_UNKNOWN',
  token: 'UNAUTHORIZED',
};

/**
 * The OCI error code for a refused request: the code the registry put in the
 * body when `@stowage/oci`'s table knows it (`registryErrorCodeFromWire`),
 * else one derived from the status and the endpoint. Two wire quirks are
 * smoothed over: a 404 on an upload session is always `BLOB_UPLOAD_UNKNOWN`
 * (distribution answers BLOB_UPLOAD_INVALID), and 416 is always `RANGE_INVALID`.
 */
export function registryErrorCode(
  status: number,
  endpoint: RegistryEndpoint | undefined,
  diagnostics: readonly RegistryDiagnostic[] = [],
): RegistryErrorCode {
  if (status === 416) return 'RANGE_INVALID';
  if (status === 404 && endpoint === 'upload') return 'BLOB_UPLOAD_UNKNOWN';
  for (const diagnostic of diagnostics) {
    const fromBody = registryErrorCodeFromWire(diagnostic.code, status);
    if (fromBody !== undefined) return fromBody;
  }
  switch (status) {
    case 400:
      return endpoint === 'manifest'
        ? 'MANIFEST_INVALID'
        : endpoint === 'upload'
          ? 'BLOB_UPLOAD_INVALID'
          : 'UNSUPPORTED';
    case 401:
      return 'UNAUTHORIZED';
    case 403:
      return 'DENIED';
    case 404:
      return endpoint === undefined ? 'NAME_UNKNOWN' : notFoundCodes[endpoint];
    case 405:
    case 501:
      return 'UNSUPPORTED';
    case 413:
      return 'SIZE_INVALID';
    case 429:
      return 'TOOMANYREQUESTS';
    default:
      return 'UNSUPPORTED';
  }
}

/** Whether repeating a request that got this status may succeed. */
export function isRetryableStatus(status: number): boolean {
  return status === 408 || status === 429 || status >= 500;
}

function summary(init: ResponseErrorInit, url: string): string {
  const first = init.diagnostics?.[0];
  const reason = first ? `: ${first.code}${first.message ? ` (${first.message})` : ''}` : '';
  return `${init.method} ${url} answered ${init.status}${reason}`;
}

/** Marks the errors built from an HTTP response, so `isResponseError` works across duplicate installs. */
const RESPONSE_BRAND = Symbol.for('@stowage/registry-client:response-error');

/**
 * What both response errors share: the status, method, redacted URL and
 * parsed diagnostics of the exchange, and the brand `isResponseError` looks for.
 */
export abstract class RegistryHttpError extends RegistryError {
  readonly status: number;
  readonly method: string;
  readonly url: string;
  readonly diagnostics: readonly RegistryDiagnostic[];

  constructor(code: RegistryErrorCode, init: ResponseErrorInit) {
    const url = redactUrl(init.url);
    super(code, init.message ?? summary(init, url), {
      retryable: init.retryable ?? isRetryableStatus(init.status),
      details: { status: init.status, method: init.method, url },
      cause: init.cause,
      ...(init.retryAfterMs === undefined ? {} : { retryAfterMs: init.retryAfterMs }),
    });
    this.status = init.status;
    this.method = init.method;
    this.url = url;
    this.diagnostics = init.diagnostics ?? [];
    Object.defineProperty(this, RESPONSE_BRAND, { value: true });
  }
}

/**
 * A registry refused a request with a 4xx status. `code` is the OCI error code
 * (from the body when the registry sent one, else derived from the status),
 * `diagnostics` the parsed error list, `url` the request URL with credentials
 * and signatures removed, `retryAfterMs` the `Retry-After` of a 429.
 */
export class RegistryResponseError extends RegistryHttpError {
  constructor(init: ResponseErrorInit) {
    super(init.code ?? registryErrorCode(init.status, init.endpoint, init.diagnostics), init);
  }
}

/** Codes of a server-side failure; none of them is an OCI refusal. */
export type RegistryServerErrorCode = Extract<RegistryErrorCode, 'UNAVAILABLE' | 'UNKNOWN'>;

/**
 * A registry failed with a 5xx status (or another status the protocol gives
 * no meaning), after the retries allowed. A `RegistryError`: `UNAVAILABLE` for
 * 502/503/504 (with `retryAfterMs` from a 503's `Retry-After`), `UNKNOWN`
 * otherwise; 5xx is always `retryable`.
 */
export class RegistryServerError extends RegistryHttpError {
  declare readonly code: RegistryServerErrorCode;

  constructor(init: ResponseErrorInit) {
    super(
      init.status === 502 || init.status === 503 || init.status === 504 ? 'UNAVAILABLE' : 'UNKNOWN',
      init,
    );
  }
}

/** Either kind of error built from an HTTP response. */
export type ResponseError = RegistryResponseError | RegistryServerError;

/**
 * True for an error that carries an HTTP status from a registry or token
 * server: a Stowage error with a registry code and this package's response
 * brand (so it works across duplicate installs, unlike `instanceof`).
 */
export function isResponseError(error: unknown): error is ResponseError {
  return (
    isStowageError(error) &&
    wireErrorCode(error.code) !== undefined &&
    (error as { [RESPONSE_BRAND]?: unknown })[RESPONSE_BRAND] === true
  );
}

/** Builds the right error class for a failed response. */
export function responseError(init: ResponseErrorInit): ResponseError {
  if (init.code !== undefined || (init.status >= 400 && init.status < 500))
    return new RegistryResponseError(init);
  return new RegistryServerError(init);
}

export type RegistryNetworkErrorCode = 'NETWORK_ERROR' | 'TIMEOUT';

/**
 * The registry could not be reached or stopped answering (connection refused or
 * reset, TLS failure, connect/headers/body timeout), after the retries allowed.
 * Always `retryable`; the undici error is the `cause`.
 */
export class RegistryNetworkError extends StowageError<RegistryNetworkErrorCode> {
  readonly method: string;
  readonly url: string;

  constructor(init: { method: string; url: string; cause: unknown; timeout?: boolean }) {
    const url = redactUrl(init.url);
    const reason = (init.cause as { code?: unknown })?.code ?? (init.cause as Error)?.message ?? 'unknown';
    super(init.timeout ? 'TIMEOUT' : 'NETWORK_ERROR', `${init.method} ${url} failed: ${String(reason)}`, {
      retryable: true,
      details: { method: init.method, url, reason: String(reason) },
      cause: init.cause,
    });
    this.method = init.method;
    this.url = url;
  }
}

/** A registry answered something the protocol does not allow (no `Location` on an upload, unparseable JSON…). */
export class RegistryProtocolError extends StowageError<'PROTOCOL_ERROR'> {
  constructor(message: string, details: Readonly<Record<string, unknown>> = {}, cause?: unknown) {
    super('PROTOCOL_ERROR', message, { details, cause });
  }
}

/** A credential source could not be read: an unparseable config file or a failing credential helper. */
export class CredentialsError extends StowageError<'CREDENTIALS_ERROR'> {
  constructor(message: string, details: Readonly<Record<string, unknown>> = {}, cause?: unknown) {
    super('CREDENTIALS_ERROR', message, { details, cause });
  }
}

/** Options given to `createRegistryClient` that cannot work together or are out of range. */
export class RegistryClientOptionsError extends StowageError<'OPTIONS_INVALID'> {
  constructor(message: string) {
    super('OPTIONS_INVALID', message);
  }
}
