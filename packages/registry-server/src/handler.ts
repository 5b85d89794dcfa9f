import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { pipeline } from 'node:stream/promises';
import {
  type BlobBody,
  type Digest,
  isDigest,
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
import { HttpError, toWireError } from './errors.js';
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
  readonly status: number;
  readonly durationMs: number;
  readonly bytesIn: number;
  readonly bytesOut: number;
  readonly repository?: string;
  readonly subject?: string;
}

export interface RegistryHandlerOptions {
  readonly registry: Registry;
  /** Who may do what. Default: anyone may do anything. */
  readonly authorizer?: Authorizer;
  readonly limits?: RegistryLimits;
  readonly logger?: Logger;
  /** Refuse every write with 405 `UNSUPPORTED`. */
  readonly readOnly?: boolean;
  /** Allow `DELETE` of manifests, tags and blobs (upload cancels are always allowed). Default true. */
  readonly allowDelete?: boolean;
  /** Called once per request after the response ends. */
  readonly onRequest?: (record: RequestRecord) => void;
  /** Called when an upload session starts (+1) or ends (−1) through this handler. */
  readonly onUpload?: (delta: 1 | -1) => void;
}

export type RegistryHandler = (request: IncomingMessage, response: ServerResponse) => Promise<void>;

const API_VERSION = 'registry/2.0';
const INDEX_MEDIA_TYPE = 'application/vnd.oci.image.index.v1+json';
const WRITE_METHODS = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);

interface Exchange {
  readonly request: IncomingMessage;
  readonly response: ServerResponse;
  readonly url: URL;
  readonly signal: AbortSignal;
  bytesIn: number;
  bytesOut: number;
  principal?: Principal;
}

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

/** `Range: bytes=<start>-[<end>]` of a blob GET. */
function rangeHeader(request: IncomingMessage): { start: number; end?: number } | undefined {
  const header = request.headers.range;
  if (header === undefined) return undefined;
  const match = /^bytes=(\d{1,15})-(\d{1,15})?$/.exec(header.trim());
  if (!match) throw new HttpError(416, 'BLOB_UPLOAD_INVALID', `unsupported Range ${header.slice(0, 100)}`);
  const start = Number(match[1]);
  const end = match[2] === undefined ? undefined : Number(match[2]);
  if (end !== undefined && end < start)
    throw new HttpError(416, 'BLOB_UPLOAD_INVALID', `invalid Range ${header}`);
  return end === undefined ? { start } : { start, end };
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
  const registry = options.registry;
  const authorizer = options.authorizer ?? anonymousAuthorizer;
  const maxManifestSize = options.limits?.maxManifestSize ?? MAX_MANIFEST_SIZE;
  const maxBlobSize = options.limits?.maxBlobSize;
  const idleMs = options.limits?.bodyIdleTimeoutMs ?? 60_000;

  /** The request body as chunks: counted, limited, abandoned when idle. */
  async function* body(exchange: Exchange, limit: number | undefined): AsyncGenerator<Uint8Array> {
    const request = exchange.request;
    let received = 0;
    let timer: NodeJS.Timeout | undefined;
    const arm = () => {
      clearTimeout(timer);
      timer = setTimeout(
        () => request.destroy(new HttpError(408, 'BLOB_UPLOAD_INVALID', 'request body timed out')),
        idleMs,
      );
      timer.unref();
    };
    arm();
    try {
      for await (const chunk of request as AsyncIterable<Uint8Array>) {
        arm();
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
      clearTimeout(timer);
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

  /** What the route needs from the authorizer. */
  function accessFor(route: Route, method: string, url: URL): Access[] {
    if (route.kind === 'ping') return [];
    if (route.kind === 'catalog') return [{ type: 'registry', name: 'catalog', actions: ['*'] }];
    const actions =
      method === 'GET' || method === 'HEAD' ? ['pull'] : method === 'DELETE' ? ['delete'] : ['pull', 'push'];
    const access: Access[] = [{ type: 'repository', name: route.name, actions }];
    const from = url.searchParams.get('from');
    if (route.kind === 'uploads' && method === 'POST' && from !== null && isValidRepositoryName(from)) {
      access.push({ type: 'repository', name: from, actions: ['pull'] });
    }
    return access;
  }

  async function manifests(exchange: Exchange, route: Extract<Route, { kind: 'manifest' }>): Promise<void> {
    const { request, signal } = exchange;
    const name = repositoryName(route.name);
    const reference = route.reference;
    const byDigest = reference.includes(':');
    if (byDigest) digestParam(reference, 'the reference');
    else if (!isValidTag(reference)) {
      throw new HttpError(400, 'TAG_INVALID', `invalid tag ${JSON.stringify(route.reference.slice(0, 300))}`);
    }
    const method = request.method;
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
      const result = await registry.putManifest(name, reference, bytes, { mediaType, signal });
      send(exchange, 201, {
        location: `/v2/${encodeName(name)}/manifests/${result.digest}`,
        'docker-content-digest': result.digest,
        ...(result.subject ? { 'oci-subject': result.subject } : {}),
      });
      return;
    }
    if (method === 'DELETE') {
      if (byDigest) await registry.deleteManifest(name, parseDigest(reference), { signal });
      else await registry.deleteTag(name, reference, { signal });
      send(exchange, 202, {});
      return;
    }
    throw methodNotAllowed('GET, HEAD, PUT, DELETE');
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
      const range = rangeHeader(request);
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
      const mounted = await registry.mountBlob(name, digest, { signal, ...(from !== null ? { from } : {}) });
      if (mounted) {
        discard(exchange);
        blobCreated(exchange, name, digest);
        return;
      }
      // not mountable: fall through to an ordinary upload session
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
    options.onUpload?.(1);
    send(exchange, 202, uploadHeaders(name, status.id, status.offset));
  }

  /** The bytes a chunk may still add under the blob size limit. */
  async function remaining(name: string, id: string, signal: AbortSignal): Promise<number | undefined> {
    if (maxBlobSize === undefined) return undefined;
    const status = await registry.getUpload(name, id, { signal });
    return maxBlobSize - status.offset;
  }

  async function uploads(exchange: Exchange, route: Extract<Route, { kind: 'upload' }>): Promise<void> {
    const { request, url, signal } = exchange;
    const name = repositoryName(route.name);
    const id = route.id;
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
      const status = await registry.appendUpload(name, id, body(exchange, left), {
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
      options.onUpload?.(-1);
      blobCreated(exchange, name, info.digest);
      return;
    }
    if (method === 'DELETE') {
      await registry.cancelUpload(name, id, { signal });
      options.onUpload?.(-1);
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
    const page = await registry.listRepositories({ ...options, signal: exchange.signal });
    json(
      exchange,
      200,
      { repositories: page.items },
      { link: linkHeader('/v2/_catalog', options.n, page.next) },
    );
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
    const { request, url } = exchange;
    const method = request.method ?? 'GET';
    if (!route) throw new HttpError(404, 'NOT_FOUND', 'no such route in the distribution API');
    const decision = await authorizer.authorize(request, accessFor(route, method, url));
    if (!decision.ok) {
      throw new HttpError(decision.status, decision.code, decision.message, {
        ...(decision.challenge ? { headers: { 'www-authenticate': decision.challenge } } : {}),
        detail: accessFor(route, method, url),
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

  return async (request, response) => {
    const started = performance.now();
    const incomingId = request.headers['x-request-id'];
    const id =
      typeof incomingId === 'string' && /^[\w.-]{1,128}$/.test(incomingId) ? incomingId : randomUUID();
    const controller = new AbortController();
    response.on('close', () => {
      if (!response.writableFinished) controller.abort(new HttpError(499, 'UNKNOWN', 'client went away'));
    });
    response.setHeader('docker-distribution-api-version', API_VERSION);
    response.setHeader('x-request-id', id);
    let url: URL;
    try {
      url = new URL(request.url ?? '/', 'http://registry.invalid');
    } catch {
      url = new URL('http://registry.invalid/');
    }
    const exchange: Exchange = { request, response, url, signal: controller.signal, bytesIn: 0, bytesOut: 0 };
    let route: Route | undefined;
    try {
      // The raw path, not the URL parser's: it would resolve `..` and `%2e%2e` segments away.
      route = parseRoute((request.url ?? '/').split('?')[0] ?? '/');
      await serve(exchange, route);
    } catch (error) {
      const wire = toWireError(error);
      if (wire.status >= 500) {
        options.logger?.error({ requestId: id, err: error }, 'request failed');
      }
      if (!response.headersSent) {
        for (const name of response.getHeaderNames()) {
          if (!['docker-distribution-api-version', 'x-request-id'].includes(name))
            response.removeHeader(name);
        }
        discard(exchange);
        if (wire.status === 413 || wire.status === 408) response.setHeader('connection', 'close');
        json(exchange, wire.status, wire.body, { ...wire.headers });
      } else {
        response.destroy();
      }
    } finally {
      const record: RequestRecord = {
        id,
        method: request.method ?? '',
        route: routeLabel(route),
        status: response.statusCode,
        durationMs: performance.now() - started,
        bytesIn: exchange.bytesIn,
        bytesOut: exchange.bytesOut,
        ...(route && 'name' in route ? { repository: route.name } : {}),
        ...(exchange.principal?.subject ? { subject: exchange.principal.subject } : {}),
      };
      options.onRequest?.(record);
      options.logger?.info(
        {
          requestId: record.id,
          method: record.method,
          path: url.pathname,
          route: record.route,
          status: record.status,
          durationMs: Math.round(record.durationMs * 10) / 10,
          bytesIn: record.bytesIn,
          bytesOut: record.bytesOut,
          ...(record.subject ? { user: record.subject } : {}),
        },
        'request',
      );
    }
  };
}
