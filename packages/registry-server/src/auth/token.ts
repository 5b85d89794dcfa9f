import { constants, createPublicKey, type KeyObject, verify, X509Certificate } from 'node:crypto';
import { permitted, scopeOf } from './decide.js';
import { AuthConfigError } from './htpasswd.js';
import type { AccessRule } from './rules.js';
import type { Access, Authorizer } from './types.js';

export interface TokenAuthorizerOptions {
  /** The token server clients are sent to (the challenge's `realm`). */
  readonly realm: string;
  /** This registry's name: the token's `aud` must contain it. */
  readonly service: string;
  /** The token's `iss` must be this. */
  readonly issuer: string;
  /**
   * PEM public keys or X.509 certificates (a root bundle). A token with an
   * `x5c` header must chain to one of the certificates; any other token must
   * verify with one of the keys.
   */
  readonly keys: readonly (string | KeyObject)[];
  /** Clock skew allowed on `exp` and `nbf`. Default 60 s. */
  readonly leewaySeconds?: number;
  /** Rules granting anonymous access (a token's `access` claim decides for its holder). */
  readonly rules?: readonly AccessRule[];
}

interface Claims {
  iss?: unknown;
  sub?: unknown;
  aud?: unknown;
  exp?: unknown;
  nbf?: unknown;
  access?: unknown;
}

const ALGORITHMS: Readonly<
  Record<string, { hash: string | null; keyTypes: readonly string[]; pss?: boolean }>
> = {
  ES256: { hash: 'sha256', keyTypes: ['ec'] },
  ES384: { hash: 'sha384', keyTypes: ['ec'] },
  ES512: { hash: 'sha512', keyTypes: ['ec'] },
  RS256: { hash: 'sha256', keyTypes: ['rsa'] },
  RS384: { hash: 'sha384', keyTypes: ['rsa'] },
  RS512: { hash: 'sha512', keyTypes: ['rsa'] },
  PS256: { hash: 'sha256', keyTypes: ['rsa', 'rsa-pss'], pss: true },
  EdDSA: { hash: null, keyTypes: ['ed25519', 'ed448'] },
};

function base64url(part: string): Buffer {
  if (!/^[A-Za-z0-9_-]*$/.test(part)) throw new Error('not base64url');
  return Buffer.from(part, 'base64url');
}

/** Verifies a JWT and returns its claims; throws a plain Error saying why not. */
function verifyJwt(
  token: string,
  certificates: readonly X509Certificate[],
  keys: readonly KeyObject[],
): { claims: Claims } {
  const parts = token.split('.');
  if (parts.length !== 3) throw new Error('not a JWT');
  const [h, p, s] = parts as [string, string, string];
  const header = JSON.parse(base64url(h).toString('utf8')) as { alg?: unknown; x5c?: unknown };
  const algorithm = typeof header.alg === 'string' ? ALGORITHMS[header.alg] : undefined;
  if (!algorithm) throw new Error(`algorithm ${String(header.alg)} is not accepted`);
  let candidates: readonly KeyObject[] = keys;
  if (header.x5c !== undefined) {
    if (!Array.isArray(header.x5c) || header.x5c.length === 0) throw new Error('bad x5c');
    const chain = header.x5c.map((der) => new X509Certificate(Buffer.from(String(der), 'base64')));
    for (let i = 0; i + 1 < chain.length; i++) {
      const [child, parent] = [chain[i] as X509Certificate, chain[i + 1] as X509Certificate];
      if (!child.checkIssued(parent) || !child.verify(parent.publicKey))
        throw new Error('x5c chain is broken');
    }
    const top = chain[chain.length - 1] as X509Certificate;
    const anchored = certificates.some(
      (root) =>
        root.fingerprint256 === top.fingerprint256 || (top.checkIssued(root) && top.verify(root.publicKey)),
    );
    if (!anchored) throw new Error('x5c does not chain to a trusted certificate');
    const now = Date.now();
    for (const cert of chain) {
      if (Date.parse(cert.validFrom) > now || Date.parse(cert.validTo) < now)
        throw new Error('certificate expired');
    }
    candidates = [(chain[0] as X509Certificate).publicKey];
  }
  const data = Buffer.from(`${h}.${p}`);
  const signature = base64url(s);
  const good = candidates.some((key) => {
    if (!algorithm.keyTypes.includes(key.asymmetricKeyType ?? '')) return false;
    try {
      if (key.asymmetricKeyType === 'ec') {
        return verify(algorithm.hash, data, { key, dsaEncoding: 'ieee-p1363' }, signature);
      }
      if (algorithm.pss) {
        return verify(
          algorithm.hash,
          data,
          { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: constants.RSA_PSS_SALTLEN_DIGEST },
          signature,
        );
      }
      return verify(algorithm.hash, data, key, signature);
    } catch {
      return false;
    }
  });
  if (!good) throw new Error('bad signature');
  return { claims: JSON.parse(base64url(p).toString('utf8')) as Claims };
}

/** The accesses a token's `access` claim grants. */
function granted(claims: Claims): Access[] {
  if (!Array.isArray(claims.access)) return [];
  return claims.access.flatMap((entry: unknown) => {
    const e = entry as { type?: unknown; name?: unknown; actions?: unknown };
    if (typeof e.type !== 'string' || typeof e.name !== 'string' || !Array.isArray(e.actions)) return [];
    return [
      {
        type: e.type as Access['type'],
        name: e.name,
        actions: e.actions.filter((a) => typeof a === 'string'),
      },
    ];
  });
}

function tokenCovers(grants: readonly Access[], needed: readonly Access[]): boolean {
  return needed.every((need) => {
    const have = new Set(
      grants.filter((g) => g.type === need.type && g.name === need.name).flatMap((g) => g.actions),
    );
    return have.has('*') || need.actions.every((action) => have.has(action));
  });
}

/**
 * Token auth as distribution does it: `Authorization: Bearer <JWT>` issued by a
 * token server, verified with the configured keys or certificate chain, whose
 * `access` claim lists what the holder may do. Anything missing gets 401 with a
 * `Bearer` challenge naming the scope needed, and `error="insufficient_scope"`
 * when a valid token does not cover it.
 */
export function createTokenAuthorizer(options: TokenAuthorizerOptions): Authorizer {
  const certificates: X509Certificate[] = [];
  const keys: KeyObject[] = [];
  for (const key of options.keys) {
    if (typeof key !== 'string') {
      keys.push(key);
    } else if (key.includes('CERTIFICATE')) {
      const cert = new X509Certificate(key);
      certificates.push(cert);
      keys.push(cert.publicKey);
    } else {
      try {
        keys.push(createPublicKey(key));
      } catch (error) {
        throw new AuthConfigError(`token auth key is not a PEM public key: ${(error as Error).message}`);
      }
    }
  }
  if (keys.length === 0) throw new AuthConfigError('token auth needs at least one key or certificate');
  const leeway = (options.leewaySeconds ?? 60) * 1000;
  const rules = options.rules ?? [];
  const quote = (value: string) => value.replaceAll('"', '');

  function challenge(access: readonly Access[], insufficient: boolean): string {
    const scope = scopeOf(access);
    return [
      `Bearer realm="${quote(options.realm)}"`,
      `service="${quote(options.service)}"`,
      ...(scope ? [`scope="${quote(scope)}"`] : []),
      ...(insufficient ? ['error="insufficient_scope"'] : []),
    ].join(',');
  }

  return {
    async authorize(request, access) {
      const header = request.headers.authorization;
      const bearer = header === undefined ? null : /^Bearer\s+(\S+)\s*$/i.exec(header);
      if (!bearer) {
        if (header === undefined && access.length > 0 && permitted(rules, undefined, access)) {
          return { ok: true, principal: {} };
        }
        return {
          ok: false,
          status: 401,
          code: 'UNAUTHORIZED',
          message: 'authentication required',
          challenge: challenge(access, false),
        };
      }
      let claims: Claims;
      try {
        claims = verifyJwt(bearer[1] as string, certificates, keys).claims;
        const now = Date.now();
        if (claims.iss !== options.issuer) throw new Error('wrong issuer');
        const audiences = Array.isArray(claims.aud) ? claims.aud : [claims.aud];
        if (!audiences.includes(options.service)) throw new Error('wrong audience');
        if (typeof claims.exp !== 'number' || claims.exp * 1000 + leeway < now)
          throw new Error('token expired');
        if (typeof claims.nbf === 'number' && claims.nbf * 1000 - leeway > now)
          throw new Error('token not yet valid');
      } catch (error) {
        return {
          ok: false,
          status: 401,
          code: 'UNAUTHORIZED',
          message: `invalid token: ${(error as Error).message}`,
          challenge: challenge(access, false),
        };
      }
      const subject = typeof claims.sub === 'string' ? claims.sub : undefined;
      if (!tokenCovers(granted(claims), access) && !permitted(rules, undefined, access)) {
        return {
          ok: false,
          status: 401,
          code: 'UNAUTHORIZED',
          message: 'the token does not grant the access needed',
          challenge: challenge(access, true),
        };
      }
      return { ok: true, principal: subject === undefined ? {} : { subject } };
    },
  };
}
