import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { pipeline } from 'node:stream/promises';
import {
  type BlobBody,
  type Digest,
  hasUploadSessions,
  isDigest,
  isStowageError,
  isValidRepositoryName,
  isValidTag,
  MAX_MANIFEST_SIZE,
  parseDigest,
  parseManifest,
  type Registry,
  RegistryError,
} from '@stowage/oci';
import { anonymousAuthorizer } from './auth/anonymous.js';
import type { Access, Authorizer, Principal } from './auth/types.js';
import { HttpError, toWireError, type WireError } from './errors.js';
import { parseRoute, type Route, routeLabel } from './routes.js';

/** The subset of a pino logger the handler uses. */
export interface Logger {
  info(object: object, message?: string): void;
  warn(object: object, message?: string): void;
  error(object: object, message?: string): void;
}

export interface RegistryLimits {
  /** Largest manifest accepted, in bytes. Default 4 MiB. */
  readonly maxManifestSize?: number;
  /** Largest blob accepted, in bytes. Default: no limit. */
  readonly maxBlobSize?: number;
  /** A request body that sends nothing for this long is abandoned. Default 60 s. */
  readonly bodyIdleTimeoutMs?: number;
}

/** What the handler reports about each request when it ends (for metrics). */
export interface RequestRecord {
  readonly id: string;
  readonly method: string;
  readonly route: string;
  /** The status sent; 499 (nginx's "client closed request") when the request was `aborted`. */
  readonly status: number;
  /**
   * The client went away before the answer was complete (it closed the
   * connection mid-body or mid-download): its own outcome, neither a success
   * nor a server failure, and logged at info level, never as an error.
   */
  readonly aborted: boolean;
  readonly durationMs: number;
  readonly bytesIn: number;
  readonly bytesOut: number;
  readonly repository?: string;
  readonly subject?: string;
}

export interface RegistryHandlerOptions {
  readonly registry: Registry;
  /** Who may do what. Default: anyone may do anything. */
  readonly auth?: Authorizer;
  /** @deprecated The old name of `auth`, read only when `auth` is not given. */
  readonly authorizer?: Authorizer;
  readonly limits?: RegistryLimits;
  readonly logger?: Logger;
  /** Refuse every write with 405 `UNSUPPORTED`. */
  readonly readOnly?: boolean;
  /** Allow `DELETE` of manifests, tags and blobs (upload cancels are always allowed). Default true. */
  readonly allowDelete?: boolean;
  /** Called once per request after the response ends. */
  readonly onRequest?: (record: RequestRecord) => void;
  /**
   * Called with +1 when an upload session is started through this handler, and
   * with −1 once when that session ends: finished, refused in a way the store
   * ends it (a wrong digest, say), cancelled, or found gone (purged or expired;
   * see `sweepUploads`). Sessions started elsewhere are never reported.
   */
  readonly onUpload?: (delta: 1 | -1) => void;
}

export interface RegistryHandler {
  (request: IncomingMessage, response: ServerResponse): Promise<void>;
  /**
   * Asks the store about every session this handler started and still counts
   * as open, and reports those it no longer knows (purged, expired) as ended
   * through `onUpload`. Call it after purging uploads. Returns how many ended.
   */
  sweepUploads(): Promise<number>;
}

const API_VERSION = 'registry/2.0';
const INDEX_MEDIA_TYPE = 'application/vnd.oci.image.index.v1+json';
const WRITE_METHODS = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);
/** Headers an error answer keeps from before the failure (`connection: close` set while draining, say). */
const KEPT_ON_ERROR = new Set([
  'docker-distribution-api-version',
  'x-request-id',
  'connection',
  'www-authenticate',
]);

interface Exchange {
  readonly request: IncomingMessage;
  readonly response: ServerResponse;
  readonly url: URL;
  readonly signal: AbortSignal;
  bytesIn: number;
  bytesOut: number;
  principal?: Principal;
  /** Set when the request body went idle for too long: the answer is then a 408, whatever the store made of it. */
  bodyTimeout?: HttpError;
  /** Set when the client closed the connection before the answer was complete. */
  clientGone: boolean;
  /** Set when the handler itself cut the connection (a failure after the headers went out). */
  cutHere: boolean;
}

/** The status an aborted request is recorded with (nginx's "client closed request"). */
const ABORTED_STATUS = 499;
/** Repositories asked about per store page while building a filtered catalog page. */
const CATALOG_BATCH = 1000;

function repositoryName(input: string): string {
  const name = input.slice(0, 300);
  if (!isValidRepositoryName(input)) {
    throw new HttpError(400, 'NAME_INVALID', `invalid repository name ${JSON.stringify(name)}`, {
      detail: { name },
    });
  }
  return input;
}

function digestParam(input: string | null, what: string): Digest {
  const value: string | null = input;
  if (value === null || !isDigest(input)) {
    throw new HttpError(400, 'DIGEST_INVALID', `${what} is not a valid digest`, {
      detail: { digest: value?.slice(0, 300) ?? null },
    });
  }
  return parseDigest(value);
}

function contentLength(request: IncomingMessage): number | undefined {
  const header = request.headers['content-length'];
  if (header === undefined) return undefined;
  if (!/^\d{1,15}$/.test(header)) throw new HttpError(400, 'SIZE_INVALID', 'invalid Content-Length');
  return Number(header);
}

/** `Content-Range: <start>-<end>` of a PATCH (also accepts a `bytes ` or `bytes=` prefix). */
function contentRange(request: IncomingMessage): { start: number; length: number } | undefined {
  const header = request.headers['content-range'];
  if (header === undefined) return undefined;
  const match = /^(?:bytes[ =])?(\d{1,15})-(\d{1,15})(?:\/(?:\d+|\*))?$/.exec(header.trim());
  if (!match)
    throw new HttpError(416, 'BLOB_UPLOAD_INVALID', `invalid Content-Range ${header.slice(0, 100)}`);
  const start = Number(match[1]);
  const end = Number(match[2]);
  if (end < start) throw new HttpError(416, 'BLOB_UPLOAD_INVALID', `invalid Content-Range ${header}`);
  return { start, length: end - start + 1 };
}

/** What a blob GET's `Range` header asks for. */
type RangeRequest =
  | { readonly kind: 'from'; readonly start: number; readonly end?: number }
  | { readonly kind: 'suffix'; readonly length: number }
  | { readonly kind: 'invalid' };

/**
 * Reads `Range: bytes=<first>-[<last>]` or `bytes=-<suffix>`. Per RFC 9110 a
 * header in another unit, or one asking for several ranges, is ignored
 * (`undefined`: the whole blob is served); a malformed byte range is `invalid`.
 */
function rangeHeader(request: IncomingMessage): RangeRequest | undefined {
  const header = request.headers.range;
  if (header === undefined) return undefined;
  const equals = header.indexOf('=');
  if (equals < 0 || header.slice(0, equals).trim().toLowerCase() !== 'bytes') return undefined;
  const set = header.slice(equals + 1).trim();
  if (set.includes(',')) return undefined;
  const suffix = /^-(\d{1,15})$/.exec(set);
  if (suffix) return { kind: 'suffix', length: Number(suffix[1]) };
  const match = /^(\d{1,15})-(\d{1,15})?$/.exec(set);
  if (!match) return { kind: 'invalid' };
  const start = Number(match[1]);
  if (match[2] === undefined) return { kind: 'from', start };
  const end = Number(match[2]);
  return end < start ? { kind: 'invalid' } : { kind: 'from', start, end };
}

/**
 * The inclusive byte range to serve of a blob of `size` bytes, `undefined` for
 * the whole blob; a 416 whose `Content-Range` gives the size when it cannot be met.
 */
function satisfiable(range: RangeRequest, size: number): { start: number; end: number } | undefined {
  const refuse = (why: string) =>
    new HttpError(416, 'BLOB_UPLOAD_INVALID', `${why} for a blob of ${size} bytes`, {
      headers: { 'content-range': `bytes */${size}` },
      detail: { size },
    });
  if (range.kind === 'invalid') throw refuse('invalid Range');
  if (range.kind === 'suffix') {
    if (range.length === 0) throw refuse('an empty suffix Range');
    // an empty blob has no byte range to name: it is sent whole
    if (size === 0) return undefined;
    return { start: Math.max(0, size - range.length), end: size - 1 };
  }
  if (range.start >= size) throw refuse(`Range starting at ${range.start}`);
  return { start: range.start, end: Math.min(range.end ?? size - 1, size - 1) };
}

/** `n` and `last` of a listing. */
function paging(url: URL): { n?: number; last?: string } {
  const n = url.searchParams.get('n');
  const last = url.searchParams.get('last');
  const options: { n?: number; last?: string } = {};
  if (n !== null) {
    if (!/^\d{1,9}$/.test(n)) {
      throw new HttpError(400, 'PAGINATION_NUMBER_INVALID', 'n must be a non-negative integer', {
        detail: { n },
      });
    }
    options.n = Number(n);
  }
  if (last !== null) options.last = last;
  return options;
}

function linkHeader(path: string, n: number | undefined, next: string | undefined): string | undefined {
  if (next === undefined) return undefined;
  const query = new URLSearchParams();
  if (n !== undefined) query.set('n', String(n));
  query.set('last', next);
  return `<${path}?${query.toString()}>; rel="next"`;
}

function encodeName(name: string): string {
  return name
    .split('/')
    .map((part) => encodeURIComponent(part))
    .join('/');
}

/**
 * The OCI distribution API (v1.1) over any `Registry`. Returns a Node
 * `(request, response)` handler; every refusal is an OCI error body with the
 * matching status, and no error ever escapes as a crash.
 */
export function createRegistryHandler(options: RegistryHandlerOptions): RegistryHandler {
  if (!hasUploadSessions(options.registry)) {
    throw new TypeError('createRegistryHandler: the registry has no upload sessions');
  }
  const registry = options.registry;
  const authorizer = options.auth ?? options.authorizer ?? anonymousAuthorizer;
  /** No access control at all: only then may a mount without `from` look in every repository. */
  const openAccess = authorizer === anonymousAuthorizer;
  const maxManifestSize = options.limits?.maxManifestSize ?? MAX_MANIFEST_SIZE;
  const maxBlobSize = options.limits?.maxBlobSize;
  const idleMs = options.limits?.bodyIdleTimeoutMs ?? 60_000;

  /** Upload sessions started here and not yet seen to end, by repository and id. */
  const sessions = new Map<string, { readonly repository: string; readonly id: string }>();
  const sessionKey = (repository: string, id: string) => `${repository}\n${id}`;

  function sessionStarted(repository: string, id: string): void {
    sessions.set(sessionKey(repository, id), { repository, id });
    options.onUpload?.(1);
  }

  function sessionEnded(repository: string, id: string): void {
    if (sessions.delete(sessionKey(repository, id))) options.onUpload?.(-1);
  }

  /** Whether the store still has the session; anything but `BLOB_UPLOAD_UNKNOWN` counts as yes. */
  async function sessionAlive(repository: string, id: string): Promise<boolean> {
    try {
      await registry.getUpload(repository, id);
      return true;
    } catch (error) {
      return !isStowageError(error, 'BLOB_UPLOAD_UNKNOWN');
    }
  }

  /** After a failed request on a session: notices when the failure ended it. */
  async function afterSessionFailure(repository: string, id: string, error: unknown): Promise<void> {
    if (!sessions.has(sessionKey(repository, id))) return;
    if (isStowageError(error, 'BLOB_UPLOAD_UNKNOWN') || !(await sessionAlive(repository, id))) {
      sessionEnded(repository, id);
    }
  }

  async function sweepUploads(): Promise<number> {
    let ended = 0;
    for (const { repository, id } of [...sessions.values()]) {
      if (await sessionAlive(repository, id)) continue;
      if (sessions.has(sessionKey(repository, id))) ended++;
      sessionEnded(repository, id);
    }
    return ended;
  }

  /** The next chunk of a body, or a 408 when none comes within the idle timeout. */
  function nextChunk<T>(exchange: Exchange, step: Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        const error = new HttpError(408, 'BLOB_UPLOAD_INVALID', 'the request body stalled and was abandoned');
        exchange.bodyTimeout = error;
        reject(error);
      }, idleMs);
      timer.unref();
      step.then(
        (value) => {
          clearTimeout(timer);
          resolve(value);
        },
        (error: unknown) => {
          clearTimeout(timer);
          reject(error);
        },
      );
    });
  }

  /**
   * The request body as chunks: counted, limited, and given up on when idle. A
   * stall surfaces as a 408 `HttpError` thrown to whoever reads the body; the
   * socket is left alone so the answer can still be sent (then it is closed).
   */
  async function* body(exchange: Exchange, limit: number | undefined): AsyncGenerator<Uint8Array> {
    // Not destroyed on an early stop: a refusal must still be able to answer on this socket.
    const chunks = exchange.request.iterator({ destroyOnReturn: false });
    let received = 0;
    try {
      for (;;) {
        const step = await nextChunk(exchange, chunks.next());
        if (step.done) return;
        const chunk = step.value as Uint8Array;
        received += chunk.byteLength;
        exchange.bytesIn += chunk.byteLength;
        if (limit !== undefined && received > limit) {
          throw new HttpError(413, 'SIZE_INVALID', `request body exceeds ${limit} bytes`, {
            detail: { limit },
          });
        }
        yield chunk;
      }
    } finally {
      // After a stall a read is still pending, and `return` would wait for it: the
      // socket is destroyed once the 408 is sent, which ends that read.
      if (!exchange.bodyTimeout) await chunks.return?.();
    }
  }

  async function readAll(exchange: Exchange, limit: number): Promise<Uint8Array> {
    const length = contentLength(exchange.request);
    if (length !== undefined && length > limit) {
      throw new HttpError(413, 'SIZE_INVALID', `body of ${length} bytes exceeds the ${limit}-byte limit`, {
        detail: { size: length, limit },
      });
    }
    const chunks: Uint8Array[] = [];
    for await (const chunk of body(exchange, limit)) chunks.push(chunk);
    return Buffer.concat(chunks);
  }

  /** Drains what is left of a body we do not read, so the connection can be reused. */
  function discard(exchange: Exchange): void {
    if (!exchange.request.complete) exchange.request.resume();
  }

  function send(
    exchange: Exchange,
    status: number,
    headers: Record<string, string | number | undefined>,
    payload?: string | Uint8Array,
  ): void {
    const response = exchange.response;
    for (const [key, value] of Object.entries(headers))
      if (value !== undefined) response.setHeader(key, value);
    if (payload !== undefined) {
      const bytes = typeof payload === 'string' ? Buffer.from(payload) : payload;
      response.setHeader('content-length', bytes.byteLength);
      if (exchange.request.method === 'HEAD') {
        response.writeHead(status).end();
      } else {
        exchange.bytesOut += bytes.byteLength;
        response.writeHead(status).end(bytes);
      }
    } else {
      if (!response.hasHeader('content-length')) response.setHeader('content-length', 0);
      response.writeHead(status).end();
    }
  }

  function json(
    exchange: Exchange,
    status: number,
    value: unknown,
    headers: Record<string, string | undefined> = {},
  ) {
    send(exchange, status, { 'content-type': 'application/json', ...headers }, JSON.stringify(value));
  }

  function uploadHeaders(name: string, id: string, offset: number): Record<string, string> {
    return {
      location: `/v2/${encodeName(name)}/blobs/uploads/${encodeURIComponent(id)}`,
      range: `0-${Math.max(0, offset - 1)}`,
      'docker-upload-uuid': id,
    };
  }

  function blobCreated(exchange: Exchange, name: string, digest: Digest): void {
    send(exchange, 201, {
      location: `/v2/${encodeName(name)}/blobs/${digest}`,
      'docker-content-digest': digest,
    });
  }

  /**
   * What the route needs from the authorizer. Every upload route (start, status,
   * chunk, finish, cancel) needs pull and push, whatever the method: cancelling
   * your own upload is not a delete. Pull on a mount's `from` is asked for
   * separately, in `startUpload`, because lacking it only means no mount.
   */
  function accessFor(route: Route, method: string): Access[] {
    if (route.kind === 'ping') return [];
    if (route.kind === 'catalog') return [{ type: 'registry', name: 'catalog', actions: ['*'] }];
    const actions =
      route.kind === 'uploads' || route.kind === 'upload'
        ? ['pull', 'push']
        : method === 'GET' || method === 'HEAD'
          ? ['pull']
          : method === 'DELETE'
            ? ['delete']
            : ['pull', 'push'];
    return [{ type: 'repository', name: route.name, actions }];
  }

  /** Whether this request may pull from `from` (the source of a mount). */
  async function mayPull(request: IncomingMessage, from: string): Promise<boolean> {
    if (openAccess) return true;
    const decision = await authorizer.authorize(request, [
      { type: 'repository', name: from, actions: ['pull'] },
    ]);
    return decision.ok;
  }

  async function manifests(exchange: Exchange, route: Extract<Route, { kind: 'manifest' }>): Promise<void> {
    const { request, signal } = exchange;
    const name = repositoryName(route.name);
    const reference = route.reference;
    const method = request.method;
    if (method !== 'GET' && method !== 'HEAD' && method !== 'PUT' && method !== 'DELETE') {
      throw methodNotAllowed('GET, HEAD, PUT, DELETE');
    }
    const byDigest = reference.includes(':');
    if (byDigest ? !isDigest(reference) : !isValidTag(reference)) {
      const shown = JSON.stringify(reference.slice(0, 300));
      // A push names what it stores: a bad name is the client's mistake, said as such. A read
      // or delete of a reference that cannot exist finds nothing, as in distribution (whose
      // router matches only valid references) and as the distribution-spec conformance suite expects.
      if (method === 'PUT') {
        if (byDigest) digestParam(reference, 'the reference');
        throw new HttpError(400, 'TAG_INVALID', `invalid tag ${shown}`);
      }
      throw new HttpError(404, 'MANIFEST_UNKNOWN', `manifest ${shown} is not in ${name}`, {
        detail: { name, reference: reference.slice(0, 300) },
      });
    }
    if (method === 'GET' || method === 'HEAD') {
      const accept = (request.headers.accept ?? '')
        .split(',')
        .map((part) => part.split(';')[0]?.trim() ?? '')
        .filter(Boolean);
      if (method === 'HEAD') {
        const head = await registry.headManifest(name, reference, { accept, signal });
        if (!head) throw new RegistryError('MANIFEST_UNKNOWN', `manifest ${reference} is not in ${name}`);
        send(exchange, 200, {
          'content-type': head.mediaType,
          'content-length': head.size,
          'docker-content-digest': head.digest,
          etag: `"${head.digest}"`,
        });
        return;
      }
      const content = await registry.getManifest(name, reference, { accept, signal });
      if (request.headers['if-none-match'] === `"${content.digest}"`) {
        send(exchange, 304, { 'docker-content-digest': content.digest, etag: `"${content.digest}"` });
        return;
      }
      send(
        exchange,
        200,
        {
          'content-type': content.mediaType,
          'docker-content-digest': content.digest,
          etag: `"${content.digest}"`,
        },
        content.bytes,
      );
      return;
    }
    if (method === 'PUT') {
      const bytes = await readAll(exchange, maxManifestSize);
      let mediaType = request.headers['content-type']?.split(';')[0]?.trim();
      if (!mediaType || mediaType === 'application/octet-stream') {
        mediaType = parseManifest(bytes, { maxSize: maxManifestSize }).mediaType;
      }
      const result = await registry.putManifest(name, reference, { bytes, mediaType, signal });
      send(exchange, 201, {
        location: `/v2/${encodeName(name)}/manifests/${result.digest}`,
        'docker-content-digest': result.digest,
        ...(result.subject ? { 'oci-subject': result.subject } : {}),
      });
      return;
    }
    // DELETE
    if (byDigest) await registry.deleteManifest(name, parseDigest(reference), { signal });
    else await registry.deleteTag(name, reference, { signal });
    send(exchange, 202, {});
  }

  async function blobs(exchange: Exchange, route: Extract<Route, { kind: 'blob' }>): Promise<void> {
    const { request, response, signal } = exchange;
    const name = repositoryName(route.name);
    const digest = digestParam(route.digest, 'the blob digest');
    const method = request.method;
    if (method === 'HEAD') {
      const info = await registry.headBlob(name, digest, { signal });
      if (!info) throw new RegistryError('BLOB_UNKNOWN', `blob ${digest} is not in ${name}`);
      send(exchange, 200, {
        'content-type': 'application/octet-stream',
        'content-length': info.size,
        'docker-content-digest': digest,
        'accept-ranges': 'bytes',
        etag: `"${digest}"`,
      });
      return;
    }
    if (method === 'GET') {
      const requested = rangeHeader(request);
      let range: { start: number; end: number } | undefined;
      if (requested) {
        const info = await registry.headBlob(name, digest, { signal });
        if (!info) throw new RegistryError('BLOB_UNKNOWN', `blob ${digest} is not in ${name}`);
        range = satisfiable(requested, info.size);
      }
      const content = await registry.getBlob(name, digest, { signal, ...(range ? { range } : {}) });
      const headers: Record<string, string | number> = {
        'content-type': 'application/octet-stream',
        'docker-content-digest': digest,
        'accept-ranges': 'bytes',
        etag: `"${digest}"`,
      };
      let status = 200;
      let length = content.size;
      if (content.range) {
        status = 206;
        length = content.range.end - content.range.start + 1;
        headers['content-range'] = `bytes ${content.range.start}-${content.range.end}/${content.size}`;
      }
      headers['content-length'] = length;
      for (const [key, value] of Object.entries(headers)) response.setHeader(key, value);
      response.writeHead(status);
      content.stream.on('data', (chunk: Uint8Array) => {
        exchange.bytesOut += chunk.byteLength;
      });
      await pipeline(content.stream, response);
      return;
    }
    if (method === 'DELETE') {
      await registry.deleteBlob(name, digest, { signal });
      send(exchange, 202, {});
      return;
    }
    throw methodNotAllowed('GET, HEAD, DELETE');
  }

  async function startUpload(exchange: Exchange, route: Extract<Route, { kind: 'uploads' }>): Promise<void> {
    const { request, url, signal } = exchange;
    if (request.method !== 'POST') throw methodNotAllowed('POST');
    const name = repositoryName(route.name);
    const mount = url.searchParams.get('mount');
    if (mount !== null) {
      const digest = digestParam(mount, 'mount');
      const from = url.searchParams.get('from');
      if (from !== null) repositoryName(from);
      // Without `from` the store may take the blob from any repository, so that is only
      // done when nobody's access is checked; and `from` must be one the caller may pull.
      const allowed = from === null ? openAccess : await mayPull(request, from);
      const mounted = allowed
        ? await registry.mountBlob(name, digest, { signal, ...(from !== null ? { from } : {}) })
        : undefined;
      if (mounted) {
        discard(exchange);
        blobCreated(exchange, name, digest);
        return;
      }
      // not mountable (or not for this caller): an ordinary upload session instead, as distribution does
    }
    const digestValue = url.searchParams.get('digest');
    if (digestValue !== null && mount === null) {
      const digest = digestParam(digestValue, 'digest');
      const size = contentLength(request);
      if (maxBlobSize !== undefined && size !== undefined && size > maxBlobSize) {
        throw new HttpError(
          413,
          'SIZE_INVALID',
          `blob of ${size} bytes exceeds the ${maxBlobSize}-byte limit`,
        );
      }
      await registry.putBlob(name, body(exchange, maxBlobSize), {
        digest,
        signal,
        ...(size !== undefined ? { size } : {}),
      });
      blobCreated(exchange, name, digest);
      return;
    }
    discard(exchange);
    const status = await registry.startUpload(name, { signal });
    sessionStarted(name, status.id);
    send(exchange, 202, uploadHeaders(name, status.id, status.offset));
  }

  /** The bytes a chunk may still add under the blob size limit. */
  async function remaining(name: string, id: string, signal: AbortSignal): Promise<number | undefined> {
    if (maxBlobSize === undefined) return undefined;
    const status = await registry.getUpload(name, id, { signal });
    return maxBlobSize - status.offset;
  }

  async function uploads(exchange: Exchange, route: Extract<Route, { kind: 'upload' }>): Promise<void> {
    const name = repositoryName(route.name);
    try {
      await upload(exchange, name, route.id);
    } catch (error) {
      await afterSessionFailure(name, route.id, error);
      throw error;
    }
  }

  async function upload(exchange: Exchange, name: string, id: string): Promise<void> {
    const { request, url, signal } = exchange;
    const method = request.method;
    if (method === 'GET') {
      const status = await registry.getUpload(name, id, { signal });
      send(exchange, 204, uploadHeaders(name, id, status.offset));
      return;
    }
    if (method === 'PATCH') {
      const range = contentRange(request);
      const length = range?.length ?? contentLength(request);
      const left = await remaining(name, id, signal);
      if (left !== undefined && length !== undefined && length > left) {
        throw new HttpError(413, 'SIZE_INVALID', `the blob would exceed ${maxBlobSize} bytes`);
      }
      const status = await registry.appendUpload(name, id, {
        body: body(exchange, left),
        signal,
        ...(range ? { offset: range.start } : {}),
        ...(length !== undefined ? { length } : {}),
      });
      send(exchange, 202, uploadHeaders(name, id, status.offset));
      return;
    }
    if (method === 'PUT') {
      const digest = digestParam(url.searchParams.get('digest'), 'digest');
      const range = contentRange(request);
      const length = range?.length ?? contentLength(request);
      const hasBody = (length ?? 0) > 0 || request.headers['transfer-encoding'] !== undefined;
      const left = hasBody ? await remaining(name, id, signal) : undefined;
      const info = await registry.finishUpload(name, id, {
        digest,
        signal,
        ...(hasBody ? { body: body(exchange, left) as BlobBody } : {}),
        ...(hasBody && range ? { offset: range.start } : {}),
        ...(hasBody && length !== undefined ? { length } : {}),
      });
      if (!hasBody) discard(exchange);
      sessionEnded(name, id);
      blobCreated(exchange, name, info.digest);
      return;
    }
    if (method === 'DELETE') {
      await registry.cancelUpload(name, id, { signal });
      sessionEnded(name, id);
      send(exchange, 204, {});
      return;
    }
    throw methodNotAllowed('GET, PATCH, PUT, DELETE');
  }

  async function tags(exchange: Exchange, route: Extract<Route, { kind: 'tags' }>): Promise<void> {
    if (exchange.request.method !== 'GET' && exchange.request.method !== 'HEAD')
      throw methodNotAllowed('GET');
    const name = repositoryName(route.name);
    const options = paging(exchange.url);
    const page = await registry.listTags(name, { ...options, signal: exchange.signal });
    json(
      exchange,
      200,
      { name, tags: page.items },
      { link: linkHeader(`/v2/${encodeName(name)}/tags/list`, options.n, page.next) },
    );
  }

  async function catalog(exchange: Exchange): Promise<void> {
    if (exchange.request.method !== 'GET' && exchange.request.method !== 'HEAD')
      throw methodNotAllowed('GET');
    const options = paging(exchange.url);
    const page = openAccess
      ? await registry.listRepositories({ ...options, signal: exchange.signal })
      : await pullableRepositories(exchange, options);
    json(
      exchange,
      200,
      { repositories: page.items },
      { link: linkHeader('/v2/_catalog', options.n, page.next) },
    );
  }

  /** Which of `names` the request may pull, in their order: the authorizer's `pullable`, else `authorize` per name. */
  async function pullableOf(request: IncomingMessage, names: readonly string[]): Promise<Set<string>> {
    if (names.length === 0) return new Set();
    if (authorizer.pullable) return new Set(await authorizer.pullable(request, names));
    const decisions = await Promise.all(
      names.map((name) => authorizer.authorize(request, [{ type: 'repository', name, actions: ['pull'] }])),
    );
    // An authorizer that cannot decide now (429) fails the page: leaving those repositories
    // out would be a wrong answer, not a slow one.
    const busy = decisions.find((decision) => !decision.ok && decision.status === 429);
    if (busy && !busy.ok) {
      throw new HttpError(busy.status, busy.code, busy.message, { headers: { ...busy.headers } });
    }
    return new Set(names.filter((_, i) => decisions[i]?.ok === true));
  }

  /**
   * A catalog page of only the repositories the caller may pull: `n` and `last`
   * apply to that filtered list, and `next` is set only when another entry the
   * caller may pull follows the page.
   */
  async function pullableRepositories(
    exchange: Exchange,
    options: { n?: number; last?: string },
  ): Promise<{ items: string[]; next?: string }> {
    const { n } = options;
    if (n === 0) return { items: [] };
    const batch = n === undefined ? CATALOG_BATCH : Math.min(Math.max(n + 1, 100), CATALOG_BATCH);
    const items: string[] = [];
    let cursor = options.last;
    for (;;) {
      const page = await registry.listRepositories({
        n: batch,
        ...(cursor !== undefined ? { last: cursor } : {}),
        signal: exchange.signal,
      });
      const allowed = await pullableOf(exchange.request, page.items);
      for (const name of page.items) {
        if (!allowed.has(name)) continue;
        if (n !== undefined && items.length === n) return { items, next: items[items.length - 1] as string };
        items.push(name);
      }
      if (page.next === undefined || page.items.length === 0) return { items };
      cursor = page.next;
    }
  }

  async function referrers(exchange: Exchange, route: Extract<Route, { kind: 'referrers' }>): Promise<void> {
    if (exchange.request.method !== 'GET' && exchange.request.method !== 'HEAD')
      throw methodNotAllowed('GET');
    const name = repositoryName(route.name);
    const digest = digestParam(route.digest, 'the subject digest');
    const artifactType = exchange.url.searchParams.get('artifactType');
    const result = await registry.listReferrers(name, digest, {
      signal: exchange.signal,
      ...(artifactType !== null ? { artifactType } : {}),
    });
    const filters = result.filtersApplied.join(',');
    send(
      exchange,
      200,
      { 'content-type': INDEX_MEDIA_TYPE, ...(filters ? { 'oci-filters-applied': filters } : {}) },
      JSON.stringify({ schemaVersion: 2, mediaType: INDEX_MEDIA_TYPE, manifests: result.manifests }),
    );
  }

  function methodNotAllowed(allow: string): HttpError {
    return new HttpError(405, 'UNSUPPORTED', 'method not allowed on this route', { headers: { allow } });
  }

  async function serve(exchange: Exchange, route: Route | undefined): Promise<void> {
    const { request } = exchange;
    const method = request.method ?? 'GET';
    if (!route) {
      // 404 either way, as distribution: a path under /v2/ that names no endpoint of a
      // repository, or a path outside the API altogether
      if ((request.url ?? '/').startsWith('/v2/')) {
        throw new HttpError(404, 'NAME_UNKNOWN', 'no repository endpoint at this path');
      }
      throw new HttpError(404, 'UNSUPPORTED', 'not a distribution API path');
    }
    // Only a valid name goes on to the authorizer (and into a challenge's scope): an
    // invalid one is refused here, whoever asks.
    if ('name' in route) repositoryName(route.name);
    const access = accessFor(route, method);
    const decision = await authorizer.authorize(request, access);
    if (!decision.ok) {
      throw new HttpError(decision.status, decision.code, decision.message, {
        headers: {
          ...decision.headers,
          ...(decision.challenge ? { 'www-authenticate': decision.challenge } : {}),
        },
        detail: access,
      });
    }
    exchange.principal = decision.principal;
    if (options.readOnly && WRITE_METHODS.has(method)) {
      throw new HttpError(405, 'UNSUPPORTED', 'the registry is in read-only mode');
    }
    if (options.allowDelete === false && method === 'DELETE' && route.kind !== 'upload') {
      throw new HttpError(405, 'UNSUPPORTED', 'deletes are disabled on this registry');
    }
    switch (route.kind) {
      case 'ping':
        if (method !== 'GET' && method !== 'HEAD') throw methodNotAllowed('GET');
        json(exchange, 200, {});
        return;
      case 'catalog':
        return catalog(exchange);
      case 'tags':
        return tags(exchange, route);
      case 'manifest':
        return manifests(exchange, route);
      case 'blob':
        return blobs(exchange, route);
      case 'uploads':
        return startUpload(exchange, route);
      case 'upload':
        return uploads(exchange, route);
      case 'referrers':
        return referrers(exchange, route);
    }
  }

  /** Logs without ever throwing: a logger that fails must not turn into a failed request. */
  function log(level: 'info' | 'error', object: object, message: string): void {
    try {
      options.logger?.[level](object, message);
    } catch {
      // nothing left to tell it with
    }
  }

  /** Resolves once the response has gone out in full, or its connection closed. */
  function settled(response: ServerResponse): Promise<void> {
    if (response.writableFinished || response.destroyed) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const done = () => {
        response.off('finish', done);
        response.off('close', done);
        resolve();
      };
      response.on('finish', done);
      response.on('close', done);
    });
  }

  /** Whether the client went away before the answer was complete. */
  function clientWentAway(exchange: Exchange): boolean {
    const { request, response } = exchange;
    if (exchange.clientGone) return true;
    if (exchange.cutHere || response.writableFinished) return false;
    return response.destroyed || request.socket?.destroyed === true;
  }

  /**
   * Answers a failure with its OCI error. Never throws: when that answer cannot
   * be sent (a header value Node refuses, from wherever it came), a bare 500
   * `UNKNOWN` without the offending headers goes out instead, or the connection
   * is cut once the headers are already gone.
   */
  function answerFailure(exchange: Exchange, failure: unknown, id: string): void {
    const { request, response } = exchange;
    let wire: WireError;
    try {
      wire = toWireError(failure);
    } catch {
      wire = { status: 500, body: { errors: [{ code: 'UNKNOWN', message: 'internal error' }] } };
    }
    if (wire.status >= 500) log('error', { requestId: id, err: failure }, 'request failed');
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
      log(
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
      const body = Buffer.from(JSON.stringify({ errors: [{ code: 'UNKNOWN', message: 'internal error' }] }));
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

  async function handle(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const started = performance.now();
    const incomingId = request.headers['x-request-id'];
    const id =
      typeof incomingId === 'string' && /^[\w.-]{1,128}$/.test(incomingId) ? incomingId : randomUUID();
    const controller = new AbortController();
    let url: URL;
    try {
      url = new URL(request.url ?? '/', 'http://registry.invalid');
    } catch {
      url = new URL('http://registry.invalid/');
    }
    const exchange: Exchange = {
      request,
      response,
      url,
      signal: controller.signal,
      bytesIn: 0,
      bytesOut: 0,
      clientGone: false,
      cutHere: false,
    };
    const socket = request.socket;
    response.on('close', () => {
      if (response.writableFinished) return;
      if (!exchange.cutHere) exchange.clientGone = true;
      controller.abort(new HttpError(ABORTED_STATUS, 'UNKNOWN', 'client went away'));
    });
    // Node finishes a response whose connection broke mid-write too (the write fails, the
    // response still ends): a connection already gone by then means the client did not get it all.
    response.on('finish', () => {
      if (!exchange.cutHere && (socket?.destroyed || socket?.errored)) exchange.clientGone = true;
    });
    response.setHeader('docker-distribution-api-version', API_VERSION);
    response.setHeader('x-request-id', id);
    let route: Route | undefined;
    let aborted = false;
    try {
      // The raw path, not the URL parser's: it would resolve `..` and `%2e%2e` segments away.
      route = parseRoute((request.url ?? '/').split('?')[0] ?? '/');
      await serve(exchange, route);
    } catch (error) {
      aborted = clientWentAway(exchange);
      if (aborted) {
        // Nobody to answer, and nothing went wrong here: the request is recorded as aborted.
        discard(exchange);
      } else {
        // A stalled body is a 408 even when the store reported it in its own words.
        answerFailure(exchange, exchange.bodyTimeout ?? error, id);
      }
    } finally {
      // The answer may still be on its way (a large blob): the outcome is known once it is out, or cut.
      await settled(response);
      aborted ||= exchange.clientGone;
      const record: RequestRecord = {
        id,
        method: request.method ?? '',
        route: routeLabel(route),
        status: aborted ? ABORTED_STATUS : response.statusCode,
        aborted,
        durationMs: performance.now() - started,
        bytesIn: exchange.bytesIn,
        bytesOut: exchange.bytesOut,
        ...(route && 'name' in route ? { repository: route.name } : {}),
        ...(exchange.principal?.subject ? { subject: exchange.principal.subject } : {}),
      };
      try {
        options.onRequest?.(record);
      } catch (error) {
        log('error', { requestId: id, err: error }, 'onRequest failed');
      }
      log(
        'info',
        {
          requestId: record.id,
          method: record.method,
          path: url.pathname,
          route: record.route,
          status: record.status,
          ...(aborted ? { aborted: true } : {}),
          durationMs: Math.round(record.durationMs * 10) / 10,
          bytesIn: record.bytesIn,
          bytesOut: record.bytesOut,
          ...(record.subject ? { user: record.subject } : {}),
        },
        aborted ? 'request aborted by the client' : 'request',
      );
    }
  }

  /** The handler's promise never rejects, and nothing it does can end the process. */
  const handler = async (request: IncomingMessage, response: ServerResponse): Promise<void> => {
    try {
      await handle(request, response);
    } catch (error) {
      log('error', { err: error }, 'request handler failed');
      try {
        if (!response.writableEnded) response.destroy();
      } catch {
        // already gone
      }
    }
  };
  return Object.assign(handler, { sweepUploads });
}
