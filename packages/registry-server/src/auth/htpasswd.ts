import { createHash } from 'node:crypto';
import { StowageError } from '@stowage/oci';
import bcrypt from 'bcryptjs';
import { permitted } from './decide.js';
import type { AccessRule } from './rules.js';
import type { Authorizer } from './types.js';

export class AuthConfigError extends StowageError<'AUTH_CONFIG_INVALID'> {
  constructor(message: string) {
    super('AUTH_CONFIG_INVALID', message);
  }
}

/** Parses an htpasswd file: `user:hash` lines, blank lines and `#` comments skipped. */
export function parseHtpasswd(text: string): Map<string, string> {
  const users = new Map<string, string>();
  for (const [i, raw] of text.split(/\r?\n/).entries()) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const colon = line.indexOf(':');
    if (colon <= 0 || colon === line.length - 1) {
      throw new AuthConfigError(`htpasswd line ${i + 1}: expected user:hash`);
    }
    const user = line.slice(0, colon);
    const hash = line.slice(colon + 1);
    if (!/^\$2[aby]\$\d\d\$[./A-Za-z0-9]{53}$/.test(hash)) {
      throw new AuthConfigError(
        `htpasswd line ${i + 1} (${user}): only bcrypt hashes are accepted (htpasswd -B), as in distribution`,
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
 * (by a hash of user, password and stored hash) so repeated requests do not pay
 * bcrypt's cost each time. Wrong or missing credentials get 401 with a `Basic`
 * challenge; right credentials that a rule does not allow get 403.
 */
export function createHtpasswdAuthorizer(options: HtpasswdAuthorizerOptions): Authorizer {
  const users = typeof options.users === 'string' ? parseHtpasswd(options.users) : new Map(options.users);
  for (const [user, hash] of users) {
    if (!/^\$2[aby]\$/.test(hash)) throw new AuthConfigError(`user ${user}: only bcrypt hashes are accepted`);
  }
  const rules = options.rules ?? [];
  const challenge = `Basic realm="${options.realm.replaceAll('"', '')}"`;
  const verified = new Set<string>();

  async function check(user: string, password: string): Promise<boolean> {
    const hash = users.get(user);
    if (hash === undefined) return false;
    const key = createHash('sha256').update(`${user}\0${password}\0${hash}`).digest('hex');
    if (verified.has(key)) return true;
    if (!(await bcrypt.compare(password, hash))) return false;
    if (verified.size >= CACHE_LIMIT) verified.delete(verified.values().next().value as string);
    verified.add(key);
    return true;
  }

  return {
    async authorize(request, access) {
      const header = request.headers.authorization;
      const credentials = basicCredentials(header);
      const refuse = (message: string) =>
        ({ ok: false, status: 401, code: 'UNAUTHORIZED', message, challenge }) as const;
      if (credentials) {
        if (!(await check(credentials.user, credentials.password)))
          return refuse('invalid username or password');
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
