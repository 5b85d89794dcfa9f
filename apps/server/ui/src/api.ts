// The one way the page talks to the server: the registry API under /v2/ and the session
// endpoints under /ui/api/, same origin, cookies included, the CSRF header on every change.
import { ApiError, errorOf } from './errors.js';

export const MEDIA_TYPES = {
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  dockerList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  ociConfig: 'application/vnd.oci.image.config.v1+json',
  dockerConfig: 'application/vnd.docker.container.image.v1+json',
} as const;

const MANIFEST_ACCEPT = [
  MEDIA_TYPES.ociIndex,
  MEDIA_TYPES.ociManifest,
  MEDIA_TYPES.dockerList,
  MEDIA_TYPES.dockerManifest,
].join(', ');

/** An image config larger than this is not fetched for the summary. */
const MAX_CONFIG_BYTES = 4 * 1024 * 1024;

export interface RequestOptions {
  readonly signal?: AbortSignal;
}

export type LoginKind = 'htpasswd' | 'token' | 'none';

export interface Session {
  readonly user: string | null;
  readonly csrf: string | null;
  readonly login: LoginKind;
}

let csrf: string | null = null;

/** The token every non-GET request carries as `X-Stowage-CSRF` (from the session). */
export function useCsrf(token: string | null): void {
  csrf = token;
}

/** One request; a refusal becomes an `ApiError` with the OCI error message. */
export async function request(
  url: string,
  options: RequestOptions & {
    readonly method?: string;
    readonly headers?: Record<string, string>;
    readonly body?: string;
  } = {},
): Promise<Response> {
  const method = options.method ?? 'GET';
  const headers: Record<string, string> = { ...options.headers };
  if (method !== 'GET' && method !== 'HEAD' && csrf !== null) headers['X-Stowage-CSRF'] = csrf;
  let response: Response;
  try {
    response = await fetch(url, {
      method,
      headers,
      credentials: 'same-origin',
      ...(options.body !== undefined ? { body: options.body } : {}),
      ...(options.signal ? { signal: options.signal } : {}),
    });
  } catch (cause) {
    if (options.signal?.aborted) throw cause;
    throw new ApiError('the server did not answer', { status: 0, code: 'NETWORK', cause });
  }
  if (!response.ok) throw await errorOf(response);
  return response;
}

async function json<T>(url: string, options: RequestOptions = {}): Promise<T> {
  const response = await request(url, { ...options, headers: { accept: 'application/json' } });
  return (await response.json()) as T;
}

// ---- session ------------------------------------------------------------------------------

export async function fetchSession(options: RequestOptions = {}): Promise<Session> {
  const body = await json<Partial<Session>>('/ui/api/session', options);
  const login = body.login === 'htpasswd' || body.login === 'token' ? body.login : 'none';
  return {
    user: typeof body.user === 'string' ? body.user : null,
    csrf: typeof body.csrf === 'string' ? body.csrf : null,
    login,
  };
}

export async function login(
  credentials: { readonly username: string; readonly password: string },
  options: RequestOptions = {},
): Promise<void> {
  await request('/ui/api/login', {
    ...options,
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ username: credentials.username, password: credentials.password }),
  });
}

export async function logout(options: RequestOptions = {}): Promise<void> {
  await request('/ui/api/logout', { ...options, method: 'POST' });
}

/** The actions (`pull`, `push`, `delete`) the session may do on `repository`. */
export async function fetchAccess(repository: string, options: RequestOptions = {}): Promise<Set<string>> {
  const body = await json<{ actions?: unknown }>(
    `/ui/api/access?${new URLSearchParams({ repository }).toString()}`,
    options,
  );
  return new Set(Array.isArray(body.actions) ? body.actions.filter((a) => typeof a === 'string') : []);
}

// ---- listings -----------------------------------------------------------------------------

const NAME = /^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*(?:\/[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*)*$/;
const TAG = /^\w[\w.-]{0,127}$/;
const DIGEST = /^[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$/;

export function isDigest(reference: string): boolean {
  return DIGEST.test(reference);
}

/**
 * A repository name as it goes into a /v2/ path. Names come from the server and the address bar, so
 * one that is not a valid name is refused here rather than sent (`..` would leave the route).
 */
export function namePath(repository: string): string {
  if (!NAME.test(repository)) {
    throw new ApiError(`invalid repository name ${JSON.stringify(repository)}`, {
      status: 0,
      code: 'NAME_INVALID',
    });
  }
  return repository;
}

/** A tag or digest as it goes into a /v2/ path; anything else is refused. */
export function referencePath(reference: string): string {
  if (!TAG.test(reference) && !isDigest(reference)) {
    throw new ApiError(`invalid tag or digest ${JSON.stringify(reference)}`, {
      status: 0,
      code: 'MANIFEST_INVALID',
    });
  }
  return reference;
}

export function catalogUrl(n: number): string {
  return `/v2/_catalog?n=${n}`;
}

export function tagsUrl(repository: string, n: number): string {
  return `/v2/${namePath(repository)}/tags/list?n=${n}`;
}

/**
 * The `rel="next"` target of a `Link` header, resolved against `current`; undefined when there is
 * none, or when it leaves the origin or /v2/ (a page never follows a link elsewhere).
 */
export function nextLink(header: string | null, current: string, origin: string): string | undefined {
  if (!header) return undefined;
  for (const match of header.matchAll(/<([^>]*)>((?:\s*;\s*[^;,]*)*)/g)) {
    const params = match[2] ?? '';
    if (!/;\s*rel\s*=\s*"?(?:[^";,]*\s)?next(?:\s[^";,]*)?"?/i.test(params)) continue;
    let url: URL;
    try {
      url = new URL(match[1] ?? '', new URL(current, origin));
    } catch {
      return undefined;
    }
    if (url.origin !== origin || !url.pathname.startsWith('/v2/')) return undefined;
    return url.pathname + url.search;
  }
  return undefined;
}

/** One page of a listing: its entries (`repositories` or `tags`) and the URL of the next page. */
export async function fetchListPage(
  url: string,
  options: RequestOptions & { readonly field: 'repositories' | 'tags' },
): Promise<{ items: string[]; next: string | undefined }> {
  const response = await request(url, { signal: options.signal, headers: { accept: 'application/json' } });
  const body = (await response.json()) as Record<string, unknown> | null;
  const list = body?.[options.field];
  const items = Array.isArray(list) ? list.filter((item): item is string => typeof item === 'string') : [];
  const next = nextLink(response.headers.get('link'), url, location.origin);
  // a server that answers the same page again would keep us here forever
  return { items, next: next === url ? undefined : next };
}

// ---- manifests, blobs, referrers ----------------------------------------------------------

export interface Descriptor {
  readonly mediaType?: string;
  readonly digest: string;
  readonly size?: number;
  readonly artifactType?: string;
  readonly annotations?: Record<string, string>;
  readonly platform?: {
    readonly os?: string;
    readonly architecture?: string;
    readonly variant?: string;
    readonly 'os.version'?: string;
    readonly 'os.features'?: readonly string[];
  };
}

/** The fields of an image manifest or an index the pages show. */
export interface Manifest {
  readonly schemaVersion?: number;
  readonly mediaType?: string;
  readonly artifactType?: string;
  readonly config?: Descriptor;
  readonly layers?: readonly Descriptor[];
  readonly manifests?: readonly Descriptor[];
  readonly subject?: Descriptor;
  readonly annotations?: Record<string, string>;
}

export interface ManifestResponse {
  /** The media type (the `Content-Type`, else the manifest's own `mediaType`). */
  readonly mediaType: string;
  /** The digest, when the server sent `Docker-Content-Digest`, the reference is one, or the page can hash. */
  readonly digest: string | undefined;
  /** The manifest's own size in bytes. */
  readonly size: number;
  readonly text: string;
  readonly manifest: Manifest;
}

export function isIndex(response: Pick<ManifestResponse, 'mediaType' | 'manifest'>): boolean {
  return (
    response.mediaType === MEDIA_TYPES.ociIndex ||
    response.mediaType === MEDIA_TYPES.dockerList ||
    (response.manifest.layers === undefined && Array.isArray(response.manifest.manifests))
  );
}

async function sha256(bytes: ArrayBuffer): Promise<string | undefined> {
  // crypto.subtle exists only in a secure context (https, or localhost)
  if (!globalThis.crypto?.subtle) return undefined;
  const hash = new Uint8Array(await crypto.subtle.digest('SHA-256', bytes));
  return `sha256:${Array.from(hash, (b) => b.toString(16).padStart(2, '0')).join('')}`;
}

export async function fetchManifest(
  repository: string,
  options: RequestOptions & { readonly reference: string },
): Promise<ManifestResponse> {
  const response = await request(
    `/v2/${namePath(repository)}/manifests/${referencePath(options.reference)}`,
    { signal: options.signal, headers: { accept: MANIFEST_ACCEPT } },
  );
  const bytes = await response.arrayBuffer();
  const text = new TextDecoder().decode(bytes);
  let manifest: Manifest;
  try {
    manifest = JSON.parse(text) as Manifest;
  } catch (cause) {
    throw new ApiError('the manifest is not JSON', {
      status: response.status,
      code: 'MANIFEST_INVALID',
      cause,
    });
  }
  if (manifest === null || typeof manifest !== 'object') {
    throw new ApiError('the manifest is not a JSON object', {
      status: response.status,
      code: 'MANIFEST_INVALID',
    });
  }
  const contentType = response.headers.get('content-type')?.split(';')[0]?.trim();
  const mediaType =
    contentType && contentType !== 'application/json'
      ? contentType
      : (manifest.mediaType ?? contentType ?? '');
  const digest =
    response.headers.get('docker-content-digest') ??
    (isDigest(options.reference) ? options.reference : await sha256(bytes));
  return { mediaType, digest, size: bytes.byteLength, text, manifest };
}

/** An image config (`config` of an image manifest), the fields the summary shows. */
export interface ImageConfig {
  readonly created?: string;
  readonly author?: string;
  readonly architecture?: string;
  readonly os?: string;
  readonly variant?: string;
  readonly config?: {
    readonly User?: string;
    readonly Env?: readonly string[];
    readonly Entrypoint?: readonly string[] | null;
    readonly Cmd?: readonly string[] | null;
    readonly WorkingDir?: string;
    readonly Labels?: Record<string, string> | null;
    readonly ExposedPorts?: Record<string, unknown> | null;
  };
}

export function isImageConfig(descriptor: Descriptor | undefined): boolean {
  return (
    descriptor?.mediaType === MEDIA_TYPES.ociConfig || descriptor?.mediaType === MEDIA_TYPES.dockerConfig
  );
}

/** The image config a manifest names, or undefined when it is too large to show. */
export async function fetchImageConfig(
  repository: string,
  options: RequestOptions & { readonly descriptor: Descriptor },
): Promise<ImageConfig | undefined> {
  if ((options.descriptor.size ?? 0) > MAX_CONFIG_BYTES) return undefined;
  const response = await request(
    `/v2/${namePath(repository)}/blobs/${referencePath(options.descriptor.digest)}`,
    { signal: options.signal },
  );
  return (await response.json()) as ImageConfig;
}

/** The referrers (signatures, SBOMs, attestations) of a manifest: the descriptors of the referrers index. */
export async function fetchReferrers(
  repository: string,
  options: RequestOptions & { readonly digest: string },
): Promise<readonly Descriptor[]> {
  const response = await request(`/v2/${namePath(repository)}/referrers/${referencePath(options.digest)}`, {
    signal: options.signal,
    headers: { accept: MEDIA_TYPES.ociIndex },
  });
  const index = (await response.json()) as Manifest | null;
  return Array.isArray(index?.manifests) ? index.manifests : [];
}

/** Deletes a tag (`reference` a tag) or a manifest (`reference` a digest). */
export async function deleteManifest(
  repository: string,
  options: RequestOptions & { readonly reference: string },
): Promise<void> {
  await request(`/v2/${namePath(repository)}/manifests/${referencePath(options.reference)}`, {
    signal: options.signal,
    method: 'DELETE',
  });
}
