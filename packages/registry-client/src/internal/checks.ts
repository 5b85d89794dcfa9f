import type { IncomingHttpHeaders } from 'node:http';
import {
  type Digest,
  isDigest,
  isStowageError,
  parseDigest,
  parseManifestReference,
  parseRepositoryName,
  RegistryError,
  type RegistryErrorCode,
  truncate,
} from '@stowage/oci';
import { RegistryProtocolError } from '../errors.js';
import { headerValue } from './transport.js';

/** The most of a listing or referrers body read. */
export const LIST_BODY_LIMIT = 64 * 1024 * 1024;
/** The most pages followed in one listing. */
export const MAX_PAGES = 100_000;

/** A tag or a digest, as a request path segment. */
export interface CheckedReference {
  readonly value: string;
  readonly digest?: Digest;
}

/** Runs a parser and turns its refusal into a `RegistryError` with the same code. */
function refused<T>(parse: () => T, code: RegistryErrorCode, message: () => string): T {
  try {
    return parse();
  } catch (cause) {
    const parsed = isStowageError(cause) ? (cause.code as RegistryErrorCode) : code;
    throw new RegistryError(parsed, message(), { cause });
  }
}

export function checkRepository(name: string): string {
  refused(
    () => parseRepositoryName(name),
    'NAME_INVALID',
    () => `invalid repository name ${JSON.stringify(truncate(String(name), 128))}`,
  );
  return name;
}

export function checkDigest(value: string): Digest {
  return refused(
    () => parseDigest(value),
    'DIGEST_INVALID',
    () => `invalid digest ${JSON.stringify(truncate(String(value), 160))}`,
  );
}

/** A reference is a digest when it has a colon (tags cannot), else a tag. */
export function checkReference(reference: string): CheckedReference {
  const parsed = refused(
    () => parseManifestReference(reference),
    'TAG_INVALID',
    () =>
      `invalid ${String(reference).includes(':') ? 'digest' : 'tag'} ${JSON.stringify(truncate(String(reference), 160))}`,
  );
  return 'digest' in parsed ? { value: parsed.digest, digest: parsed.digest } : { value: parsed.tag };
}

export function optionalDigest(value: string | undefined): Digest | undefined {
  const trimmed = value?.trim();
  return trimmed !== undefined && isDigest(trimmed) ? trimmed : undefined;
}

export function contentLength(headers: IncomingHttpHeaders): number | undefined {
  const value = headerValue(headers, 'content-length');
  if (value === undefined || !/^\d+$/.test(value.trim())) return undefined;
  return Number(value);
}

export function bareMediaType(value: string | undefined): string | undefined {
  if (value === undefined) return undefined;
  const semicolon = value.indexOf(';');
  return (semicolon < 0 ? value : value.slice(0, semicolon)).trim().toLowerCase() || undefined;
}

export function appendQuery(location: string, name: string, value: string): string {
  const hash = location.indexOf('#');
  const base = hash < 0 ? location : location.slice(0, hash);
  return `${base}${base.includes('?') ? '&' : '?'}${name}=${encodeURIComponent(value)}`;
}

export function parseJson(bytes: Uint8Array, what: string): unknown {
  try {
    return JSON.parse(Buffer.from(bytes).toString('utf8'));
  } catch (cause) {
    throw new RegistryProtocolError(`${what} is not valid JSON`, {}, cause);
  }
}

export function parseJsonSafe(bytes: Uint8Array): unknown {
  try {
    return JSON.parse(Buffer.from(bytes).toString('utf8'));
  } catch {
    return undefined;
  }
}

export function signalOf(options: { readonly signal?: AbortSignal | undefined }): { signal?: AbortSignal } {
  return options.signal ? { signal: options.signal } : {};
}
