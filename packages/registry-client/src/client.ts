import { createHash, type Hash } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import { pipeline, Readable } from 'node:stream';
import {
  type AppendUploadOptions,
  assertContent,
  type BlobBody,
  type BlobContent,
  type BlobInfo,
  type ByteRange,
  type Descriptor,
  type Digest,
  DigestMismatchError,
  detectManifestMediaType,
  digestAlgorithm,
  digestHex,
  digestOf,
  type FinishUploadOptions,
  fullCapabilities,
  type GetBlobOptions,
  type GetManifestOptions,
  isDigest,
  isManifestMediaType,
  isStowageError,
  type ListOptions,
  type ListPage,
  MAX_MANIFEST_SIZE,
  type ManifestContent,
  MediaType,
  type MountBlobOptions,
  manifestMediaTypes,
  type OperationOptions,
  type PutBlobOptions,
  type PutManifestOptions,
  type PutManifestResult,
  parseDigest,
  parseManifest,
  parseRepositoryName,
  parseTag,
  type Referrers,
  type ReferrersOptions,
  type Registry,
  type RegistryCapabilities,
  RegistryError,
  type RegistryWithUploads,
  SizeMismatchError,
  type UploadStatus,
  VerifyingStream,
} from '@stowage/oci';
import { RegistryProtocolError, RegistryResponseError } from './errors.js';
import {
  type BlobSource,
  blobSource,
  type ClientBlobBody,
  rechunk,
  verifiedChunks,
} from './internal/body.js';
import {
  LengthStream,
  type OpenBody,
  parseContentRange,
  resumableBody,
  SliceStream,
  skipBytes,
} from './internal/download.js';
import { nextLink } from './internal/link.js';
import { backoffDelay, isRetryable, sleep } from './internal/retry.js';
import { catalogScope, deleteScope, pullScope, pushScope, type Scope } from './internal/scope.js';
import {
  headerValue,
  type RegistryHost,
  type SendOptions,
  type StreamResponse,
  Transport,
} from './internal/transport.js';
import {
  decodeUploadId,
  encodeUploadId,
  offsetFromRange,
  relativeLocation,
  sessionKey,
} from './internal/upload-id.js';
import { type RegistryClientOptions, type ResolvedRegistryClientOptions, resolveOptions } from './options.js';

export type { BlobSourceFactory, ClientBlobBody } from './internal/body.js';

/** `putBlob` options of the client: the `Registry` ones plus repositories to try a cross-repository mount from. */
export interface ClientPutBlobOptions extends PutBlobOptions {
  /** Repositories that may hold the blob: a mount is tried from each before any byte is sent. */
  readonly mountFrom?: string | readonly string[];
}

/** What `ping()` learnt about the registry. */
export interface PingResult {
  /** `host[:port]` of the registry API. */
  readonly registry: string;
  /** `Docker-Distribution-Api-Version`, when sent (`registry/2.0`). */
  readonly apiVersion?: string;
  /** The auth scheme the registry asked for: `none`, `basic` or `bearer`. */
  readonly auth: string;
}

/** A `Registry` on a remote registry host, plus what only a remote client has. */
export interface RegistryClient extends RegistryWithUploads {
  /** `host[:port]` of the registry API (`registry-1.docker.io` for Docker Hub). */
  readonly registry: string;
  /** `GET /v2/` with credentials: checks the registry answers and the credentials work. */
  ping(options?: OperationOptions): Promise<PingResult>;
  /**
   * Uploads a blob. Besides bytes and async iterables it takes a function that
   * opens the content anew, which lets a failed upload restart from the
   * beginning; a plain stream can only be resumed within the chunk in flight.
   */
  putBlob(repository: string, body: ClientBlobBody, options: ClientPutBlobOptions): Promise<BlobInfo>;
  close(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

/** One upload session as this client knows it. */
interface Session {
  readonly key: string;
  readonly repository: string;
  /** Absolute URL of the latest `Location`. */
  location: string;
  readonly startedAt: number;
  /** Bytes the registry holds, when known. */
  offset: number | undefined;
  /** `OCI-Chunk-Min-Length`, when the registry sent it. */
  chunkMin: number | undefined;
  /** sha256 of every byte sent through this client, while it has seen them all in order. */
  hash: Hash | undefined;
  hashed: number;
}

const LIST_BODY_LIMIT = 64 * 1024 * 1024;
const MAX_SESSIONS = 512;
const MAX_PAGES = 100_000;

/**
 * Creates a client for one remote registry host, implementing `Registry` over
 * the OCI distribution API on undici. See `RegistryClientOptions`.
 */
export function createRegistryClient(options: RegistryClientOptions): RegistryClient {
  return new RemoteRegistry(resolveOptions(options));
}

function truncate(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max)}…`;
}

function refuse(
  code: 'NAME_INVALID' | 'TAG_INVALID' | 'DIGEST_INVALID' | 'RANGE_INVALID',
  message: string,
  cause?: unknown,
) {
  return new RegistryError(code, message, { ...(cause !== undefined ? { cause } : {}) });
}

function checkRepository(name: string): string {
  try {
    parseRepositoryName(name);
  } catch (cause) {
    throw refuse(
      'NAME_INVALID',
      `invalid repository name ${JSON.stringify(truncate(String(name), 128))}`,
      cause,
    );
  }
  return name;
}

function checkDigest(value: string): Digest {
  try {
    return parseDigest(value);
  } catch (cause) {
    throw refuse('DIGEST_INVALID', `invalid digest ${JSON.stringify(truncate(String(value), 160))}`, cause);
  }
}

/** A reference is a digest when it has a colon (tags cannot), else a tag. */
function checkReference(reference: string): { readonly value: string; readonly digest?: Digest } {
  if (typeof reference === 'string' && reference.includes(':')) {
    const digest = checkDigest(reference);
    return { value: digest, digest };
  }
  try {
    parseTag(reference);
  } catch (cause) {
    throw refuse('TAG_INVALID', `invalid tag ${JSON.stringify(truncate(String(reference), 160))}`, cause);
  }
  return { value: reference };
}

function optionalDigest(value: string | undefined): Digest | undefined {
  const trimmed = value?.trim();
  return trimmed !== undefined && isDigest(trimmed) ? trimmed : undefined;
}

function contentLength(headers: IncomingHttpHeaders): number | undefined {
  const value = headerValue(headers, 'content-length');
  if (value === undefined || !/^\d+$/.test(value.trim())) return undefined;
  return Number(value);
}

function bareMediaType(value: string | undefined): string | undefined {
  if (value === undefined) return undefined;
  const semicolon = value.indexOf(';');
  return (semicolon < 0 ? value : value.slice(0, semicolon)).trim().toLowerCase() || undefined;
}

function compareStrings(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function appendQuery(location: string, name: string, value: string): string {
  const hash = location.indexOf('#');
  const base = hash < 0 ? location : location.slice(0, hash);
  return `${base}${base.includes('?') ? '&' : '?'}${name}=${encodeURIComponent(value)}`;
}

function parseJson(bytes: Uint8Array, what: string): unknown {
  try {
    return JSON.parse(Buffer.from(bytes).toString('utf8'));
  } catch (cause) {
    throw new RegistryProtocolError(`${what} is not valid JSON`, {}, cause);
  }
}

/** The tag the referrers tag schema keeps the referrers of `digest` under: `<alg>-<hex>`, truncated. */
export function referrersTag(digest: Digest): string {
  return `${digestAlgorithm(digest).slice(0, 32)}-${digestHex(digest).slice(0, 64)}`;
}

function descriptorsOf(value: unknown): Descriptor[] {
  const list = (value as { manifests?: unknown } | undefined)?.manifests;
  if (!Array.isArray(list)) return [];
  return list.filter(
    (d): d is Descriptor =>
      typeof d === 'object' &&
      d !== null &&
      typeof (d as Descriptor).mediaType === 'string' &&
      isDigest((d as Descriptor).digest) &&
      typeof (d as Descriptor).size === 'number',
  );
}

/** The subject and referrer descriptor of a manifest, when it declares a subject. */
function referrerOf(
  bytes: Uint8Array,
  mediaType: string,
  digest: Digest,
): { subject: Digest; descriptor: Descriptor } | undefined {
  let value: Record<string, unknown>;
  try {
    value = JSON.parse(Buffer.from(bytes).toString('utf8')) as Record<string, unknown>;
  } catch {
    return undefined;
  }
  const subject = (value?.subject as { digest?: unknown } | undefined)?.digest;
  if (typeof subject !== 'string' || !isDigest(subject)) return undefined;
  const config = value.config as { mediaType?: unknown } | undefined;
  const artifactType =
    typeof value.artifactType === 'string'
      ? value.artifactType
      : typeof config?.mediaType === 'string'
        ? config.mediaType
        : undefined;
  const annotations =
    typeof value.annotations === 'object' && value.annotations !== null
      ? (value.annotations as Record<string, string>)
      : undefined;
  return {
    subject,
    descriptor: {
      mediaType: typeof value.mediaType === 'string' ? value.mediaType : mediaType,
      digest,
      size: bytes.byteLength,
      ...(artifactType !== undefined ? { artifactType } : {}),
      ...(annotations !== undefined ? { annotations } : {}),
    },
  };
}

class RemoteRegistry implements RegistryClient {
  readonly registry: string;
  readonly origin: string;
  readonly #options: ResolvedRegistryClientOptions;
  readonly #transport: Transport;
  readonly #origin: RegistryHost;
  readonly #mirrors: readonly RegistryHost[];
  readonly #sessions = new Map<string, Session>();
  /** Whether the registry commits a blob sent in one `POST ?digest=` (learnt on first try). */
  #singlePost: boolean | undefined;
  /** Whether the registry serves the referrers API (learnt on first use). */
  #referrersApi: boolean | undefined;
  #closed = false;

  constructor(options: ResolvedRegistryClientOptions) {
    this.#options = options;
    this.registry = options.registry;
    this.#transport = new Transport(options);
    this.#origin = this.#transport.host(options.registry);
    this.origin = this.#origin.origin;
    this.#mirrors = options.mirrors.map((m) => this.#transport.host(m));
  }

  /** Placeholder until the server's own declaration is read: the distribution 2.8 profile. */
  async capabilities(): Promise<RegistryCapabilities> {
    return {
      ...fullCapabilities,
      deleteTag: false,
      anonymousMount: false,
      sparseIndex: false,
      referrers: 'tag-schema',
      lock: false,
      garbageCollect: false,
    };
  }

  // --- transport shorthands ---

  #send(options: SendOptions, host: RegistryHost = this.#origin): Promise<StreamResponse> {
    return this.#transport.send(host, options);
  }

  #sendForBytes(options: SendOptions, limit: number, host: RegistryHost = this.#origin) {
    return this.#transport.sendForBytes(host, options, limit);
  }

  #sendForHeaders(options: SendOptions, host: RegistryHost = this.#origin) {
    return this.#transport.sendForHeaders(host, options);
  }

  /** Tries each host in turn (mirrors, then the registry) and returns the first success; the registry's error wins. */
  async #fromHosts<T>(
    hosts: readonly RegistryHost[],
    signal: AbortSignal | undefined,
    operation: (host: RegistryHost) => Promise<T>,
  ): Promise<T> {
    for (let i = 0; ; i++) {
      const host = hosts[i] as RegistryHost;
      try {
        return await operation(host);
      } catch (error) {
        if (i === hosts.length - 1 || signal?.aborted) throw error;
        this.#options.logger.debug?.('mirror failed, trying the next host', {
          mirror: host.host,
          code: (error as { code?: unknown })?.code,
        });
      }
    }
  }

  #pullHosts(): RegistryHost[] {
    return [...this.#mirrors, this.#origin];
  }

  // --- ping and listings ---

  async ping(options: OperationOptions = {}): Promise<PingResult> {
    await this.#sendForHeaders({
      method: 'GET',
      target: '/v2/',
      endpoint: 'ping',
      accept: [200],
      scopes: [],
      ...signalOf(options),
    });
    return {
      registry: this.registry,
      ...(this.#origin.apiVersion !== undefined ? { apiVersion: this.#origin.apiVersion } : {}),
      auth: this.#origin.auth.scheme,
    };
  }

  async listRepositories(options: ListOptions = {}): Promise<ListPage> {
    return await this.#list('/v2/_catalog', 'repositories', 'catalog', [catalogScope], options);
  }

  async listTags(repository: string, options: ListOptions = {}): Promise<ListPage> {
    const repo = checkRepository(repository);
    return await this.#list(`/v2/${repo}/tags/list`, 'tags', 'tags', [pullScope(repo)], options);
  }

  /**
   * A listing, followed through every `Link` page when no `n` is given. The
   * result is sorted and free of duplicates whatever order the registry uses,
   * and `n`/`last` are applied here too, since some registries ignore them
   * (distribution 2.8 does for tags).
   */
  async #list(
    path: string,
    key: 'tags' | 'repositories',
    endpoint: 'tags' | 'catalog',
    scopes: readonly Scope[],
    options: ListOptions,
  ): Promise<ListPage> {
    const { n, last } = options;
    if (n !== undefined && (!Number.isSafeInteger(n) || n < 0)) {
      throw new RangeError(`n must be a non-negative integer, got ${String(n)}`);
    }
    if (n === 0) return { items: [] };
    const query = new URLSearchParams({ n: String(n ?? this.#options.pageSize) });
    if (last !== undefined) query.set('last', last);
    let target = `${path}?${query}`;
    const items = new Set<string>();
    const visited = new Set<string>([target]);
    let link: string | undefined;
    for (let page = 0; page < MAX_PAGES; page++) {
      const response = await this.#sendForBytes(
        { method: 'GET', target, endpoint, accept: [200], scopes, ...signalOf(options) },
        LIST_BODY_LIMIT,
      );
      const body = parseJson(response.bytes, `${endpoint} listing`) as Record<string, unknown>;
      const list = body?.[key];
      if (list !== null && list !== undefined && !Array.isArray(list)) {
        throw new RegistryProtocolError(`${endpoint} listing has no "${key}" array`);
      }
      for (const item of (list ?? []) as unknown[]) if (typeof item === 'string') items.add(item);
      link = nextLink(response.headers.link);
      if (n !== undefined || link === undefined) break;
      const next = new URL(link, this.#origin.origin);
      const nextTarget = next.pathname + next.search;
      if (visited.has(nextTarget)) break; // a registry that pages in a circle
      visited.add(nextTarget);
      target = nextTarget;
    }
    let sorted = [...items].sort(compareStrings);
    if (last !== undefined) sorted = sorted.filter((item) => item > last);
    if (n === undefined) return { items: sorted };
    if (sorted.length > n) {
      const page = sorted.slice(0, n);
      return { items: page, next: page[page.length - 1] as string };
    }
    if (link !== undefined) {
      const next = new URL(link, this.#origin.origin).searchParams.get('last') ?? sorted[sorted.length - 1];
      if (next !== undefined) return { items: sorted, next };
    }
    return { items: sorted };
  }

  // --- manifests ---

  async getManifest(
    repository: string,
    reference: string,
    options: GetManifestOptions = {},
  ): Promise<ManifestContent> {
    const repo = checkRepository(repository);
    const ref = checkReference(reference);
    const hosts = ref.digest ? this.#pullHosts() : [this.#origin];
    return await this.#fromHosts(hosts, options.signal, (host) =>
      this.#fetchManifest(host, repo, ref, options),
    );
  }

  async #fetchManifest(
    host: RegistryHost,
    repo: string,
    ref: { value: string; digest?: Digest },
    options: GetManifestOptions,
  ): Promise<ManifestContent> {
    const response = await this.#sendForBytes(
      {
        method: 'GET',
        target: `/v2/${repo}/manifests/${ref.value}`,
        headers: { accept: (options.accept ?? manifestMediaTypes).join(', ') },
        endpoint: 'manifest',
        accept: [200],
        scopes: [pullScope(repo)],
        ...signalOf(options),
      },
      MAX_MANIFEST_SIZE,
      host,
    );
    const bytes = new Uint8Array(response.bytes);
    const digest = verifyManifestBytes(
      bytes,
      ref.digest,
      headerValue(response.headers, 'docker-content-digest'),
    );
    return { digest, mediaType: manifestMediaType(response.headers, bytes), size: bytes.byteLength, bytes };
  }

  async headManifest(
    repository: string,
    reference: string,
    options: GetManifestOptions = {},
  ): Promise<Descriptor | undefined> {
    const repo = checkRepository(repository);
    const ref = checkReference(reference);
    const response = await this.#sendForHeaders({
      method: 'HEAD',
      target: `/v2/${repo}/manifests/${ref.value}`,
      headers: { accept: (options.accept ?? manifestMediaTypes).join(', ') },
      endpoint: 'manifest',
      accept: [200, 404],
      scopes: [pullScope(repo)],
      ...signalOf(options),
    });
    if (response.status === 404) return undefined;
    const headerDigest = optionalDigest(headerValue(response.headers, 'docker-content-digest'));
    const size = contentLength(response.headers);
    const mediaType = bareMediaType(headerValue(response.headers, 'content-type'));
    if (ref.digest && headerDigest && digestAlgorithm(headerDigest) === digestAlgorithm(ref.digest)) {
      if (headerDigest !== ref.digest) throw new DigestMismatchError(ref.digest, headerDigest);
    }
    const digest = ref.digest ?? headerDigest;
    if (
      digest === undefined ||
      size === undefined ||
      mediaType === undefined ||
      !isManifestMediaType(mediaType)
    ) {
      // Not enough in the headers: read the manifest itself.
      try {
        const content = await this.#fetchManifest(this.#origin, repo, ref, options);
        return { mediaType: content.mediaType, digest: content.digest, size: content.size };
      } catch (error) {
        if (isStowageError(error, 'MANIFEST_UNKNOWN') || isStowageError(error, 'NAME_UNKNOWN'))
          return undefined;
        throw error;
      }
    }
    return { mediaType, digest, size };
  }

  async putManifest(
    repository: string,
    reference: string,
    options: PutManifestOptions,
  ): Promise<PutManifestResult> {
    const { bytes } = options;
    const repo = checkRepository(repository);
    const ref = checkReference(reference);
    const digest = ref.digest ?? digestOf(bytes);
    if (ref.digest) {
      const actual = digestOf(bytes, digestAlgorithm(ref.digest));
      if (actual !== ref.digest) throw new DigestMismatchError(ref.digest, actual);
    }
    if (this.#options.validateManifests) {
      try {
        parseManifest(bytes, { mediaType: options.mediaType });
      } catch (cause) {
        // Refused here rather than by the registry: distribution 2.8 answers some invalid manifests with
        // DIGEST_INVALID or a 500, which would be misleading or retried.
        if (!isStowageError(cause)) throw cause;
        const code =
          cause.code === 'UNSUPPORTED' || cause.code === 'SIZE_INVALID' ? cause.code : 'MANIFEST_INVALID';
        throw new RegistryError(code, cause.message, { cause, details: cause.details });
      }
    }
    const response = await this.#putManifestBytes(repo, ref.value, bytes, options.mediaType, options.signal);
    const echoed = optionalDigest(headerValue(response.headers, 'docker-content-digest'));
    if (echoed !== undefined) {
      const actual = digestOf(bytes, digestAlgorithm(echoed));
      if (actual !== echoed) throw new DigestMismatchError(echoed, actual);
    }
    const referrer = referrerOf(bytes, options.mediaType, digest);
    if (referrer === undefined) return { digest };
    const subjectHeader = headerValue(response.headers, 'oci-subject');
    if (subjectHeader !== undefined) this.#referrersApi = true;
    else if (
      this.#options.referrersTagFallback &&
      !(await this.#hasReferrersApi(repo, referrer.subject, options.signal))
    ) {
      await this.#updateReferrersTag(repo, referrer.subject, options.signal, (list) =>
        list.some((d) => d.digest === digest) ? undefined : [...list, referrer.descriptor],
      );
    }
    return { digest, subject: referrer.subject };
  }

  #putManifestBytes(
    repo: string,
    reference: string,
    bytes: Uint8Array,
    mediaType: string,
    signal?: AbortSignal,
  ) {
    return this.#sendForHeaders({
      method: 'PUT',
      target: `/v2/${repo}/manifests/${reference}`,
      headers: { 'content-type': mediaType },
      body: bytes,
      endpoint: 'manifest',
      accept: [200, 201, 202, 204],
      scopes: [pushScope(repo)],
      ...(signal ? { signal } : {}),
    });
  }

  async deleteManifest(repository: string, digest: Digest, options: OperationOptions = {}): Promise<void> {
    const repo = checkRepository(repository);
    const target = checkDigest(digest);
    let subject: Digest | undefined;
    if (this.#options.referrersTagFallback && this.#referrersApi !== true) {
      try {
        const content = await this.#fetchManifest(
          this.#origin,
          repo,
          { value: target, digest: target },
          options,
        );
        subject = referrerOf(content.bytes, content.mediaType, target)?.subject;
      } catch (error) {
        if (options.signal?.aborted) throw error;
        // The delete below reports what is wrong, if anything.
      }
    }
    await this.#sendForHeaders({
      method: 'DELETE',
      target: `/v2/${repo}/manifests/${target}`,
      endpoint: 'manifest',
      accept: [200, 202, 204],
      scopes: [deleteScope(repo)],
      ...signalOf(options),
    });
    if (subject !== undefined && !(await this.#hasReferrersApi(repo, subject, options.signal))) {
      await this.#updateReferrersTag(repo, subject, options.signal, (list) =>
        list.some((d) => d.digest === target) ? list.filter((d) => d.digest !== target) : undefined,
      );
    }
  }

  /**
   * Tag deletion (`DELETE /v2/<name>/manifests/<tag>`). Registries without it
   * (distribution 2.8 answers 400 DIGEST_INVALID, others 405) are reported as
   * `UNSUPPORTED`: no safe emulation exists, since deleting the manifest by
   * digest would remove every other tag pointing at it.
   */
  async deleteTag(repository: string, tag: string, options: OperationOptions = {}): Promise<void> {
    const repo = checkRepository(repository);
    const ref = checkReference(tag);
    if (ref.digest) throw refuse('TAG_INVALID', 'deleteTag takes a tag, not a digest');
    await this.#sendForHeaders({
      method: 'DELETE',
      target: `/v2/${repo}/manifests/${ref.value}`,
      endpoint: 'manifest',
      accept: [200, 202, 204],
      scopes: [deleteScope(repo)],
      codeFor: (status, diagnostics) =>
        status === 400 || status === 405 || diagnostics.some((d) => d.code === 'UNSUPPORTED')
          ? 'UNSUPPORTED'
          : status === 404
            ? 'MANIFEST_UNKNOWN'
            : undefined,
      ...signalOf(options),
    });
  }

  // --- referrers ---

  async listReferrers(
    repository: string,
    digest: Digest,
    options: ReferrersOptions = {},
  ): Promise<Referrers> {
    const repo = checkRepository(repository);
    const subject = checkDigest(digest);
    const { artifactType } = options;
    let manifests: readonly Descriptor[] | undefined;
    let filtered = false;
    if (this.#referrersApi !== false) {
      const fromApi = await this.#referrersFromApi(repo, subject, artifactType, options.signal);
      if (fromApi !== undefined) ({ manifests, filtered } = fromApi);
    }
    manifests ??= await this.#referrersFromTag(repo, subject, options.signal);
    if (artifactType !== undefined && !filtered)
      manifests = manifests.filter((d) => d.artifactType === artifactType);
    return { manifests, filtersApplied: artifactType !== undefined ? ['artifactType'] : [] };
  }

  async #hasReferrersApi(repo: string, subject: Digest, signal?: AbortSignal): Promise<boolean> {
    if (this.#referrersApi === undefined) await this.#referrersFromApi(repo, subject, undefined, signal);
    return this.#referrersApi === true;
  }

  /** The referrers API, every page; `undefined` when the registry does not serve it. */
  async #referrersFromApi(
    repo: string,
    subject: Digest,
    artifactType: string | undefined,
    signal?: AbortSignal,
  ): Promise<{ manifests: Descriptor[]; filtered: boolean } | undefined> {
    let target = `/v2/${repo}/referrers/${subject}`;
    if (artifactType !== undefined) target += `?artifactType=${encodeURIComponent(artifactType)}`;
    const manifests: Descriptor[] = [];
    let filtered = false;
    const visited = new Set<string>([target]);
    for (let page = 0; page < MAX_PAGES; page++) {
      const response = await this.#sendForBytes(
        {
          method: 'GET',
          target,
          headers: { accept: MediaType.OciIndex },
          endpoint: 'referrers',
          accept: [200, 400, 404, 405],
          scopes: [pullScope(repo)],
          ...(signal ? { signal } : {}),
        },
        LIST_BODY_LIMIT,
      );
      const type = bareMediaType(headerValue(response.headers, 'content-type'));
      if (response.status !== 200 || (type !== MediaType.OciIndex && type !== 'application/json')) {
        if (page > 0)
          throw new RegistryProtocolError('referrers paging broke off', { status: response.status });
        const body =
          response.status === 404 ? (parseJsonSafe(response.bytes) as { errors?: { code?: unknown }[] }) : {};
        // A registry with the API answers NAME_UNKNOWN for a missing repository; only a bare 404 means "no API".
        if (!body?.errors?.some((e) => e?.code === 'NAME_UNKNOWN')) this.#referrersApi = false;
        return undefined;
      }
      this.#referrersApi = true;
      const applied = headerValue(response.headers, 'oci-filters-applied') ?? '';
      if (applied.split(',').some((f) => f.trim() === 'artifactType')) filtered = true;
      manifests.push(...descriptorsOf(parseJson(response.bytes, 'referrers index')));
      const link = nextLink(response.headers.link);
      if (link === undefined) break;
      const next = new URL(link, this.#origin.origin);
      target = next.pathname + next.search;
      if (visited.has(target)) break;
      visited.add(target);
    }
    return { manifests, filtered: filtered && artifactType !== undefined };
  }

  async #referrersFromTag(repo: string, subject: Digest, signal?: AbortSignal): Promise<Descriptor[]> {
    try {
      const index = await this.#fetchManifest(
        this.#origin,
        repo,
        { value: referrersTag(subject) },
        { accept: [MediaType.OciIndex], ...(signal ? { signal } : {}) },
      );
      return descriptorsOf(parseJson(index.bytes, 'referrers tag index'));
    } catch (error) {
      if (isStowageError(error, 'MANIFEST_UNKNOWN') || isStowageError(error, 'NAME_UNKNOWN')) return [];
      throw error;
    }
  }

  /**
   * Read-modify-write of the referrers tag index. Not atomic: two clients
   * updating the same subject at once can lose one update, as with every
   * client of the tag schema.
   */
  async #updateReferrersTag(
    repo: string,
    subject: Digest,
    signal: AbortSignal | undefined,
    change: (list: readonly Descriptor[]) => readonly Descriptor[] | undefined,
  ): Promise<void> {
    const current = await this.#referrersFromTag(repo, subject, signal);
    const next = change(current);
    if (next === undefined) return;
    const index = { schemaVersion: 2, mediaType: MediaType.OciIndex, manifests: next };
    const bytes = new TextEncoder().encode(JSON.stringify(index));
    await this.#putManifestBytes(repo, referrersTag(subject), bytes, MediaType.OciIndex, signal);
  }

  // --- blobs ---

  async headBlob(
    repository: string,
    digest: Digest,
    options: OperationOptions = {},
  ): Promise<BlobInfo | undefined> {
    const repo = checkRepository(repository);
    const target = checkDigest(digest);
    const response = await this.#sendForHeaders({
      method: 'HEAD',
      target: `/v2/${repo}/blobs/${target}`,
      endpoint: 'blob',
      accept: [200, 404],
      followRedirects: true,
      scopes: [pullScope(repo)],
      ...signalOf(options),
    });
    if (response.status === 404) return undefined;
    const size = contentLength(response.headers);
    if (size === undefined)
      throw new RegistryProtocolError('blob HEAD without a Content-Length', { digest: target });
    return { digest: target, size };
  }

  async getBlob(repository: string, digest: Digest, options: GetBlobOptions = {}): Promise<BlobContent> {
    const repo = checkRepository(repository);
    const target = checkDigest(digest);
    const range = options.range;
    if (range !== undefined) {
      const { start, end } = range;
      if (
        !Number.isSafeInteger(start) ||
        start < 0 ||
        (end !== undefined && (!Number.isSafeInteger(end) || end < start))
      ) {
        throw refuse('RANGE_INVALID', `invalid byte range ${start}-${end ?? ''}`);
      }
    }
    return await this.#fromHosts(this.#pullHosts(), options.signal, (host) =>
      this.#fetchBlob(host, repo, target, range, options.signal),
    );
  }

  async #fetchBlob(
    host: RegistryHost,
    repo: string,
    digest: Digest,
    range: ByteRange | undefined,
    signal: AbortSignal | undefined,
  ): Promise<BlobContent> {
    const path = `/v2/${repo}/blobs/${digest}`;
    const request = (start: number | undefined, end: number | undefined) =>
      this.#send(
        {
          method: 'GET',
          target: path,
          headers: start !== undefined ? { range: `bytes=${start}-${end ?? ''}` } : {},
          endpoint: 'blob',
          accept: [200, 206],
          followRedirects: true,
          scopes: [pullScope(repo)],
          ...(signal ? { signal } : {}),
        },
        host,
      );
    const describe = { method: 'GET', url: new URL(path, host.origin).toString() };
    const policy = this.#options.retry;
    /** Re-requests bytes from `from` (absolute offset), positioned exactly there. */
    const reopenAt = async (from: number, end: number | undefined): Promise<OpenBody> => {
      const response = await request(from, end);
      const body = response.body;
      if (response.status === 200) return { body: skipBytes(body, from), destroy: () => body.destroy() };
      const served = parseContentRange(headerValue(response.headers, 'content-range'));
      if (served?.start !== from) {
        body.destroy();
        throw new RegistryProtocolError('the registry resumed a download at the wrong offset', { from });
      }
      return { body, destroy: () => body.destroy() };
    };
    const onResume = (received: number, error: unknown) =>
      this.#options.logger.debug?.('resuming blob download', {
        digest,
        received,
        reason: (error as { code?: unknown })?.code,
      });

    const first = await request(range?.start, range?.end);
    const firstBody = { body: first.body, destroy: () => first.body.destroy() };
    const length = contentLength(first.headers);

    if (first.status === 206) {
      const served = parseContentRange(headerValue(first.headers, 'content-range'));
      if (range === undefined || served === undefined || served.start !== range.start) {
        first.body.destroy();
        throw new RegistryProtocolError('the registry sent a partial response that was not asked for', {
          digest,
        });
      }
      const expected = served.end - served.start + 1;
      const resumable = resumableBody(firstBody, {
        expected,
        reopen: (received) => reopenAt(served.start + received, served.end),
        policy,
        describe,
        onResume,
        ...(signal ? { signal } : {}),
      });
      const size =
        served.total ?? (await this.headBlob(repo, digest, signalOf({ signal })))?.size ?? served.end + 1;
      return {
        digest,
        size,
        stream: pipeline(Readable.from(resumable), new LengthStream(expected), () => {}),
        range: { start: served.start, end: served.end },
      };
    }

    // 200: the whole blob, verified against the digest (and length) while it streams.
    let size = length;
    if (size === undefined) size = (await this.headBlob(repo, digest, signalOf({ signal })))?.size;
    const resumable = resumableBody(firstBody, {
      ...(size !== undefined ? { expected: size } : {}),
      reopen: (received) => reopenAt(received, undefined),
      policy,
      describe,
      onResume,
      ...(signal ? { signal } : {}),
    });
    const verifier = new VerifyingStream({ digest, ...(size !== undefined ? { size } : {}) });
    if (range === undefined) {
      return { digest, size: size ?? -1, stream: pipeline(Readable.from(resumable), verifier, () => {}) };
    }
    // The registry ignored the Range header: verify everything, pass on the part asked for.
    if (size !== undefined && range.start >= size) {
      first.body.destroy();
      throw new RegistryResponseError({
        status: 416,
        method: 'GET',
        url: describe.url,
        endpoint: 'blob',
        message: `range starts at ${range.start}, past the end of a ${size}-byte blob`,
      });
    }
    const end =
      size === undefined ? (range.end ?? Number.MAX_SAFE_INTEGER) : Math.min(range.end ?? size - 1, size - 1);
    return {
      digest,
      size: size ?? -1,
      stream: pipeline(Readable.from(resumable), verifier, new SliceStream(range.start, end), () => {}),
      range: { start: range.start, end },
    };
  }

  async deleteBlob(repository: string, digest: Digest, options: OperationOptions = {}): Promise<void> {
    const repo = checkRepository(repository);
    const target = checkDigest(digest);
    await this.#sendForHeaders({
      method: 'DELETE',
      target: `/v2/${repo}/blobs/${target}`,
      endpoint: 'blob',
      accept: [200, 202, 204],
      scopes: [deleteScope(repo)],
      ...signalOf(options),
    });
  }

  async mountBlob(
    repository: string,
    digest: Digest,
    options: MountBlobOptions = {},
  ): Promise<BlobInfo | undefined> {
    const repo = checkRepository(repository);
    const target = checkDigest(digest);
    const from = options.from === undefined ? undefined : checkRepository(options.from);
    if (from === repo) return await this.headBlob(repo, target, options);
    const result = await this.#mount(repo, target, from, options.signal);
    if (result.mounted) return await this.headBlob(repo, target, options);
    // The registry opened an upload session instead of mounting: close it so nothing leaks.
    if (result.session !== undefined)
      await this.#cancelSession(result.session, options.signal).catch(() => {});
    return undefined;
  }

  /** `POST ?mount=`: 201 is a mount, 202 an upload session the registry opened instead. */
  async #mount(
    repo: string,
    digest: Digest,
    from: string | undefined,
    signal: AbortSignal | undefined,
  ): Promise<{ mounted: true } | { mounted: false; session?: Session }> {
    const query = `?mount=${digest}${from !== undefined ? `&from=${encodeURIComponent(from)}` : ''}`;
    let response: Awaited<ReturnType<Transport['sendForHeaders']>>;
    try {
      response = await this.#sendForHeaders({
        method: 'POST',
        target: `/v2/${repo}/blobs/uploads/${query}`,
        endpoint: 'upload',
        accept: [201, 202],
        idempotent: true,
        scopes: from !== undefined ? [pushScope(repo), pullScope(from)] : [pushScope(repo)],
        ...(signal ? { signal } : {}),
      });
    } catch (error) {
      // No read access to the source, or no such source: not mountable, the caller uploads.
      if (from !== undefined && (isStowageError(error, 'UNAUTHORIZED') || isStowageError(error, 'DENIED'))) {
        return { mounted: false };
      }
      if (isStowageError(error, 'NAME_UNKNOWN') || isStowageError(error, 'BLOB_UNKNOWN'))
        return { mounted: false };
      throw error;
    }
    if (response.status === 201) return { mounted: true };
    const location = headerValue(response.headers, 'location');
    return location === undefined
      ? { mounted: false }
      : { mounted: false, session: this.#newSession(repo, response.headers) };
  }

  async putBlob(repository: string, body: ClientBlobBody, options: ClientPutBlobOptions): Promise<BlobInfo> {
    const source = blobSource(body);
    try {
      const repo = checkRepository(repository);
      const digest = checkDigest(options.digest);
      const { size, signal } = options;
      if (size !== undefined && (!Number.isSafeInteger(size) || size < 0)) {
        throw new SizeMismatchError(size, source.bytes?.byteLength ?? -1);
      }
      if (source.bytes !== undefined) {
        assertContent(
          { digest: digestOf(source.bytes, digestAlgorithm(digest)), size: source.bytes.byteLength },
          {
            digest,
            ...(size !== undefined ? { size } : {}),
          },
        );
      }
      const existing = await this.headBlob(repo, digest, signalOf(options));
      if (existing !== undefined) {
        source.discard();
        return existing;
      }
      let session: Session | undefined;
      const mountFrom =
        options.mountFrom === undefined
          ? []
          : typeof options.mountFrom === 'string'
            ? [options.mountFrom]
            : options.mountFrom;
      for (const from of mountFrom) {
        if (from === repo) continue;
        const result = await this.#mount(repo, digest, checkRepository(from), signal);
        if (result.mounted) {
          source.discard();
          if (session !== undefined) await this.#cancelSession(session, signal).catch(() => {});
          return (await this.headBlob(repo, digest, signalOf(options))) ?? { digest, size: size ?? 0 };
        }
        if (session === undefined) session = result.session;
        else if (result.session !== undefined)
          await this.#cancelSession(result.session, signal).catch(() => {});
      }
      return await this.#upload(repo, digest, size, source, session, signal);
    } catch (error) {
      source.discard();
      throw error;
    }
  }

  /**
   * Uploads with restarts: when an attempt fails in a way a new try may fix
   * (network, 5xx, a session the registry dropped), the session is cancelled
   * and, if the body can be read again (bytes or a factory), the upload starts
   * over in a new session.
   */
  async #upload(
    repo: string,
    digest: Digest,
    size: number | undefined,
    source: BlobSource,
    session: Session | undefined,
    signal: AbortSignal | undefined,
  ): Promise<BlobInfo> {
    const policy = this.#options.retry;
    for (let attempt = 0; ; attempt++) {
      const state: { session: Session | undefined } = { session };
      try {
        return await this.#uploadOnce(repo, digest, size, source, state, signal);
      } catch (error) {
        if (state.session !== undefined) await this.#cancelSession(state.session).catch(() => {});
        session = undefined;
        const restartable =
          isRetryable(error) ||
          isStowageError(error, 'BLOB_UPLOAD_UNKNOWN') ||
          isStowageError(error, 'BLOB_UPLOAD_INVALID');
        if (signal?.aborted || !source.replayable || !restartable || attempt >= policy.retries) throw error;
        this.#options.logger.debug?.('restarting blob upload', { digest, attempt: attempt + 1 });
        await sleep(backoffDelay(attempt, policy), signal);
      }
    }
  }

  async #uploadOnce(
    repo: string,
    digest: Digest,
    size: number | undefined,
    source: BlobSource,
    state: { session: Session | undefined },
    signal: AbortSignal | undefined,
  ): Promise<BlobInfo> {
    const bytes = source.bytes;
    const sig = signal ? { signal } : {};
    if (
      bytes !== undefined &&
      state.session === undefined &&
      this.#singlePost !== false &&
      bytes.byteLength <= this.#options.singleRequestMaxBytes
    ) {
      // One request: POST with ?digest= and the body. Registries without it open a session (202) and drop the body.
      const response = await this.#sendForHeaders({
        method: 'POST',
        target: `/v2/${repo}/blobs/uploads/?digest=${digest}`,
        headers: { 'content-type': 'application/octet-stream' },
        body: bytes,
        endpoint: 'upload',
        accept: [201, 202],
        idempotent: true,
        scopes: [pushScope(repo)],
        ...sig,
      });
      if (response.status === 201) {
        this.#singlePost = true;
        checkEchoedDigest(response.headers, digest);
        return { digest, size: bytes.byteLength };
      }
      this.#singlePost = false;
      state.session = this.#newSession(repo, response.headers);
    }
    state.session ??= await this.#openSession(repo, signal);
    const session = state.session;
    const chunkSize = Math.max(this.#options.chunkSize, session.chunkMin ?? 0);
    const monolithic = this.#options.monolithicMaxBytes;

    let chunks: AsyncIterable<Uint8Array>;
    if (bytes !== undefined) {
      if (bytes.byteLength <= monolithic) {
        return await this.#commit(session, digest, bytes.byteLength, bytes, signal);
      }
      chunks = rechunk(source.open(), chunkSize);
    } else {
      const verified = verifiedChunks(source.open(), { digest, ...(size !== undefined ? { size } : {}) });
      // A re-openable source of known size streams in one request whatever its size: a
      // failure restarts it from the source, and one long PUT is much faster than many PATCHes.
      if (size !== undefined && (size <= monolithic || source.replayable)) {
        return await this.#commit(session, digest, size, { stream: verified, length: size }, signal);
      }
      chunks = rechunk(verified, chunkSize);
    }
    let offset = 0;
    for await (const chunk of chunks) {
      await this.#patchChunk(session, chunk, offset, signal);
      offset += chunk.byteLength;
    }
    return await this.#commit(session, digest, offset, undefined, signal);
  }

  /** The final `PUT ?digest=`, with the whole body (monolithic) or none (after chunks). */
  async #commit(
    session: Session,
    digest: Digest,
    size: number,
    body: Uint8Array | { stream: AsyncIterable<Uint8Array>; length: number } | undefined,
    signal: AbortSignal | undefined,
  ): Promise<BlobInfo> {
    let response: Awaited<ReturnType<Transport['sendForHeaders']>>;
    try {
      response = await this.#sendForHeaders({
        method: 'PUT',
        target: appendQuery(session.location, 'digest', digest),
        headers: { 'content-type': 'application/octet-stream' },
        body: body ?? new Uint8Array(0),
        endpoint: 'upload',
        accept: [201, 204],
        // Without a body the commit can be repeated; a lost answer shows as an unknown session below.
        idempotent: body === undefined,
        scopes: [pushScope(session.repository)],
        codeFor: (status, diagnostics) =>
          diagnostics.some((d) => d.code === 'DIGEST_INVALID')
            ? 'DIGEST_INVALID'
            : status === 404
              ? 'BLOB_UPLOAD_UNKNOWN'
              : undefined,
        ...(signal ? { signal } : {}),
      });
    } catch (error) {
      if (body === undefined && isStowageError(error, 'BLOB_UPLOAD_UNKNOWN')) {
        const existing = await this.headBlob(session.repository, digest, signalOf({ signal }));
        if (existing !== undefined) {
          this.#forget(session);
          return existing;
        }
      }
      throw error;
    }
    this.#forget(session);
    checkEchoedDigest(response.headers, digest);
    return { digest, size };
  }

  /**
   * Sends one chunk with `Content-Range`. When the request fails on the way,
   * asks the registry how much it holds and sends the rest of the chunk (the
   * chunk is in memory, so this needs no help from the caller's stream).
   */
  async #patchChunk(
    session: Session,
    chunk: Uint8Array,
    start: number,
    signal: AbortSignal | undefined,
  ): Promise<void> {
    const policy = this.#options.retry;
    let sent = 0;
    for (let attempt = 0; ; attempt++) {
      const part = chunk.subarray(sent);
      try {
        const response = await this.#sendForHeaders({
          method: 'PATCH',
          target: session.location,
          headers: {
            'content-type': 'application/octet-stream',
            'content-range': `${start + sent}-${start + chunk.byteLength - 1}`,
          },
          body: part,
          endpoint: 'upload',
          accept: [202, 204],
          idempotent: false,
          scopes: [pushScope(session.repository)],
          ...(signal ? { signal } : {}),
        });
        this.#advance(session, response.headers, start + chunk.byteLength, chunk, start);
        return;
      } catch (error) {
        if (signal?.aborted || !isRetryable(error) || attempt >= policy.retries) throw error;
        await sleep(backoffDelay(attempt, policy), signal);
        const held = (await this.#refreshSession(session, signal)).offset ?? start;
        if (held < start || held > start + chunk.byteLength) {
          throw new RegistryProtocolError('the registry lost part of an upload', { held, start });
        }
        this.#options.logger.debug?.('resuming chunk upload', { offset: held });
        sent = held - start;
        if (sent === chunk.byteLength) {
          this.#hashAppend(session, chunk, start);
          return;
        }
      }
    }
  }

  // --- upload sessions ---

  #newSession(repository: string, headers: IncomingHttpHeaders): Session {
    const location = headerValue(headers, 'location');
    if (location === undefined) throw new RegistryProtocolError('upload session opened without a Location');
    const absolute = new URL(location, this.#origin.origin).toString();
    const chunkMin = Number(headerValue(headers, 'oci-chunk-min-length'));
    const session: Session = {
      key: sessionKey(absolute, this.#origin.origin),
      repository,
      location: absolute,
      startedAt: Date.now(),
      offset: 0,
      chunkMin: Number.isSafeInteger(chunkMin) && chunkMin > 0 ? chunkMin : undefined,
      hash: createHash('sha256'),
      hashed: 0,
    };
    this.#remember(session);
    return session;
  }

  #remember(session: Session): void {
    this.#sessions.delete(session.key);
    this.#sessions.set(session.key, session);
    while (this.#sessions.size > MAX_SESSIONS) {
      const oldest = this.#sessions.keys().next().value;
      if (oldest === undefined) break;
      this.#sessions.delete(oldest);
    }
  }

  #forget(session: Session): void {
    this.#sessions.delete(session.key);
  }

  /** The session an id names: the latest state this client has for it, or the id's own location. */
  #session(repository: string, id: string): Session {
    const decoded = decodeUploadId(id);
    const unknown = () =>
      new RegistryError('BLOB_UPLOAD_UNKNOWN', 'unknown upload session', { details: { repository } });
    if (decoded === undefined) throw unknown();
    const absolute = new URL(decoded.location, this.#origin.origin);
    if (
      absolute.origin === this.#origin.origin &&
      !absolute.pathname.startsWith(`/v2/${repository}/blobs/uploads/`)
    ) {
      throw unknown();
    }
    const key = sessionKey(absolute.toString(), this.#origin.origin);
    const known = this.#sessions.get(key);
    if (known !== undefined && known.repository === repository) return known;
    const session: Session = {
      key,
      repository,
      location: absolute.toString(),
      startedAt: decoded.startedAt,
      offset: undefined,
      chunkMin: undefined,
      hash: undefined,
      hashed: 0,
    };
    this.#remember(session);
    return session;
  }

  #status(session: Session): UploadStatus {
    return {
      id: encodeUploadId({
        location: relativeLocation(session.location, this.#origin.origin),
        startedAt: session.startedAt,
      }),
      repository: session.repository,
      offset: session.offset ?? 0,
      startedAt: session.startedAt,
    };
  }

  /** Takes the new `Location` and `Range` of an upload response. */
  #advance(
    session: Session,
    headers: IncomingHttpHeaders,
    expected: number,
    chunk?: Uint8Array,
    start?: number,
  ): void {
    const location = headerValue(headers, 'location');
    if (location !== undefined) session.location = new URL(location, session.location).toString();
    const reported = offsetFromRange(headerValue(headers, 'range'), expected);
    session.offset = reported ?? expected;
    if (chunk !== undefined && start !== undefined) this.#hashAppend(session, chunk, start);
    if (session.offset !== expected) session.hash = undefined;
  }

  #hashAppend(session: Session, chunk: Uint8Array, start: number): void {
    if (session.hash !== undefined && session.hashed === start) {
      session.hash.update(chunk);
      session.hashed += chunk.byteLength;
    } else {
      session.hash = undefined;
    }
  }

  async #openSession(repo: string, signal: AbortSignal | undefined): Promise<Session> {
    const response = await this.#sendForHeaders({
      method: 'POST',
      target: `/v2/${repo}/blobs/uploads/`,
      endpoint: 'upload',
      accept: [202],
      idempotent: true,
      scopes: [pushScope(repo)],
      codeFor: (status) => (status === 404 ? 'NAME_UNKNOWN' : undefined),
      ...(signal ? { signal } : {}),
    });
    return this.#newSession(repo, response.headers);
  }

  /** `GET` on the session: the registry's offset and the latest `Location`. */
  async #refreshSession(session: Session, signal: AbortSignal | undefined): Promise<Session> {
    const response = await this.#sendForHeaders({
      method: 'GET',
      target: session.location,
      endpoint: 'upload',
      accept: [200, 204],
      scopes: [pushScope(session.repository)],
      ...(signal ? { signal } : {}),
    });
    const location = headerValue(response.headers, 'location');
    if (location !== undefined) session.location = new URL(location, session.location).toString();
    const offset = offsetFromRange(headerValue(response.headers, 'range'), session.offset);
    if (offset !== undefined) {
      if (session.offset !== undefined && offset !== session.offset) session.hash = undefined;
      session.offset = offset;
    }
    return session;
  }

  async #cancelSession(session: Session, signal?: AbortSignal): Promise<void> {
    try {
      await this.#sendForHeaders({
        method: 'DELETE',
        target: session.location,
        endpoint: 'upload',
        accept: [200, 202, 204],
        scopes: [pushScope(session.repository)],
        ...(signal ? { signal } : {}),
      });
    } finally {
      this.#forget(session);
    }
  }

  async startUpload(repository: string, options: OperationOptions = {}): Promise<UploadStatus> {
    const repo = checkRepository(repository);
    return this.#status(await this.#openSession(repo, options.signal));
  }

  async getUpload(repository: string, id: string, options: OperationOptions = {}): Promise<UploadStatus> {
    const repo = checkRepository(repository);
    const session = this.#session(repo, id);
    return this.#status(await this.#refreshSession(session, options.signal));
  }

  /**
   * Appends a chunk. With `offset`, the session's offset is checked first (by
   * this client, since some registries ignore `Content-Range`) and a mismatch is
   * refused with `RANGE_INVALID` without sending anything.
   */
  async appendUpload(repository: string, id: string, options: AppendUploadOptions): Promise<UploadStatus> {
    const { body } = options;
    const repo = checkRepository(repository);
    const session = this.#session(repo, id);
    await this.#append(session, body, options.offset, options.length, options.signal);
    return this.#status(session);
  }

  async #append(
    session: Session,
    body: BlobBody,
    offset: number | undefined,
    length: number | undefined,
    signal: AbortSignal | undefined,
  ): Promise<void> {
    if (session.offset === undefined) await this.#refreshSession(session, signal);
    const current = session.offset ?? 0;
    if (offset !== undefined && offset !== current) {
      throw new RegistryError(
        'RANGE_INVALID',
        `the upload is at offset ${current}, the chunk starts at ${offset}`,
        {
          details: { offset: current, requested: offset },
        },
      );
    }
    if (body instanceof Uint8Array) {
      if (length !== undefined && length !== body.byteLength)
        throw new SizeMismatchError(length, body.byteLength);
      if (body.byteLength > 0) await this.#patchChunk(session, body, current, signal);
      return;
    }
    // A stream goes in chunks, each held in memory only while it is sent (so it can be resent from the
    // registry's offset). Reading one chunk ahead tells which chunk is the last, so a declared length
    // is checked before the chunk that would break it leaves.
    const chunks = rechunk(body, this.#options.chunkSize)[Symbol.asyncIterator]();
    let sent = 0;
    let next = await chunks.next();
    while (!next.done) {
      const chunk = next.value;
      next = await chunks.next();
      const total = sent + chunk.byteLength;
      if (length !== undefined && (total > length || (next.done && total !== length))) {
        await chunks.return(undefined);
        throw new SizeMismatchError(length, next.done ? total : Math.max(total, length + 1));
      }
      await this.#patchChunk(session, chunk, current + sent, signal);
      sent = total;
    }
    if (length !== undefined && sent !== length) throw new SizeMismatchError(length, sent);
  }

  async finishUpload(repository: string, id: string, options: FinishUploadOptions): Promise<BlobInfo> {
    const repo = checkRepository(repository);
    const digest = checkDigest(options.digest);
    const session = this.#session(repo, id);
    if (options.body !== undefined) {
      await this.#append(session, options.body, options.offset, options.length, options.signal);
    } else if (session.offset === undefined) {
      await this.#refreshSession(session, options.signal);
    }
    // Every byte went through this client in order: check the digest before committing anything.
    if (
      session.hash !== undefined &&
      session.hashed === session.offset &&
      digestAlgorithm(digest) === 'sha256'
    ) {
      const actual = `sha256:${session.hash.copy().digest('hex')}` as Digest;
      if (actual !== digest) throw new DigestMismatchError(digest, actual);
    }
    return await this.#commit(session, digest, session.offset ?? 0, undefined, options.signal);
  }

  async cancelUpload(repository: string, id: string, options: OperationOptions = {}): Promise<void> {
    const repo = checkRepository(repository);
    await this.#cancelSession(this.#session(repo, id), options.signal);
  }

  // --- lifecycle ---

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#sessions.clear();
    await this.#transport.close();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}

function signalOf(options: { readonly signal?: AbortSignal | undefined }): { signal?: AbortSignal } {
  return options.signal ? { signal: options.signal } : {};
}

function parseJsonSafe(bytes: Uint8Array): unknown {
  try {
    return JSON.parse(Buffer.from(bytes).toString('utf8'));
  } catch {
    return undefined;
  }
}

/** Checks manifest bytes against the digest asked for and the digest the registry claims. */
function verifyManifestBytes(
  bytes: Uint8Array,
  requested: Digest | undefined,
  header: string | undefined,
): Digest {
  let digest: Digest;
  if (requested !== undefined) {
    const actual = digestOf(bytes, digestAlgorithm(requested));
    if (actual !== requested) throw new DigestMismatchError(requested, actual);
    digest = requested;
  } else {
    digest = digestOf(bytes);
  }
  const claimed = optionalDigest(header);
  if (claimed !== undefined) {
    const actual = digestOf(bytes, digestAlgorithm(claimed));
    if (actual !== claimed) throw new DigestMismatchError(claimed, actual);
    if (requested === undefined) digest = claimed;
  }
  return digest;
}

/** The manifest's media type: the `Content-Type` when it names a manifest type, else what the body declares. */
function manifestMediaType(headers: IncomingHttpHeaders, bytes: Uint8Array): string {
  const declared = bareMediaType(headerValue(headers, 'content-type'));
  if (declared !== undefined && isManifestMediaType(declared)) return declared;
  const detected = detectManifestMediaType(parseJsonSafe(bytes));
  return detected ?? declared ?? 'application/octet-stream';
}

function checkEchoedDigest(headers: IncomingHttpHeaders, digest: Digest): void {
  const echoed = optionalDigest(headerValue(headers, 'docker-content-digest'));
  if (echoed !== undefined && digestAlgorithm(echoed) === digestAlgorithm(digest) && echoed !== digest) {
    throw new DigestMismatchError(digest, echoed);
  }
}
