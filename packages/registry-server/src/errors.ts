import { DISTRIBUTION_ERROR_CODES, isStowageError, OCI_ERROR_CODES } from '@stowage/oci';

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

/** Stowage's own codes (listed in the README): 503 while draining or closed, 500 for anything unexpected. */
export const STOWAGE_ERROR_CODES = ['UNAVAILABLE', 'UNKNOWN'] as const;

/**
 * Every code that may appear in an error body this server sends: the spec's,
 * distribution's two (used where distribution uses them) and Stowage's own;
 * any other becomes a 500 `UNKNOWN`.
 */
export const WIRE_ERROR_CODES: ReadonlySet<string> = new Set<string>([
  ...OCI_ERROR_CODES,
  ...DISTRIBUTION_ERROR_CODES,
  ...STOWAGE_ERROR_CODES,
]);

/** HTTP status of each wire code a store error may carry (distribution's choices where the spec is silent). */
const STATUS: Readonly<Record<string, number>> = {
  BLOB_UNKNOWN: 404,
  BLOB_UPLOAD_INVALID: 400,
  BLOB_UPLOAD_UNKNOWN: 404,
  DIGEST_INVALID: 400,
  MANIFEST_BLOB_UNKNOWN: 404,
  MANIFEST_INVALID: 400,
  MANIFEST_UNKNOWN: 404,
  NAME_INVALID: 400,
  NAME_UNKNOWN: 404,
  SIZE_INVALID: 400,
  TAG_INVALID: 400,
  UNAUTHORIZED: 401,
  DENIED: 403,
  UNSUPPORTED: 405,
  TOOMANYREQUESTS: 429,
  UNAVAILABLE: 503,
};

/** Store codes the wire spells differently, and the status each is sent with. */
const WIRE_CODE: Readonly<Record<string, { readonly code: string; readonly status: number }>> = {
  RANGE_INVALID: { code: 'BLOB_UPLOAD_INVALID', status: 416 },
  PLATFORM_INVALID: { code: 'MANIFEST_INVALID', status: 400 },
};

const own = <T>(table: Readonly<Record<string, T>>, key: string): T | undefined =>
  Object.hasOwn(table, key) ? table[key] : undefined;

const INTERNAL: WireError = {
  status: 500,
  body: { errors: [{ code: 'UNKNOWN', message: 'internal error' }] },
};

/** An error the handler raises itself, with an explicit status. */
export class HttpError extends Error {
  readonly status: number;
  readonly code: string;
  readonly detail: unknown;
  readonly headers: Readonly<Record<string, string>>;
  constructor(
    status: number,
    code: string,
    message: string,
    options: { detail?: unknown; headers?: Record<string, string> } = {},
  ) {
    super(message);
    this.status = status;
    this.code = code;
    this.detail = options.detail;
    this.headers = options.headers ?? {};
  }
}

/**
 * Maps anything thrown while serving a request to its status and OCI error
 * body. Only codes of `WIRE_ERROR_CODES` go out: an error with any other code
 * (a store's own, or a slip in the handler) is a 500 `UNKNOWN`.
 */
export function toWireError(error: unknown): WireError {
  if (error instanceof HttpError) {
    if (!WIRE_ERROR_CODES.has(error.code)) return INTERNAL;
    return {
      status: error.status,
      body: {
        errors: [
          {
            code: error.code,
            message: error.message,
            ...(error.detail === undefined ? {} : { detail: error.detail }),
          },
        ],
      },
      headers: error.headers,
    };
  }
  if (isStowageError(error)) {
    const renamed = own(WIRE_CODE, error.code);
    const code = renamed?.code ?? error.code;
    const status = renamed?.status ?? own(STATUS, code);
    if (status === undefined || !WIRE_ERROR_CODES.has(code)) {
      return { status: 500, body: { errors: [{ code: 'UNKNOWN', message: error.message }] } };
    }
    const detail = Object.keys(error.details).length > 0 ? error.details : undefined;
    return {
      status,
      body: {
        errors: [
          {
            code,
            message: error.message,
            ...(detail === undefined ? {} : { detail }),
          },
        ],
      },
      ...(status === 429 || status === 503 ? { headers: { 'retry-after': '1' } } : {}),
    };
  }
  return INTERNAL;
}
