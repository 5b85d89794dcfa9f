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
  readonly cause?: unknown;
}

export class StowageError<Code extends string = string> extends Error {
  readonly code: Code;
  readonly retryable: boolean;
  readonly details: Readonly<Record<string, unknown>>;
  declare readonly [BRAND]: true;

  constructor(code: Code, message: string, options: StowageErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.retryable = options.retryable ?? false;
    this.details = options.details ?? {};
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
  | 'UNAVAILABLE';

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
