import { createHash } from 'node:crypto';
import { RegistryError, StowageError } from '@stowage/oci';
import { createBcryptPool } from './bcrypt-pool.js';
import { permitted, pullableRepositories } from './decide.js';
import type { AccessRule } from './rules.js';
import type { Authorizer } from './types.js';

/** An htpasswd file, user table or token key that cannot be used. */
export class AuthConfigError extends StowageError<'AUTH_CONFIG_INVALID'> {
  constructor(message: string, details?: Readonly<Record<string, unknown>>) {
    super('AUTH_CONFIG_INVALID', message, details === undefined ? {} : { details });
  }
}

/** A bcrypt hash as `htpasswd -B` writes it; the cost is 04 to 31 (bcryptjs throws on others). */
const BCRYPT = /^\$2[aby]\$(?:0[4-9]|[12]\d|3[01])\$[./A-Za-z0-9]{53}$/;

function hashKind(hash: string): string {
  if (hash.startsWith('$apr1$')) return 'MD5 ($apr1$)';
  if (hash.startsWith('{SHA}')) return 'SHA-1 ({SHA})';
  if (hash.startsWith('$2')) return 'a malformed bcrypt hash';
  if (hash.startsWith('$')) return `crypt (${hash.slice(0, hash.indexOf('$', 1) + 1)})`;
  return 'crypt or plain text';
}

/** Parses an htpasswd file: `user:hash` lines, blank lines and `#` comments skipped. */
export function parseHtpasswd(text: string): Map<string, string> {
  const users = new Map<string, string>();
  for (const [i, raw] of text.split(/\r?\n/).entries()) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const colon = line.indexOf(':');
    if (colon <= 0 || colon === line.length - 1) {
      throw new AuthConfigError(`htpasswd line ${i + 1}: expected user:hash`, { line: i + 1 });
    }
    const user = line.slice(0, colon);
    const hash = line.slice(colon + 1);
    if (!BCRYPT.test(hash)) {
      throw new AuthConfigError(
        `htpasswd line ${i + 1} (${user}): ${hashKind(hash)} is not accepted, only bcrypt (htpasswd -B)`,
        { line: i + 1, user },
      );
    }
    users.set(user, hash);
  }
  return users;
}

/** `Authorization: Basic` credentials, or undefined when absent or malformed. */
export function basicCredentials(header: string | undefined): { user: string; password: string } | undefined {
  const decoded = basicPayload(header);
  if (decoded === undefined) return undefined;
  const colon = decoded.indexOf(':');
  if (colon <= 0) return undefined;
  return { user: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
}

function basicPayload(header: string | undefined): string | undefined {
  const match = header === undefined ? null : /^Basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(header);
  return match ? Buffer.from(match[1] as string, 'base64').toString('utf8') : undefined;
}

/**
 * `Basic Og==`: an empty user and an empty password, what skopeo and podman
 * send with `--no-creds`. It asks for nothing, so it is anonymous.
 */
function isEmptyBasic(header: string | undefined): boolean {
  return basicPayload(header) === ':';
}

export interface HtpasswdAuthorizerOptions {
  readonly realm: string;
  /** The users: an htpasswd file's text, or user → bcrypt hash. */
  readonly users: string | ReadonlyMap<string, string>;
  readonly rules?: readonly AccessRule[];
  /** bcrypt worker threads at most, started when first needed. Default `max(1, availableParallelism() - 1)`. */
  readonly workers?: number;
  /**
   * Verifications that may wait for a free worker. A login beyond
   * `workers + maxQueued` verifications in flight gets 429 `TOOMANYREQUESTS`
   * with `Retry-After: 1` at once. Default `4 × workers`.
   */
  readonly maxQueued?: number;
  /** How long a successful verification is remembered, in ms. Default 5 minutes; 0 remembers none. */
  readonly cacheTtlMs?: number;
  /** How many successful verifications are remembered at most (the oldest go first). Default 1,000. */
  readonly cacheSize?: number;
}

/** An htpasswd authorizer; `close()` ends its bcrypt workers early (idle workers never keep a process alive). */
export interface HtpasswdAuthorizer extends Authorizer {
  close(): Promise<void>;
}

const CACHE_TTL_MS = 5 * 60_000;
const CACHE_SIZE = 1000;

/**
 * Basic auth against bcrypt htpasswd entries. bcrypt runs in a small pool of
 * worker threads, never on the event loop, and the verifications in flight
 * are bounded: a login over the bound gets 429 `TOOMANYREQUESTS` at once
 * instead of waiting in an unbounded queue. A successful verification is
 * remembered for `cacheTtlMs` (keyed by a hash of user, password and stored
 * hash), so a user who logged in is served without touching the pool even
 * while a flood of bad logins fills it; concurrent requests with the same
 * credentials share one verification. An unknown user pays one decoy
 * comparison, so timing does not tell which users exist. Wrong or missing
 * credentials get 401 with a `Basic` challenge; empty ones (`Basic Og==`) are
 * anonymous, like none; right credentials that a rule does not allow get 403.
 * Hashes other than bcrypt are refused here, at creation.
 */
export function createHtpasswdAuthorizer(options: HtpasswdAuthorizerOptions): HtpasswdAuthorizer {
  const users = typeof options.users === 'string' ? parseHtpasswd(options.users) : new Map(options.users);
  for (const [user, hash] of users) {
    if (!BCRYPT.test(hash)) {
      throw new AuthConfigError(`user ${user}: ${hashKind(hash)} is not accepted, only bcrypt`, { user });
    }
  }
  const rules = options.rules ?? [];
  const challenge = `Basic realm="${options.realm.replaceAll('"', '')}"`;
  const ttl = options.cacheTtlMs ?? CACHE_TTL_MS;
  const cacheSize = options.cacheSize ?? CACHE_SIZE;
  const pool = createBcryptPool({
    ...(options.workers === undefined ? {} : { workers: options.workers }),
    ...(options.maxQueued === undefined ? {} : { maxQueued: options.maxQueued }),
  });
  // an unknown user still pays one bcrypt comparison, so timing does not tell which users exist
  const decoy = users.values().next().value ?? '$2y$05$CCCCCCCCCCCCCCCCCCCCC.NbvU4hF9Z1sHxxyCgXdIi1Kq1/c4QWa';
  /** credential key → when the verification stops counting; in insertion order, so the first expires first */
  const verified = new Map<string, number>();
  const pending = new Map<string, Promise<boolean>>();

  /** true or false, or undefined when the pool is full and nothing identical is in flight. */
  function check(user: string, password: string): Promise<boolean> | boolean | undefined {
    const hash = users.get(user);
    const key = createHash('sha256')
      .update(JSON.stringify([user, password, hash ?? decoy]))
      .digest('hex');
    if (hash !== undefined) {
      const until = verified.get(key);
      if (until !== undefined) {
        if (Date.now() < until) return true;
        verified.delete(key);
      }
    }
    const running = pending.get(key);
    if (running) return running;
    const compared = pool.tryCompare(password, hash ?? decoy);
    if (!compared) return undefined;
    const result = compared.then((good) => {
      if (!good || hash === undefined) return false;
      if (ttl > 0 && cacheSize > 0) {
        verified.delete(key);
        while (verified.size >= cacheSize) verified.delete(verified.keys().next().value as string);
        verified.set(key, Date.now() + ttl);
      }
      return true;
    });
    pending.set(key, result);
    const forget = () => {
      pending.delete(key);
    };
    result.then(forget, forget);
    return result;
  }

  return {
    async authorize(request, access) {
      const header = request.headers.authorization;
      const refuse = (message: string) =>
        ({ ok: false, status: 401, code: 'UNAUTHORIZED', message, challenge }) as const;
      const credentials = basicCredentials(header);
      if (credentials) {
        const good = await check(credentials.user, credentials.password);
        if (good === undefined) {
          return {
            ok: false,
            status: 429,
            code: 'TOOMANYREQUESTS',
            message: 'too many logins are being verified; retry later',
            retryAfterMs: 1000,
          };
        }
        if (!good) return refuse('invalid username or password');
        if (!permitted(rules, credentials.user, access)) {
          return {
            ok: false,
            status: 403,
            code: 'DENIED',
            message: 'requested access to the resource is denied',
          };
        }
        return { ok: true, principal: { subject: credentials.user } };
      }
      if (header !== undefined && !isEmptyBasic(header)) return refuse('malformed credentials');
      if (access.length > 0 && permitted(rules, undefined, access)) return { ok: true, principal: {} };
      return refuse('authentication required');
    },
    async pullable(request, repositories) {
      const header = request.headers.authorization;
      const credentials = basicCredentials(header);
      if (!credentials) {
        const anonymous = header === undefined || isEmptyBasic(header);
        return anonymous ? pullableRepositories(rules, undefined, repositories) : [];
      }
      const good = await check(credentials.user, credentials.password);
      if (good === undefined) {
        throw new RegistryError('TOOMANYREQUESTS', 'too many logins are being verified; retry later');
      }
      return good ? pullableRepositories(rules, credentials.user, repositories) : [];
    },
    close: () => pool.close(),
  };
}
