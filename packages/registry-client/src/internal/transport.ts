import diagnosticsChannel from 'node:diagnostics_channel';
import type { IncomingHttpHeaders } from 'node:http';
import type { Readable } from 'node:stream';
import { isStowageError, type RegistryErrorCode, raceSignal } from '@stowage/oci';
import type { Dispatcher } from 'undici';
import { type Credentials, lookupCredentials } from '../credentials.js';
import {
  type RegistryDiagnostic,
  type RegistryEndpoint,
  RegistryNetworkError,
  RegistryProtocolError,
  type RegistryResponseError,
  type ResponseErrorInit,
  responseError,
} from '../errors.js';
import type { HostTlsOptions, ResolvedRegistryClientOptions } from '../options.js';
import { Authenticator, type TokenExchange, type TokenExchangeResult } from './auth.js';
import { hostnameOf, isLoopback } from './hosts.js';
import { HostLimiter } from './limiter.js';
import { redactUrl } from './redact.js';
import { parseRetryAfter, retryWith } from './retry.js';
import type { Scope } from './scope.js';
import { Pool } from './undici.js';
import { parseWwwAuthenticate } from './www-authenticate.js';

/** The `diagnostics_channel` every HTTP exchange is published on, as a `RequestEvent`. */
export const REQUEST_CHANNEL = 'stowage:registry-client:request';

/** One HTTP exchange: no headers, the URL redacted; `status` 0 when no response came. */
export interface RequestEvent {
  readonly method: string;
  readonly url: string;
  readonly host: string;
  readonly status: number;
  readonly durationMs: number;
  readonly error?: unknown;
}

const requestChannel = diagnosticsChannel.channel(REQUEST_CHANNEL);

/** The most of an error body read for diagnostics. */
export const ERROR_BODY_LIMIT = 64 * 1024;

export type HttpMethod = 'GET' | 'HEAD' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';

/** A request body that can be sent once only. */
export interface StreamBody {
  readonly stream: AsyncIterable<Uint8Array>;
  readonly length?: number;
}

export interface SendOptions {
  readonly method: HttpMethod;
  /** A path with query on the host (`/v2/…`), or an absolute URL (an upload `Location`). */
  readonly target: string;
  readonly headers?: Readonly<Record<string, string>>;
  readonly body?: Uint8Array | StreamBody;
  /** What the request needs from a bearer token. */
  readonly scopes?: readonly Scope[];
  readonly endpoint: RegistryEndpoint;
  /** Statuses that are answers; any other is raised as an error. */
  readonly accept: readonly number[];
  /** Whether the request may be repeated. Default: GET/HEAD/PUT/DELETE with a replayable body. */
  readonly idempotent?: boolean;
  /** Follow 30x redirects (blob downloads go to storage hosts); the `Authorization` is not sent to another origin. */
  readonly followRedirects?: boolean;
  /** Chooses the error code for a refused request, overriding the usual mapping. */
  readonly codeFor?: (
    status: number,
    diagnostics: readonly RegistryDiagnostic[],
  ) => RegistryErrorCode | undefined;
  /** The auth discovery request itself: sent without waiting for discovery, never re-authenticated. */
  readonly discovery?: boolean;
  readonly signal?: AbortSignal;
}

export interface StreamResponse {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  /** Consume or destroy it: the request's concurrency slot is held until it closes. */
  readonly body: Readable;
  /** The URL that answered (after redirects). */
  readonly url: string;
}

export interface BytesResponse {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  readonly bytes: Buffer;
  readonly url: string;
}

/** One origin (`scheme://host:port`): its dispatcher and its admission limits. */
interface Endpoint {
  readonly origin: string;
  readonly dispatcher: Dispatcher;
  readonly limiter: HostLimiter;
}

/** One registry host: its endpoint, its authenticator and its auth discovery. */
export class RegistryHost {
  readonly host: string;
  readonly origin: string;
  readonly auth: Authenticator;
  /** The `Docker-Distribution-Api-Version` the registry sent on `/v2/`. */
  apiVersion: string | undefined;
  /** The `Stowage-Capabilities` the registry sent on `/v2/` (a stowage-server), when it did. */
  capabilities: string | undefined;
  #ready: Promise<void> | undefined;
  readonly #discover: () => Promise<void>;

  constructor(
    host: string,
    origin: string,
    auth: Authenticator,
    discover: (host: RegistryHost) => Promise<void>,
  ) {
    this.host = host;
    this.origin = origin;
    this.auth = auth;
    this.#discover = () => discover(this);
  }

  /** Resolves once the auth scheme is known (one `GET /v2/` per client and host). */
  ready(signal?: AbortSignal): Promise<void> {
    this.#ready ??= this.#discover().catch((error: unknown) => {
      this.#ready = undefined;
      throw error;
    });
    return signal ? raceSignal(this.#ready, signal) : this.#ready;
  }
}

const transientStatuses: ReadonlySet<number> = new Set([408, 429, 502, 503, 504]);

/**
 * Failures a transport retry may fix: network errors and timeouts, 408, 429,
 * 502, 503, 504. Other 5xx are reported `retryable` (a later call may work)
 * but not repeated at once: distribution answers some invalid input with 500.
 */
function isTransient(error: unknown): boolean {
  if (isStowageError(error, 'NETWORK_ERROR') || isStowageError(error, 'TIMEOUT')) return true;
  const status = (error as { status?: unknown })?.status;
  if (typeof status === 'number')
    return transientStatuses.has(status) && (error as { retryable?: unknown }).retryable === true;
  return isStowageError(error) && error.retryable;
}

function errorInit(error: unknown): ResponseErrorInit {
  const e = error as RegistryResponseError;
  return { status: e.status, method: e.method, url: e.url, diagnostics: e.diagnostics, code: 'UNAUTHORIZED' };
}

const redirectStatuses: ReadonlySet<number> = new Set([301, 302, 303, 307, 308]);
const timeoutCodes: ReadonlySet<string> = new Set([
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_HEADERS_TIMEOUT',
  'UND_ERR_BODY_TIMEOUT',
  'ETIMEDOUT',
]);

export function headerValue(headers: IncomingHttpHeaders, name: string): string | undefined {
  const value = headers[name];
  return Array.isArray(value) ? value[0] : value;
}

/** Reads a whole body, refusing more than `limit` bytes. */
export async function readBody(body: Readable, limit: number, what: string): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of body as AsyncIterable<Buffer>) {
    size += chunk.byteLength;
    if (size > limit) {
      body.destroy();
      throw new RegistryProtocolError(`${what} is larger than ${limit} bytes`, { limit });
    }
    chunks.push(chunk);
  }
  return Buffer.concat(chunks, size);
}

/** Reads at most `limit` bytes of a body and discards the rest; never throws. */
async function readSome(body: Readable, limit: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  try {
    for await (const chunk of body as AsyncIterable<Buffer>) {
      chunks.push(chunk);
      size += chunk.byteLength;
      if (size >= limit) break;
    }
  } catch {
    // a truncated error body (distribution closes the socket on some 416s) still has a status
  } finally {
    body.destroy();
  }
  return Buffer.concat(chunks, size).subarray(0, limit);
}

/** Consumes a body we do not need so its connection can be reused. */
export async function discardBody(body: Readable): Promise<void> {
  await readSome(body, ERROR_BODY_LIMIT);
}

/** Parses the OCI error body; tolerant of anything. */
export function parseDiagnostics(bytes: Uint8Array): RegistryDiagnostic[] {
  if (bytes.byteLength === 0) return [];
  try {
    const value = JSON.parse(Buffer.from(bytes).toString('utf8')) as { errors?: unknown };
    if (!Array.isArray(value?.errors)) return [];
    return value.errors
      .filter(
        (e): e is Record<string, unknown> =>
          typeof e === 'object' && e !== null && typeof e.code === 'string',
      )
      .slice(0, 32)
      .map((e) => ({
        code: e.code as string,
        ...(typeof e.message === 'string' ? { message: e.message.slice(0, 1024) } : {}),
        ...(e.detail !== undefined ? { detail: e.detail } : {}),
      }));
  } catch {
    return [];
  }
}

/**
 * Everything HTTP: per-origin dispatchers and limits, per-host auth, retries,
 * redirects, error mapping and request events.
 */
export class Transport {
  readonly options: ResolvedRegistryClientOptions;
  readonly #endpoints = new Map<string, Endpoint>();
  readonly #hosts = new Map<string, RegistryHost>();
  readonly #owned: Dispatcher[] = [];
  #closed = false;

  constructor(options: ResolvedRegistryClientOptions) {
    this.options = options;
  }

  /** The origin a registry host is spoken to at. */
  originOf(host: string): string {
    return `${this.options.insecureHosts.has(host) ? 'http' : 'https'}://${host}`;
  }

  /** The context of a registry host (the registry or a mirror), created on first use. */
  host(host: string): RegistryHost {
    let context = this.#hosts.get(host);
    if (context === undefined) {
      const auth = new Authenticator({
        host,
        loadCredentials: () => this.#loadCredentials(host),
        exchange: (request) => this.#tokenExchange(request),
        allowHttp: (tokenHost) =>
          this.options.insecureHosts.has(tokenHost) || tokenHost === host || isLoopback(tokenHost),
        clientId: this.options.auth.clientId,
        oauth2Password: this.options.auth.oauth2Password,
        logger: this.options.logger,
      });
      context = new RegistryHost(host, this.originOf(host), auth, (h) => this.#discover(h));
      this.#hosts.set(host, context);
    }
    return context;
  }

  async #loadCredentials(host: string): Promise<Credentials | undefined> {
    const given = this.options.credentials;
    if (typeof given === 'function') {
      const found = await given(host);
      if (found !== undefined) return found;
    } else if (given !== undefined && host === this.options.registry) {
      return given;
    }
    if (!this.options.auth.useConfigFiles) return undefined;
    const { env, helperTimeoutMs, configPaths, homeDir } = this.options.auth;
    return await lookupCredentials(host, {
      env,
      helperTimeoutMs,
      logger: this.options.logger,
      ...(configPaths ? { configPaths } : {}),
      ...(homeDir ? { homeDir } : {}),
    });
  }

  /** `GET /v2/` without credentials, to learn the auth scheme. */
  async #discover(host: RegistryHost): Promise<void> {
    const response = await this.send(host, {
      method: 'GET',
      target: '/v2/',
      endpoint: 'ping',
      accept: [200, 401, 403, 404],
      idempotent: true,
      discovery: true,
    });
    await discardBody(response.body);
    host.apiVersion = headerValue(response.headers, 'docker-distribution-api-version');
    host.capabilities = headerValue(response.headers, 'stowage-capabilities');
    host.auth.setChallenges(
      response.status === 401 ? parseWwwAuthenticate(response.headers['www-authenticate']) : [],
    );
    this.options.logger.debug({ host: host.host, scheme: host.auth.scheme }, 'registry auth discovered');
  }

  #endpoint(url: URL): Endpoint {
    const origin = url.origin;
    let endpoint = this.#endpoints.get(origin);
    if (endpoint === undefined) {
      if (this.#closed) throw new RegistryProtocolError('the registry client is closed');
      let dispatcher = this.options.dispatcher;
      if (dispatcher === undefined) {
        const tls = this.#tlsFor(url.host, url.hostname);
        const { connectMs, headersMs, bodyIdleMs } = this.options.timeouts;
        const pool = new Pool(origin, {
          connections: this.options.maxConcurrentRequestsPerHost,
          keepAliveTimeout: 30_000,
          headersTimeout: headersMs,
          bodyTimeout: bodyIdleMs,
          connect: {
            timeout: connectMs,
            ...(tls?.ca !== undefined ? { ca: tls.ca as string | Buffer | (string | Buffer)[] } : {}),
            ...(tls?.cert !== undefined ? { cert: tls.cert } : {}),
            ...(tls?.key !== undefined ? { key: tls.key } : {}),
            ...(tls?.rejectUnauthorized !== undefined ? { rejectUnauthorized: tls.rejectUnauthorized } : {}),
          },
        });
        this.#owned.push(pool);
        dispatcher = pool;
      }
      endpoint = {
        origin,
        dispatcher,
        limiter: new HostLimiter(this.options.maxConcurrentRequestsPerHost, this.options.requestsPerSecond),
      };
      this.#endpoints.set(origin, endpoint);
    }
    return endpoint;
  }

  #tlsFor(host: string, hostname: string): HostTlsOptions | undefined {
    return this.options.tls[host.toLowerCase()] ?? this.options.tls[hostnameOf(hostname.toLowerCase())];
  }

  /**
   * Sends a registry request: auth discovery on first use, the bearer token or
   * basic credentials its scopes need, one re-authentication on 401, retries
   * for idempotent requests. Resolves with the response when its status is in
   * `accept` (the body still to be read); raises a typed error otherwise.
   */
  async send(host: RegistryHost, options: SendOptions): Promise<StreamResponse> {
    const replayable = options.body === undefined || options.body instanceof Uint8Array;
    const idempotent =
      options.idempotent ??
      (replayable &&
        (options.method === 'GET' ||
          options.method === 'HEAD' ||
          options.method === 'PUT' ||
          options.method === 'DELETE'));
    if (!options.discovery) await host.ready(options.signal);
    return await retryWith(
      async () => {
        for (let authRetried = false; ; authRetried = true) {
          const authorization = await host.auth.authorization(options.scopes ?? [], options.signal);
          const response = await this.#exchange(new URL(options.target, host.origin), options, authorization);
          if (options.accept.includes(response.status)) return response;
          if (response.status === 401 && !authRetried && !options.discovery) {
            const challenges = parseWwwAuthenticate(response.headers['www-authenticate']);
            const refused = await this.#failure(response, { ...options, codeFor: () => 'UNAUTHORIZED' });
            const renewed = await host.auth.unauthorized(
              challenges,
              options.scopes ?? [],
              authorization,
              options.signal,
            );
            if (renewed && replayable) continue;
            // A body that cannot be sent again: the caller may repeat the whole operation with the new credentials.
            if (renewed) throw responseError({ ...errorInit(refused), retryable: true });
            throw refused;
          }
          throw await this.#failure(response, options);
        }
      },
      {
        policy: this.options.retry,
        idempotent,
        shouldRetry: isTransient,
        ...(options.signal ? { signal: options.signal } : {}),
        onRetry: ({ attempt, delayMs, error }) =>
          this.options.logger.debug(
            {
              method: options.method,
              url: redactUrl(new URL(options.target, host.origin)),
              attempt,
              delayMs,
              reason: (error as { code?: unknown })?.code,
            },
            'retrying registry request',
          ),
      },
    );
  }

  /** `send`, reading the whole body (at most `limit` bytes) inside the retried attempt. */
  async sendForBytes(host: RegistryHost, options: SendOptions, limit: number): Promise<BytesResponse> {
    const idempotent = options.idempotent ?? (options.method === 'GET' || options.method === 'HEAD');
    return await retryWith(
      async () => {
        const response = await this.send(host, { ...options, idempotent: false });
        try {
          const bytes = await readBody(
            response.body,
            limit,
            `${options.method} ${redactUrl(response.url)} response`,
          );
          return { status: response.status, headers: response.headers, bytes, url: response.url };
        } catch (error) {
          throw this.#networkError(options.method, response.url, error, options.signal);
        }
      },
      {
        policy: this.options.retry,
        idempotent,
        shouldRetry: isTransient,
        ...(options.signal ? { signal: options.signal } : {}),
      },
    );
  }

  /** `send` for a request whose body does not matter: the body is discarded. */
  async sendForHeaders(
    host: RegistryHost,
    options: SendOptions,
  ): Promise<{ status: number; headers: IncomingHttpHeaders; url: string }> {
    const response = await this.send(host, options);
    await discardBody(response.body);
    return { status: response.status, headers: response.headers, url: response.url };
  }

  async #tokenExchange(request: TokenExchange): Promise<TokenExchangeResult> {
    return await retryWith(
      async () => {
        const response = await this.#exchange(
          request.url,
          {
            method: request.method,
            target: request.url.toString(),
            endpoint: 'token',
            accept: [],
            headers: request.headers,
            ...(request.body !== undefined ? { body: Buffer.from(request.body) } : {}),
            ...(request.signal ? { signal: request.signal } : {}),
          },
          request.headers.authorization,
        );
        if (response.status >= 500 || response.status === 429)
          throw await this.#failure(response, {
            method: request.method,
            target: request.url.toString(),
            endpoint: 'token',
            accept: [],
          });
        let bytes: Buffer;
        try {
          bytes = await readBody(response.body, 1024 * 1024, 'token response');
        } catch (error) {
          throw this.#networkError(request.method, response.url, error, request.signal);
        }
        return { status: response.status, headers: response.headers, bytes };
      },
      {
        policy: this.options.retry,
        idempotent: true,
        shouldRetry: isTransient,
        ...(request.signal ? { signal: request.signal } : {}),
      },
    );
  }

  /** One HTTP exchange, following redirects when asked. Network failures become `RegistryNetworkError`. */
  async #exchange(
    url: URL,
    options: SendOptions,
    authorization: string | undefined,
  ): Promise<StreamResponse> {
    const firstOrigin = url.origin;
    let method: HttpMethod = options.method;
    for (let hop = 0; ; hop++) {
      const endpoint = this.#endpoint(url);
      const headers: Record<string, string> = { 'user-agent': this.options.userAgent, ...options.headers };
      if (authorization !== undefined && url.origin === firstOrigin) headers.authorization = authorization;
      let body: Dispatcher.DispatchOptions['body'];
      if (options.body instanceof Uint8Array) {
        body = options.body;
        headers['content-length'] = String(options.body.byteLength);
      } else if (options.body !== undefined) {
        body = options.body.stream as Dispatcher.DispatchOptions['body'];
        if (options.body.length !== undefined) headers['content-length'] = String(options.body.length);
      }
      const release = await endpoint.limiter.acquire(options.signal);
      const started = performance.now();
      let response: Dispatcher.ResponseData;
      try {
        response = await endpoint.dispatcher.request({
          origin: endpoint.origin,
          path: url.pathname + url.search,
          method,
          headers,
          body: method === 'GET' || method === 'HEAD' ? null : (body ?? null),
          // undici closes the connection after every HEAD (for servers that send a body with
          // one); registries do not, and a copy HEADs every blob: keep it, as Go's client does
          ...(method === 'HEAD' ? { reset: false } : {}),
          ...(options.signal ? { signal: options.signal } : {}),
        });
      } catch (error) {
        release();
        this.#publish(method, url, 0, started, error);
        throw this.#networkError(method, url.toString(), error, options.signal);
      }
      const responseBody = response.body as unknown as Readable;
      if (responseBody.closed || responseBody.destroyed) release();
      else responseBody.once('close', release);
      this.#publish(method, url, response.statusCode, started);
      const location = headerValue(response.headers, 'location');
      if (options.followRedirects && redirectStatuses.has(response.statusCode) && location && hop < 10) {
        await discardBody(responseBody);
        url = new URL(location, url);
        if (response.statusCode === 303) method = method === 'HEAD' ? 'HEAD' : 'GET';
        continue;
      }
      return {
        status: response.statusCode,
        headers: response.headers,
        body: responseBody,
        url: url.toString(),
      };
    }
  }

  #publish(method: string, url: URL, status: number, started: number, error?: unknown): void {
    const durationMs = Math.round(performance.now() - started);
    if (requestChannel.hasSubscribers) {
      const event: RequestEvent = {
        method,
        url: redactUrl(url),
        host: url.host,
        status,
        durationMs,
        ...(error !== undefined ? { error } : {}),
      };
      requestChannel.publish(event);
    }
    this.options.logger.debug(
      {
        method,
        url: redactUrl(url),
        status,
        durationMs,
        ...(error ? { error: (error as { code?: unknown })?.code ?? String(error) } : {}),
      },
      'registry request',
    );
  }

  #networkError(method: string, url: string, error: unknown, signal: AbortSignal | undefined): unknown {
    if (signal?.aborted) return signal.reason;
    // Errors raised by our own request body (a digest mismatch while uploading) pass through unchanged.
    if (isStowageError(error)) return error;
    const code = (error as { code?: unknown })?.code;
    const name = (error as { name?: unknown })?.name;
    if (name === 'AbortError') return error;
    return new RegistryNetworkError({
      method,
      url,
      cause: error,
      timeout: typeof code === 'string' && timeoutCodes.has(code),
    });
  }

  async #failure(response: StreamResponse, options: SendOptions): Promise<unknown> {
    const bytes = await readSome(response.body, ERROR_BODY_LIMIT);
    const diagnostics = parseDiagnostics(bytes);
    const retryAfterMs =
      response.status === 429 || response.status === 503
        ? parseRetryAfter(response.headers['retry-after'], this.options.retry.clock.now())
        : undefined;
    const code = options.codeFor?.(response.status, diagnostics);
    return responseError({
      status: response.status,
      method: options.method,
      url: response.url,
      diagnostics,
      endpoint: options.endpoint,
      ...(code !== undefined ? { code } : {}),
      ...(retryAfterMs !== undefined ? { retryAfterMs } : {}),
    });
  }

  /** Closes the pools this transport opened. Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    const owned = this.#owned.splice(0);
    this.#endpoints.clear();
    await Promise.allSettled(owned.map((d) => d.close()));
  }
}
