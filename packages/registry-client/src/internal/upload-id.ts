/**
 * Upload session ids. A registry names an upload session by the URL in its
 * `Location` header, and some (distribution) change that URL after every
 * request (`_state`). The opaque id handed to callers carries the latest
 * location and the start time, base64url-encoded, so it is safe in a URL path
 * segment and survives a process restart.
 */
export interface UploadLocation {
  /** Path and query relative to the registry, or an absolute URL on another origin. */
  readonly location: string;
  readonly startedAt: number;
}

export function encodeUploadId(value: UploadLocation): string {
  return Buffer.from(JSON.stringify([value.startedAt, value.location]), 'utf8').toString('base64url');
}

/** `undefined` for anything that is not an id this client issued. */
export function decodeUploadId(id: string): UploadLocation | undefined {
  if (typeof id !== 'string' || id === '' || id.length > 16_384 || !/^[A-Za-z0-9_-]+$/.test(id))
    return undefined;
  try {
    const value: unknown = JSON.parse(Buffer.from(id, 'base64url').toString('utf8'));
    if (!Array.isArray(value) || value.length !== 2) return undefined;
    const [startedAt, location] = value as [unknown, unknown];
    if (typeof startedAt !== 'number' || !Number.isFinite(startedAt) || typeof location !== 'string')
      return undefined;
    if (!location.startsWith('/') && !/^https?:\/\//i.test(location)) return undefined;
    return { startedAt, location };
  } catch {
    return undefined;
  }
}

/**
 * The form of a `Location` kept in an id: path and query when it is on the
 * registry's origin, the absolute URL otherwise.
 */
export function relativeLocation(location: string, base: string): string {
  const url = new URL(location, base);
  return url.origin === new URL(base).origin ? url.pathname + url.search : url.toString();
}

/** The stable part of a session location (without the query, which registries rotate). */
export function sessionKey(location: string, base: string): string {
  const url = new URL(location, base);
  return url.origin + url.pathname;
}

/**
 * The offset a `Range: 0-<end>` header reports. Registries send `0-0` both
 * for an empty session and after one byte; `known` (the offset this client
 * expects) breaks the tie, else an empty session is assumed.
 */
export function offsetFromRange(header: string | undefined, known?: number): number | undefined {
  if (header === undefined) return undefined;
  const match = /^(?:bytes=)?\s*(\d+)\s*-\s*(-?\d+)\s*$/.exec(header.trim());
  if (!match) return undefined;
  const end = Number(match[2]);
  if (end < 0) return 0;
  if (end === 0) return known === 1 ? 1 : 0;
  return end + 1;
}
