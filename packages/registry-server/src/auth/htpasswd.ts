import { createHash } from 'node:crypto';
import { StowageError } from '@stowage/oci';
import bcrypt from 'bcryptjs';
import { permitted } from './decide.js';
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
  const match = header === undefined ? null : /^Basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(header);
  if (!match) return undefined;
  const decoded = Buffer.from(match[1] as string, 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon <= 0) return undefined;
  return { user: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
}

export interface HtpasswdAuthorizerOptions {
  readonly realm: string;
  /** The users: an htpasswd file's text, or user → bcrypt hash. */
  readonly users: string | ReadonlyMap<string, string>;
  readonly rules?: readonly AccessRule[];
}

const CACHE_LIMIT = 1000;

/**
 * Basic auth against bcrypt htpasswd entries. A verified password is cached
 * (by a hash of user, password and stored hash, the 1,000 most recent) so
 * repeated requests do not pay bcrypt's cost each time; concurrent requests
 * with the same credentials share one bcrypt run. Wrong or missing credentials
 * get 401 with a `Basic` challenge; right credentials that a rule does not
 * allow get 403. Hashes other than bcrypt are refused here, at creation.
 */
export function createHtpasswdAuthorizer(options: HtpasswdAuthorizerOptions): Authorizer {
  const users = typeof options.users === 'string' ? parseHtpasswd(options.users) : new Map(options.users);
  for (const [user, hash] of users) {
    if (!BCRYPT.test(hash)) {
      throw new AuthConfigError(`user ${user}: ${hashKind(hash)} is not accepted, only bcrypt`, { user });
    }
  }
  const rules = options.rules ?? [];
  const challenge = `Basic realm="${options.realm.replaceAll('"', '')}"`;
  // an unknown user still pays one bcrypt comparison, so timing does not tell which users exist
  const decoy = users.values().next().value ?? '$2y$05$CCCCCCCCCCCCCCCCCCCCC.NbvU4hF9Z1sHxxyCgXdIi1Kq1/c4QWa';
  const verified = new Set<string>();
  const pending = new Map<string, Promise<boolean>>();

  async function check(user: string, password: string): Promise<boolean> {
    const hash = users.get(user);
    if (hash === undefined) {
      await bcrypt.compare(password, decoy).catch(() => false);
      return false;
    }
    const key = createHash('sha256').update(`${user}\0${password}\0${hash}`).digest('hex');
    if (verified.delete(key)) {
      verified.add(key); // most recently used goes last; the first is evicted
      return true;
    }
    let running = pending.get(key);
    if (!running) {
      running = bcrypt.compare(password, hash).catch(() => false);
      pending.set(key, running);
    }
    let good: boolean;
    try {
      good = await running;
    } finally {
      pending.delete(key);
    }
    if (!good) return false;
    if (!verified.has(key)) {
      if (verified.size >= CACHE_LIMIT) verified.delete(verified.values().next().value as string);
      verified.add(key);
    }
    return true;
  }

  return {
    async authorize(request, access) {
      const header = request.headers.authorization;
      const credentials = basicCredentials(header);
      const refuse = (message: string) =>
        ({ ok: false, status: 401, code: 'UNAUTHORIZED', message, challenge }) as const;
      if (credentials) {
        if (!(await check(credentials.user, credentials.password))) {
          return refuse('invalid username or password');
        }
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
      if (header !== undefined) return refuse('malformed credentials');
      if (access.length > 0 && permitted(rules, undefined, access)) return { ok: true, principal: {} };
      return refuse('authentication required');
    },
  };
}
