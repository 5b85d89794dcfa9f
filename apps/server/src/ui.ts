// The web UI's server side: its static files at /ui/, and sessions. The UI has
// no data routes of its own: the page calls the registry API, and a request
// carrying a UI session cookie is given the session's credentials before the
// API's own authorization decides, exactly as for any client. A change (any
// method but GET and HEAD) made with a session must carry the session's CSRF
// token, and the cookie is SameSite=Strict and HttpOnly.
import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { dirname, extname, join, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import type { Authorizer } from '@stowage/registry-server';

export const SESSION_COOKIE = 'stowage_ui';
export const CSRF_HEADER = 'x-stowage-csrf';
/** A session unused this long is gone. */
const SESSION_IDLE_MS = 12 * 60 * 60 * 1000;
/** Sessions kept at most (the oldest go first). */
const SESSIONS_MAX = 10_000;
/** The largest login body read. */
const LOGIN_BODY_MAX = 16 * 1024;

const TYPES: Readonly<Record<string, string>> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.json': 'application/json',
  '.txt': 'text/plain; charset=utf-8',
};

const SECURITY_HEADERS = {
  'content-security-policy':
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'same-origin',
  'x-frame-options': 'DENY',
};

interface Session {
  readonly user: string;
  /** What the session's requests present to the API's authorization. */
  readonly authorization: string;
  readonly csrf: string;
  lastUsed: number;
}

interface StaticFile {
  readonly type: string;
  readonly raw: Buffer;
  readonly gzip: Buffer;
  readonly etag: string;
  readonly immutable: boolean;
}

export interface UiOptions {
  /** The API's authorizer (`undefined`: anonymous, everything allowed). */
  readonly auth: Authorizer | undefined;
  /** How users log in: `htpasswd` (the login form checks against it), `token` (not yet), `none`. */
  readonly login: 'htpasswd' | 'token' | 'none';
  /** Where the built files are; default: `dist/ui` beside the server's code. */
  readonly directory?: string;
  /** Mark the cookie `Secure` (the server speaks TLS). */
  readonly secure: boolean;
  /** Whether the API takes pushes and deletes at all (read-only mode, `storage.delete.enabled`). */
  readonly writable: { readonly push: boolean; readonly delete: boolean };
  readonly now?: () => number;
}

/** The built UI's directory: `ui` beside the bundle (`dist/ui`), or `dist/ui` of the package when run from source. */
export function defaultUiDirectory(): string {
  const here = dirname(fileURLToPath(import.meta.url));
  const beside = join(here, 'ui');
  return existsSync(join(beside, 'index.html')) ? beside : join(here, '..', 'dist', 'ui');
}

/** Every file of the built UI, read and gzipped once (the UI is a few tens of KB). */
function loadFiles(directory: string): Map<string, StaticFile> {
  const files = new Map<string, StaticFile>();
  const walk = (dir: string) => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) walk(path);
      else if (entry.isFile()) {
        const raw = readFileSync(path);
        const name = relative(directory, path).split(sep).join('/');
        files.set(name, {
          type: TYPES[extname(name)] ?? 'application/octet-stream',
          raw,
          gzip: gzipSync(raw, { level: 9 }),
          etag: `"${statSync(path).size.toString(16)}-${statSync(path).mtimeMs.toString(16)}"`,
          immutable: name.startsWith('assets/'),
        });
      }
    }
  };
  if (existsSync(join(directory, 'index.html'))) walk(directory);
  return files;
}

function cookieValue(header: string | undefined, name: string): string | undefined {
  if (!header) return undefined;
  for (const part of header.split(';')) {
    const index = part.indexOf('=');
    if (index > 0 && part.slice(0, index).trim() === name) return part.slice(index + 1).trim();
  }
  return undefined;
}

function json(response: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}) {
  const text = JSON.stringify(body);
  response
    .writeHead(status, {
      'content-type': 'application/json',
      'content-length': Buffer.byteLength(text),
      'cache-control': 'no-store',
      ...headers,
    })
    .end(text);
}

function ociError(response: ServerResponse, status: number, code: string, message: string) {
  json(response, status, { errors: [{ code, message, detail: null }] });
}

async function readBody(request: IncomingMessage, limit: number): Promise<Buffer | undefined> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of request as AsyncIterable<Buffer>) {
    size += chunk.byteLength;
    if (size > limit) return undefined;
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}

/** Drops `WWW-Authenticate` from whatever the response will send. */
function withoutChallenge(response: ServerResponse): void {
  const writeHead = response.writeHead;
  response.writeHead = function (this: ServerResponse, status: number, ...rest: unknown[]) {
    this.removeHeader('www-authenticate');
    const headers = rest.at(-1);
    if (headers && typeof headers === 'object' && !Array.isArray(headers)) {
      for (const name of Object.keys(headers)) {
        if (name.toLowerCase() === 'www-authenticate') delete (headers as Record<string, unknown>)[name];
      }
    }
    return (writeHead as (...args: unknown[]) => ServerResponse).call(this, status, ...rest);
  } as ServerResponse['writeHead'];
}

export interface Ui {
  /**
   * Answers a request under `/ui` (static files and the session API); `false`
   * when the path is not the UI's.
   */
  handle(request: IncomingMessage, response: ServerResponse, path: string): false | Promise<void>;
  /**
   * Before the API sees a request: a valid session cookie gives it the
   * session's credentials (when it brings none of its own). Answers (and
   * returns true) when a change made with a session lacks its CSRF token.
   */
  prepare(request: IncomingMessage, response: ServerResponse): boolean;
}

export function createUi(options: UiOptions): Ui {
  const now = options.now ?? Date.now;
  const directory = options.directory ?? defaultUiDirectory();
  const files = loadFiles(directory);
  const sessions = new Map<string, Session>();

  function sessionOf(request: IncomingMessage): Session | undefined {
    const id = cookieValue(request.headers.cookie, SESSION_COOKIE);
    if (!id) return undefined;
    const session = sessions.get(id);
    if (!session) return undefined;
    if (now() - session.lastUsed > SESSION_IDLE_MS) {
      sessions.delete(id);
      return undefined;
    }
    session.lastUsed = now();
    return session;
  }

  function cookie(value: string, maxAge?: number): string {
    return [
      `${SESSION_COOKIE}=${value}`,
      'Path=/',
      'HttpOnly',
      'SameSite=Strict',
      ...(options.secure ? ['Secure'] : []),
      ...(maxAge === undefined ? [] : [`Max-Age=${maxAge}`]),
    ].join('; ');
  }

  function sendFile(request: IncomingMessage, response: ServerResponse, name: string): void {
    const file = files.get(name);
    if (!file) {
      response.writeHead(404, { 'content-type': 'text/plain; charset=utf-8', ...SECURITY_HEADERS });
      response.end(
        files.size === 0 ? 'the UI is not built: run pnpm --filter @stowage/server build\n' : 'not found\n',
      );
      return;
    }
    const headers: Record<string, string | number> = {
      'content-type': file.type,
      etag: file.etag,
      'cache-control': file.immutable ? 'public, max-age=31536000, immutable' : 'no-cache',
      vary: 'accept-encoding',
      ...SECURITY_HEADERS,
    };
    if (request.headers['if-none-match'] === file.etag) {
      response.writeHead(304, headers).end();
      return;
    }
    const gzip = /\bgzip\b/.test(String(request.headers['accept-encoding'] ?? ''));
    const body = gzip ? file.gzip : file.raw;
    if (gzip) headers['content-encoding'] = 'gzip';
    headers['content-length'] = body.byteLength;
    response.writeHead(200, headers);
    response.end(request.method === 'HEAD' ? undefined : body);
  }

  async function login(request: IncomingMessage, response: ServerResponse): Promise<void> {
    // JSON only: a cross-site form cannot send it without a preflight this server never answers
    if (!String(request.headers['content-type'] ?? '').startsWith('application/json')) {
      ociError(response, 415, 'UNSUPPORTED', 'send the credentials as application/json');
      return;
    }
    if (options.login !== 'htpasswd' || !options.auth) {
      ociError(
        response,
        400,
        'UNSUPPORTED',
        options.login === 'token'
          ? 'logging in to the UI with token auth is not supported yet'
          : 'this registry has no users: everyone browses anonymously',
      );
      return;
    }
    const body = await readBody(request, LOGIN_BODY_MAX);
    let credentials: { username?: unknown; password?: unknown } | undefined;
    try {
      credentials = body === undefined ? undefined : JSON.parse(body.toString('utf8'));
    } catch {
      credentials = undefined;
    }
    const { username, password } = credentials ?? {};
    if (
      typeof username !== 'string' ||
      typeof password !== 'string' ||
      username === '' ||
      username.includes(':')
    ) {
      ociError(response, 400, 'UNAUTHORIZED', 'give a username and a password');
      return;
    }
    const authorization = `Basic ${Buffer.from(`${username}:${password}`).toString('base64')}`;
    const decision = await options.auth.authorize({ headers: { authorization } }, []);
    if (!decision.ok && decision.status !== 403) {
      ociError(response, decision.status, decision.code, decision.message);
      return;
    }
    while (sessions.size >= SESSIONS_MAX) sessions.delete(sessions.keys().next().value as string);
    const id = randomBytes(32).toString('base64url');
    sessions.set(id, {
      user: username,
      authorization,
      csrf: randomBytes(24).toString('base64url'),
      lastUsed: now(),
    });
    response.writeHead(204, { 'set-cookie': cookie(id), 'cache-control': 'no-store' }).end();
  }

  /** What the request may do on a repository, asked of the API's own authorization. */
  async function access(request: IncomingMessage, response: ServerResponse, url: URL): Promise<void> {
    const repository = url.searchParams.get('repository');
    if (!repository) {
      ociError(response, 400, 'NAME_INVALID', 'give ?repository=<name>');
      return;
    }
    const session = sessionOf(request);
    const headers = session ? { authorization: session.authorization } : {};
    const actions: string[] = [];
    for (const action of ['pull', 'push', 'delete'] as const) {
      if (action === 'push' && !options.writable.push) continue;
      if (action === 'delete' && !options.writable.delete) continue;
      const decision = options.auth
        ? await options.auth.authorize({ headers }, [
            { type: 'repository', name: repository, actions: [action] },
          ])
        : { ok: true };
      if (decision.ok) actions.push(action);
    }
    json(response, 200, { actions });
  }

  return {
    handle(request, response, path) {
      if (path !== '/ui' && !path.startsWith('/ui/')) return false;
      return (async () => {
        const url = new URL(request.url ?? '/', 'http://ui.invalid');
        const method = request.method ?? 'GET';
        if (path === '/ui') {
          response.writeHead(308, { location: '/ui/' }).end();
          return;
        }
        if (path.startsWith('/ui/api/')) {
          const route = path.slice('/ui/api/'.length);
          if (route === 'session' && method === 'GET') {
            const session = sessionOf(request);
            json(response, 200, {
              user: session?.user ?? null,
              csrf: session?.csrf ?? null,
              login: options.login,
            });
            return;
          }
          if (route === 'login' && method === 'POST') return login(request, response);
          if (route === 'logout' && method === 'POST') {
            const id = cookieValue(request.headers.cookie, SESSION_COOKIE);
            const session = id ? sessions.get(id) : undefined;
            if (session && request.headers[CSRF_HEADER] !== session.csrf) {
              ociError(response, 403, 'DENIED', 'the request lacks the session’s CSRF token');
              return;
            }
            if (id) sessions.delete(id);
            response.writeHead(204, { 'set-cookie': cookie('', 0), 'cache-control': 'no-store' }).end();
            return;
          }
          if (route === 'access' && method === 'GET') return access(request, response, url);
          ociError(response, 404, 'NOT_FOUND', `no UI route ${method} ${path}`);
          return;
        }
        if (method !== 'GET' && method !== 'HEAD') {
          ociError(response, 405, 'UNSUPPORTED', 'the UI serves files: GET or HEAD');
          return;
        }
        let name: string;
        try {
          name = path === '/ui/' ? 'index.html' : decodeURIComponent(path.slice('/ui/'.length));
        } catch {
          name = '';
        }
        // names are looked up among the files read at start: no path ever reaches the filesystem
        sendFile(request, response, name);
      })().catch((error: unknown) => {
        if (!response.headersSent) ociError(response, 500, 'UNKNOWN', (error as Error).message);
        else response.destroy();
      });
    },

    prepare(request, response) {
      // the page's own requests (only browsers send Sec-Fetch-*): no Basic challenge, or the
      // browser would open its password dialog over the page's login form
      if (
        request.headers['sec-fetch-site'] === 'same-origin' &&
        request.headers['sec-fetch-dest'] === 'empty'
      ) {
        withoutChallenge(response);
      }
      const session = sessionOf(request);
      if (!session) return false;
      const method = request.method ?? 'GET';
      if (method !== 'GET' && method !== 'HEAD' && request.headers[CSRF_HEADER] !== session.csrf) {
        ociError(response, 403, 'DENIED', 'a change made with a UI session needs its CSRF token');
        return true;
      }
      if (request.headers.authorization === undefined) request.headers.authorization = session.authorization;
      return false;
    },
  };
}
