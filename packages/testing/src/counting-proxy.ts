/**
 * A counting HTTP proxy for tests: it stands in front of a registry (a real
 * docker-registry, one of our servers), forwards every request as it is
 * (bodies streamed both ways, headers kept, the target's `Location` and token
 * realm rewritten to the proxy, so a client never leaves it), and records what
 * went by: method, path and status. Tests count requests with it ("a no-change
 * sync sends no blob GET") and arm faults the target would never produce
 * (`failNext`: a 503, a 429 with `Retry-After`).
 */
import {
  Agent,
  createServer,
  type IncomingHttpHeaders,
  type IncomingMessage,
  type OutgoingHttpHeaders,
  request,
  type ServerResponse,
} from 'node:http';
import type { AddressInfo } from 'node:net';

export interface StartCountingProxyOptions {
  /** The origin requests go to: `http://127.0.0.1:<port>`. */
  readonly target: string;
}

/** One request the proxy answered. */
export interface ProxiedRequest {
  readonly method: string;
  /** The path without the query: `/v2/library/alpine/manifests/latest`. */
  readonly path: string;
  /** The query string without `?`, `''` when there is none. */
  readonly query: string;
  readonly status: number;
  /** True when `failNext` answered it (the target never saw it). */
  readonly injected: boolean;
}

/** Which requests: every field given must match (`path` exactly, or a RegExp over it); or a predicate. */
export type ProxiedRequestFilter =
  | {
      readonly method?: string;
      readonly path?: string | RegExp;
      readonly status?: number;
      readonly injected?: boolean;
    }
  | ((request: ProxiedRequest) => boolean);

/** Which incoming requests a fault takes: method and path (and query) only, the status is not known yet. */
export type FaultMatch =
  | { readonly method?: string; readonly path?: string | RegExp }
  | ((request: { readonly method: string; readonly path: string; readonly query: string }) => boolean);

export interface FailNextOptions {
  /** The status to answer with (503, 429, 500, …). */
  readonly status: number;
  /** How many matching requests to fail. Default 1. */
  readonly times?: number;
  /** Which requests; default any. */
  readonly match?: FaultMatch;
  /** `Retry-After` to send: seconds, or an HTTP date string. */
  readonly retryAfter?: number | string;
}

export interface CountingProxy {
  /** `http://127.0.0.1:<port>` */
  readonly url: string;
  /** `127.0.0.1:<port>`, the registry part of image references. */
  readonly host: string;
  readonly port: number;
  /** Every answered request so far, in the order their responses started. */
  requests(): readonly ProxiedRequest[];
  /** How many answered requests match (all when no filter). */
  count(filter?: ProxiedRequestFilter): number;
  /** Forgets the recorded requests and every armed fault not used yet. */
  reset(): void;
  /** Answers the next `times` matching requests with `status` instead of forwarding them. Faults are used in the order armed. */
  failNext(options: FailNextOptions): void;
  close(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

interface Armed {
  readonly status: number;
  readonly match: FaultMatch | undefined;
  readonly retryAfter: number | string | undefined;
  left: number;
}

function pathMatches(want: string | RegExp | undefined, path: string): boolean {
  if (want === undefined) return true;
  return typeof want === 'string' ? want === path : want.test(path);
}

function filterMatches(filter: ProxiedRequestFilter | undefined, r: ProxiedRequest): boolean {
  if (filter === undefined) return true;
  if (typeof filter === 'function') return filter(r);
  return (
    (filter.method === undefined || filter.method.toUpperCase() === r.method) &&
    pathMatches(filter.path, r.path) &&
    (filter.status === undefined || filter.status === r.status) &&
    (filter.injected === undefined || filter.injected === r.injected)
  );
}

function faultMatches(
  match: FaultMatch | undefined,
  r: { method: string; path: string; query: string },
): boolean {
  if (match === undefined) return true;
  if (typeof match === 'function') return match(r);
  return (
    (match.method === undefined || match.method.toUpperCase() === r.method) && pathMatches(match.path, r.path)
  );
}

/** The OCI error code a registry would send with a status. */
function errorCode(status: number): string {
  if (status === 429) return 'TOOMANYREQUESTS';
  if (status === 503) return 'UNAVAILABLE';
  if (status === 401) return 'UNAUTHORIZED';
  if (status === 403) return 'DENIED';
  if (status === 404) return 'NAME_UNKNOWN';
  return 'UNKNOWN';
}

// Hop-by-hop headers (RFC 9110 7.6.1) belong to one connection, not to the message.
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'upgrade']);

function forwardable(headers: IncomingHttpHeaders): OutgoingHttpHeaders {
  const out: OutgoingHttpHeaders = {};
  for (const [name, value] of Object.entries(headers)) {
    if (value !== undefined && !HOP_BY_HOP.has(name)) out[name] = value;
  }
  return out;
}

/** Starts a counting proxy to `target` on 127.0.0.1 (a free port). */
export async function startCountingProxy(options: StartCountingProxyOptions): Promise<CountingProxy> {
  let target: URL;
  try {
    target = new URL(options.target);
  } catch {
    throw new Error(`startCountingProxy: target is not a URL: ${options.target}`);
  }
  if (target.protocol !== 'http:')
    throw new Error(`startCountingProxy: target must be http://, got ${options.target}`);
  const targetPort = Number(target.port || 80);
  const targetOrigin = target.origin;
  const agent = new Agent({ keepAlive: true });
  let recorded: ProxiedRequest[] = [];
  let armed: Armed[] = [];
  let origin = '';

  const rewrite = (value: string) =>
    value.startsWith(targetOrigin) ? origin + value.slice(targetOrigin.length) : value;

  function answer(req: IncomingMessage, res: ServerResponse): void {
    const method = (req.method ?? 'GET').toUpperCase();
    const raw = req.url ?? '/';
    const q = raw.indexOf('?');
    const path = q < 0 ? raw : raw.slice(0, q);
    const query = q < 0 ? '' : raw.slice(q + 1);
    const record = (status: number, injected: boolean) =>
      recorded.push({ method, path, query, status, injected });

    const fault = armed.find((a) => a.left > 0 && faultMatches(a.match, { method, path, query }));
    if (fault) {
      fault.left--;
      armed = armed.filter((a) => a.left > 0);
      req.resume();
      const body = JSON.stringify({
        errors: [{ code: errorCode(fault.status), message: 'injected by the counting proxy', detail: null }],
      });
      const headers: OutgoingHttpHeaders = {
        'content-type': 'application/json; charset=utf-8',
        'content-length': Buffer.byteLength(body),
      };
      if (fault.retryAfter !== undefined) headers['retry-after'] = String(fault.retryAfter);
      record(fault.status, true);
      res.writeHead(fault.status, headers);
      res.end(method === 'HEAD' ? undefined : body);
      return;
    }

    const headers = forwardable(req.headers);
    headers.host = target.host;
    const upstream = request(
      { host: target.hostname, port: targetPort, method, path: raw, headers, agent },
      (upstreamRes) => {
        const status = upstreamRes.statusCode ?? 502;
        const out = forwardable(upstreamRes.headers);
        if (typeof out.location === 'string') out.location = rewrite(out.location);
        const challenge = out['www-authenticate'];
        if (typeof challenge === 'string')
          out['www-authenticate'] = challenge.split(targetOrigin).join(origin);
        record(status, false);
        res.writeHead(status, out);
        upstreamRes.pipe(res);
        upstreamRes.once('error', () => res.destroy());
      },
    );
    upstream.once('error', () => {
      if (res.headersSent) {
        res.destroy();
        return;
      }
      record(502, false);
      res.writeHead(502, { 'content-type': 'text/plain' });
      res.end('counting proxy: the target did not answer');
    });
    // a client that goes away takes its upstream exchange with it
    res.once('close', () => {
      if (!res.writableFinished) upstream.destroy();
    });
    req.pipe(upstream);
  }

  const server = createServer(answer);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  origin = `http://127.0.0.1:${port}`;

  let closing: Promise<void> | undefined;
  const close = () => {
    closing ??= new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
      agent.destroy();
    });
    return closing;
  };

  return {
    url: origin,
    host: `127.0.0.1:${port}`,
    port,
    requests: () => [...recorded],
    count: (filter) => recorded.filter((r) => filterMatches(filter, r)).length,
    reset: () => {
      recorded = [];
      armed = [];
    },
    failNext: (fault) => {
      const times = fault.times ?? 1;
      if (!Number.isInteger(fault.status) || fault.status < 100 || fault.status > 599)
        throw new Error(`failNext: status must be an HTTP status, got ${fault.status}`);
      if (!Number.isInteger(times) || times < 1)
        throw new Error(`failNext: times must be a positive integer, got ${times}`);
      armed.push({ status: fault.status, match: fault.match, retryAfter: fault.retryAfter, left: times });
    },
    close,
    [Symbol.asyncDispose]: close,
  };
}
