import { isStowageError } from '@stowage/oci';

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

/** HTTP status of each OCI error code (distribution-spec, with distribution's choices where the spec is silent). */
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
  RANGE_INVALID: 416,
  UNAVAILABLE: 503,
};

/** Codes a store may use that the wire spells differently. */
const WIRE_CODE: Readonly<Record<string, string>> = {
  RANGE_INVALID: 'BLOB_UPLOAD_INVALID',
  PLATFORM_INVALID: 'MANIFEST_INVALID',
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

/** Maps anything thrown while serving a request to its status and OCI error body. */
export function toWireError(error: unknown): WireError {
  if (error instanceof HttpError) {
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
    const code = WIRE_CODE[error.code] ?? error.code;
    const status = STATUS[error.code] ?? STATUS[code] ?? 500;
    const detail = Object.keys(error.details).length > 0 ? error.details : undefined;
    return {
      status,
      body: {
        errors: [
          {
            code: status === 500 ? 'UNKNOWN' : code,
            message: error.message,
            ...(detail === undefined ? {} : { detail }),
          },
        ],
      },
      ...(status === 429 || status === 503 ? { headers: { 'retry-after': '1' } } : {}),
    };
  }
  return { status: 500, body: { errors: [{ code: 'UNKNOWN', message: 'internal error' }] } };
}
