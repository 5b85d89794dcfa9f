/**
 * The base error of every Stowage package.
 *
 * Callers branch on `code` (a string union per subclass) and `retryable`,
 * never on message text. The brand is a global symbol so `isStowageError`
 * works across duplicate installs of this package.
 */
const BRAND: unique symbol = Symbol.for('@stowage/error') as never;

export interface StowageErrorOptions {
  /** Machine-readable facts about the failure (never credentials). */
  readonly details?: Readonly<Record<string, unknown>>;
  /** Whether repeating the same operation may succeed. Defaults to false. */
  readonly retryable?: boolean;
  /** How long a caller should wait before retrying, when the failure says so (a `Retry-After`). */
  readonly retryAfterMs?: number;
  readonly cause?: unknown;
}

export class StowageError<Code extends string = string> extends Error {
  readonly code: Code;
  readonly retryable: boolean;
  readonly details: Readonly<Record<string, unknown>>;
  /** How long to wait before retrying, when known (a server's `Retry-After`, a lock's backoff). */
  declare readonly retryAfterMs?: number;
  declare readonly [BRAND]: true;

  constructor(code: Code, message: string, options: StowageErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.retryable = options.retryable ?? false;
    this.details = options.details ?? {};
    if (options.retryAfterMs !== undefined)
      Object.defineProperty(this, 'retryAfterMs', { value: options.retryAfterMs, enumerable: true });
    Object.defineProperty(this, BRAND, { value: true });
  }

  override get name(): string {
    return this.constructor.name;
  }
}

/** True for any Stowage error (optionally with the given code), from any copy of this package. */
export function isStowageError<C extends string = string>(
  value: unknown,
  code?: C,
): value is StowageError<C> {
  if (typeof value !== 'object' || value === null) return false;
  if ((value as { [BRAND]?: unknown })[BRAND] !== true) return false;
  return code === undefined || (value as StowageError).code === code;
}

/**
 * The error codes of the OCI distribution specification, plus the few a store
 * needs that the wire protocol spells differently (`RANGE_INVALID` is sent as
 * BLOB_UPLOAD_INVALID with status 416) or that it has none for (`UNAVAILABLE`, a 503).
 */
export type RegistryErrorCode =
  | 'BLOB_UNKNOWN'
  | 'BLOB_UPLOAD_INVALID'
  | 'BLOB_UPLOAD_UNKNOWN'
  | 'DIGEST_INVALID'
  | 'MANIFEST_BLOB_UNKNOWN'
  | 'MANIFEST_INVALID'
  | 'MANIFEST_UNKNOWN'
  | 'NAME_INVALID'
  | 'NAME_UNKNOWN'
  | 'SIZE_INVALID'
  | 'TAG_INVALID'
  | 'UNAUTHORIZED'
  | 'DENIED'
  | 'UNSUPPORTED'
  | 'TOOMANYREQUESTS'
  | 'RANGE_INVALID'
  /** The store cannot serve now (closed, shutting down, its upstream down); sent as 503 with Retry-After. */
  | 'UNAVAILABLE'
  /** A failure nobody can act on (a server's 500); its message says no more than that. */
  | 'UNKNOWN';

/** The error codes of the OCI distribution-spec (v1.1), as error bodies spell them. */
export const OCI_ERROR_CODES = [
  'BLOB_UNKNOWN',
  'BLOB_UPLOAD_INVALID',
  'BLOB_UPLOAD_UNKNOWN',
  'DIGEST_INVALID',
  'MANIFEST_BLOB_UNKNOWN',
  'MANIFEST_INVALID',
  'MANIFEST_UNKNOWN',
  'NAME_INVALID',
  'NAME_UNKNOWN',
  'SIZE_INVALID',
  'UNAUTHORIZED',
  'DENIED',
  'UNSUPPORTED',
  'TOOMANYREQUESTS',
] as const satisfies readonly RegistryErrorCode[];

/** Codes distribution (docker-registry) sends that the spec does not list. */
export const DISTRIBUTION_ERROR_CODES = ['TAG_INVALID', 'PAGINATION_NUMBER_INVALID'] as const;

/** Stowage's own wire codes: 503 while a store is closed or draining, 500 for anything unexpected. */
export const STOWAGE_ERROR_CODES = ['UNAVAILABLE', 'UNKNOWN'] as const;

/** How one store code travels on the wire: the code an error body spells and the HTTP status. */
export interface WireErrorCode {
  readonly code: string;
  readonly status: number;
}

/**
 * The one table of error codes and statuses: what a server sends for each
 * store code (distribution's choices where the spec is silent), and what a
 * client maps a received code back to. `RANGE_INVALID` has no wire code of its
 * own (it travels as `BLOB_UPLOAD_INVALID` with 416); `PLATFORM_INVALID` is a
 * manifest refusal.
 */
export const REGISTRY_ERROR_STATUS: Readonly<Record<RegistryErrorCode | 'PLATFORM_INVALID', WireErrorCode>> =
  {
    BLOB_UNKNOWN: { code: 'BLOB_UNKNOWN', status: 404 },
    BLOB_UPLOAD_INVALID: { code: 'BLOB_UPLOAD_INVALID', status: 400 },
    BLOB_UPLOAD_UNKNOWN: { code: 'BLOB_UPLOAD_UNKNOWN', status: 404 },
    DIGEST_INVALID: { code: 'DIGEST_INVALID', status: 400 },
    MANIFEST_BLOB_UNKNOWN: { code: 'MANIFEST_BLOB_UNKNOWN', status: 404 },
    MANIFEST_INVALID: { code: 'MANIFEST_INVALID', status: 400 },
    MANIFEST_UNKNOWN: { code: 'MANIFEST_UNKNOWN', status: 404 },
    NAME_INVALID: { code: 'NAME_INVALID', status: 400 },
    NAME_UNKNOWN: { code: 'NAME_UNKNOWN', status: 404 },
    SIZE_INVALID: { code: 'SIZE_INVALID', status: 400 },
    TAG_INVALID: { code: 'TAG_INVALID', status: 400 },
    UNAUTHORIZED: { code: 'UNAUTHORIZED', status: 401 },
    DENIED: { code: 'DENIED', status: 403 },
    UNSUPPORTED: { code: 'UNSUPPORTED', status: 405 },
    TOOMANYREQUESTS: { code: 'TOOMANYREQUESTS', status: 429 },
    RANGE_INVALID: { code: 'BLOB_UPLOAD_INVALID', status: 416 },
    UNAVAILABLE: { code: 'UNAVAILABLE', status: 503 },
    UNKNOWN: { code: 'UNKNOWN', status: 500 },
    PLATFORM_INVALID: { code: 'MANIFEST_INVALID', status: 400 },
  };

/** The wire code and status of a store code; `undefined` for a code that has no place on the wire (a 500). */
export function wireErrorCode(code: string): WireErrorCode | undefined {
  return Object.hasOwn(REGISTRY_ERROR_STATUS, code)
    ? REGISTRY_ERROR_STATUS[code as keyof typeof REGISTRY_ERROR_STATUS]
    : undefined;
}

const REGISTRY_CODES: ReadonlySet<string> = new Set(
  Object.keys(REGISTRY_ERROR_STATUS).filter((code) => code !== 'PLATFORM_INVALID'),
);

/** The store code a received wire code stands for (a 416 `BLOB_UPLOAD_INVALID` is `RANGE_INVALID`); `undefined` when it is none. */
export function registryErrorCodeFromWire(code: string, status?: number): RegistryErrorCode | undefined {
  if (code === 'BLOB_UPLOAD_INVALID' && status === 416) return 'RANGE_INVALID';
  return REGISTRY_CODES.has(code) ? (code as RegistryErrorCode) : undefined;
}

/**
 * What every `Registry` implementation throws for a refusal the caller can act
 * on. The server maps `code` to the OCI error body and HTTP status.
 */
export class RegistryError extends StowageError<RegistryErrorCode> {}

/** A digest string that is not `sha256:<64 hex>` or `sha512:<128 hex>`. */
export class DigestParseError extends StowageError<'DIGEST_INVALID'> {
  constructor(input: string, reason: string) {
    super('DIGEST_INVALID', `invalid digest ${JSON.stringify(truncate(input))}: ${reason}`, {
      details: { input: truncate(input), reason },
    });
  }
}

/** Content whose digest is not the one it was expected to have. */
export class DigestMismatchError extends StowageError<'DIGEST_INVALID'> {
  readonly expected: string;
  readonly actual: string;
  constructor(expected: string, actual: string) {
    super('DIGEST_INVALID', `digest mismatch: expected ${expected}, got ${actual}`, {
      details: { expected, actual },
    });
    this.expected = expected;
    this.actual = actual;
  }
}

/** Content whose length is not the one it was expected to have. */
export class SizeMismatchError extends StowageError<'SIZE_INVALID'> {
  readonly expected: number;
  readonly actual: number;
  constructor(expected: number, actual: number) {
    super('SIZE_INVALID', `size mismatch: expected ${expected} bytes, got ${actual}`, {
      details: { expected, actual },
    });
    this.expected = expected;
    this.actual = actual;
  }
}

/** An image reference or repository name that does not follow the distribution grammar. */
export class ReferenceParseError extends StowageError<'NAME_INVALID' | 'TAG_INVALID' | 'DIGEST_INVALID'> {}

/** A manifest, index or config whose bytes are not acceptable. */
export class ManifestParseError extends StowageError<'MANIFEST_INVALID' | 'UNSUPPORTED' | 'SIZE_INVALID'> {}

/** A platform string that is not `os/arch[/variant]`. */
export class PlatformParseError extends StowageError<'PLATFORM_INVALID'> {
  constructor(input: string, reason: string) {
    super('PLATFORM_INVALID', `invalid platform ${JSON.stringify(truncate(input))}: ${reason}`, {
      details: { input: truncate(input), reason },
    });
  }
}

/** Cuts user input echoed in messages so a huge argument cannot produce a huge error. */
export function truncate(input: string, max = 256): string {
  return input.length <= max ? input : `${input.slice(0, max)}…`;
}
