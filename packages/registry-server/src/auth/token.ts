import { constants, createPublicKey, type KeyObject, verify, X509Certificate } from 'node:crypto';
import { permitted, scopeOf } from './decide.js';
import { AuthConfigError } from './htpasswd.js';
import type { AccessRule } from './rules.js';
import type { Access, AuthDecision, Authorizer } from './types.js';

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
   * verify with one of the keys. Given as an object, the keys are named by
   * `kid`: a token naming a `kid` is checked with that key only.
   */
  readonly keys: readonly (string | KeyObject)[] | Readonly<Record<string, string | KeyObject>>;
  /** Clock skew allowed on `exp` and `nbf`. Default 60 s. */
  readonly leewaySeconds?: number;
  /** Rules granting anonymous access (a token's `access` claim decides for its holder). */
  readonly rules?: readonly AccessRule[];
}

interface Claims {
  readonly iss?: unknown;
  readonly sub?: unknown;
  readonly aud?: unknown;
  readonly exp?: unknown;
  readonly nbf?: unknown;
  readonly access?: unknown;
}

interface Algorithm {
  /** The digest, `null` for EdDSA. */
  readonly hash: string | null;
  readonly keyTypes: readonly string[];
  /** ES*: the curve the algorithm is defined on, and the r||s signature length. */
  readonly curve?: string;
  readonly signatureLength?: number;
  readonly pss?: boolean;
}

const ALGORITHMS: Readonly<Record<string, Algorithm>> = {
  ES256: { hash: 'sha256', keyTypes: ['ec'], curve: 'prime256v1', signatureLength: 64 },
  ES384: { hash: 'sha384', keyTypes: ['ec'], curve: 'secp384r1', signatureLength: 96 },
  ES512: { hash: 'sha512', keyTypes: ['ec'], curve: 'secp521r1', signatureLength: 132 },
  RS256: { hash: 'sha256', keyTypes: ['rsa'] },
  RS384: { hash: 'sha384', keyTypes: ['rsa'] },
  RS512: { hash: 'sha512', keyTypes: ['rsa'] },
  PS256: { hash: 'sha256', keyTypes: ['rsa', 'rsa-pss'], pss: true },
  PS384: { hash: 'sha384', keyTypes: ['rsa', 'rsa-pss'], pss: true },
  PS512: { hash: 'sha512', keyTypes: ['rsa', 'rsa-pss'], pss: true },
  EdDSA: { hash: null, keyTypes: ['ed25519', 'ed448'] },
};

/** Why a token is refused; never leaves this module. */
class TokenInvalid extends Error {}

function base64url(part: string): Buffer {
  if (!/^[A-Za-z0-9_-]*$/.test(part)) throw new TokenInvalid('not base64url');
  return Buffer.from(part, 'base64url');
}

function jsonObject(part: string, what: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(base64url(part).toString('utf8'));
  } catch {
    throw new TokenInvalid(`${what} is not JSON`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new TokenInvalid(`${what} is not a JSON object`);
  }
  return value as Record<string, unknown>;
}

function verifySignature(algorithm: Algorithm, key: KeyObject, data: Buffer, signature: Buffer): boolean {
  if (!algorithm.keyTypes.includes(key.asymmetricKeyType ?? '')) return false;
  try {
    if (algorithm.curve !== undefined) {
      if (key.asymmetricKeyDetails?.namedCurve !== algorithm.curve) return false;
      if (signature.length !== algorithm.signatureLength) return false;
      return verify(algorithm.hash, data, { key, dsaEncoding: 'ieee-p1363' }, signature);
    }
    if (algorithm.pss) {
      const padding = constants.RSA_PKCS1_PSS_PADDING;
      return verify(
        algorithm.hash,
        data,
        { key, padding, saltLength: constants.RSA_PSS_SALTLEN_DIGEST },
        signature,
      );
    }
    return verify(algorithm.hash, data, key, signature);
  } catch {
    return false;
  }
}

/** The leaf certificate's key of an `x5c` chain that ends at (or under) a trusted certificate. */
function chainKey(x5c: unknown, roots: readonly X509Certificate[]): KeyObject {
  if (!Array.isArray(x5c) || x5c.length === 0 || x5c.length > 10) throw new TokenInvalid('bad x5c');
  const chain = x5c.map((der) => {
    if (typeof der !== 'string') throw new TokenInvalid('bad x5c');
    try {
      return new X509Certificate(Buffer.from(der, 'base64'));
    } catch {
      throw new TokenInvalid('x5c holds a certificate that cannot be read');
    }
  });
  for (let i = 0; i + 1 < chain.length; i++) {
    const [child, parent] = [chain[i] as X509Certificate, chain[i + 1] as X509Certificate];
    if (!parent.ca || !child.checkIssued(parent) || !child.verify(parent.publicKey)) {
      throw new TokenInvalid('x5c chain is broken');
    }
  }
  const top = chain[chain.length - 1] as X509Certificate;
  const anchored = roots.some(
    (root) =>
      root.fingerprint256 === top.fingerprint256 || (top.checkIssued(root) && top.verify(root.publicKey)),
  );
  if (!anchored) throw new TokenInvalid('x5c does not chain to a trusted certificate');
  const now = Date.now();
  for (const cert of chain) {
    if (Date.parse(cert.validFrom) > now || Date.parse(cert.validTo) < now) {
      throw new TokenInvalid('a certificate of the x5c chain is expired or not yet valid');
    }
  }
  return (chain[0] as X509Certificate).publicKey;
}

interface TrustedKeys {
  readonly certificates: readonly X509Certificate[];
  readonly keys: readonly KeyObject[];
  readonly byKid: ReadonlyMap<string, KeyObject>;
}

/** Verifies a JWT's signature and returns its claims (times, issuer and audience are checked by the caller). */
function verifyJwt(token: string, trusted: TrustedKeys): Claims {
  const parts = token.split('.');
  if (parts.length !== 3) throw new TokenInvalid('not a JWT');
  const [h, p, s] = parts as [string, string, string];
  const header = jsonObject(h, 'header');
  const algorithm = typeof header.alg === 'string' ? ALGORITHMS[header.alg] : undefined;
  if (!Object.hasOwn(ALGORITHMS, String(header.alg)) || !algorithm) {
    throw new TokenInvalid(`algorithm ${String(header.alg)} is not accepted`);
  }
  if (header.crit !== undefined) throw new TokenInvalid('critical header extensions are not understood');
  let candidates: readonly KeyObject[];
  if (header.x5c !== undefined) {
    candidates = [chainKey(header.x5c, trusted.certificates)];
  } else if (typeof header.kid === 'string' && trusted.byKid.size > 0) {
    const key = trusted.byKid.get(header.kid);
    if (!key) throw new TokenInvalid('unknown kid');
    candidates = [key];
  } else {
    candidates = trusted.keys;
  }
  const data = Buffer.from(`${h}.${p}`);
  const signature = base64url(s);
  if (!candidates.some((key) => verifySignature(algorithm, key, data, signature))) {
    throw new TokenInvalid('bad signature');
  }
  return jsonObject(p, 'payload');
}

/** The accesses a token's `access` claim grants. */
function granted(claims: Claims): Access[] {
  if (!Array.isArray(claims.access)) return [];
  return claims.access.flatMap((entry: unknown) => {
    if (typeof entry !== 'object' || entry === null) return [];
    const e = entry as { type?: unknown; name?: unknown; actions?: unknown };
    if (typeof e.type !== 'string' || typeof e.name !== 'string' || !Array.isArray(e.actions)) return [];
    return [
      {
        type: e.type as Access['type'],
        name: e.name,
        actions: e.actions.filter((a): a is string => typeof a === 'string'),
      },
    ];
  });
}

/** Whether the grants cover one needed access (`*` in a grant's actions covers all). */
function grantCovers(grants: readonly Access[], need: Access): boolean {
  const have = new Set(
    grants.filter((g) => g.type === need.type && g.name === need.name).flatMap((g) => g.actions),
  );
  return have.has('*') || need.actions.every((action) => have.has(action));
}

function publicKeyOf(
  key: string | KeyObject,
  name: string,
): { key: KeyObject; certificate?: X509Certificate } {
  try {
    if (typeof key !== 'string') {
      if (key.type === 'secret') throw new Error('a secret key cannot verify tokens (HMAC is not accepted)');
      return { key: key.type === 'private' ? createPublicKey(key) : key };
    }
    if (key.includes('-----BEGIN CERTIFICATE-----')) {
      const certificate = new X509Certificate(key);
      return { key: certificate.publicKey, certificate };
    }
    return { key: createPublicKey(key) };
  } catch (error) {
    throw new AuthConfigError(
      `token auth key ${name} is not a PEM public key or certificate: ${(error as Error).message}`,
      {
        key: name,
      },
    );
  }
}

function trust(keys: TokenAuthorizerOptions['keys']): TrustedKeys {
  const certificates: X509Certificate[] = [];
  const all: KeyObject[] = [];
  const byKid = new Map<string, KeyObject>();
  const named: [string, string | KeyObject][] = Array.isArray(keys)
    ? (keys as readonly (string | KeyObject)[]).map((key, i) => [String(i), key])
    : Object.entries(keys as Readonly<Record<string, string | KeyObject>>);
  for (const [name, value] of named) {
    const { key, certificate } = publicKeyOf(value, name);
    if (certificate) certificates.push(certificate);
    all.push(key);
    if (!Array.isArray(keys)) byKid.set(name, key);
  }
  if (all.length === 0) throw new AuthConfigError('token auth needs at least one key or certificate');
  return { certificates, keys: all, byKid };
}

/**
 * Token auth as distribution does it: `Authorization: Bearer <JWT>` issued by a
 * token server, verified with the configured keys or certificate chain, whose
 * `access` claim lists what the holder may do. Anything missing gets 401 with a
 * `Bearer` challenge naming the scope needed, and `error="insufficient_scope"`
 * when a valid token does not cover it. Only asymmetric algorithms matching the
 * key are accepted (ES256/384/512, RS256/384/512, PS256/384/512, EdDSA).
 */
export function createTokenAuthorizer(options: TokenAuthorizerOptions): Authorizer {
  const trusted = trust(options.keys);
  const leeway = (options.leewaySeconds ?? 60) * 1000;
  const rules = options.rules ?? [];
  // a quoted-string parameter: no quote or backslash, nothing a header value cannot hold
  const quote = (value: string) => value.replace(/[^\x20-\x7e]|["\\]/g, '');

  function refuse(access: readonly Access[], message: string, insufficient = false): AuthDecision {
    const scope = scopeOf(access);
    const challenge = [
      `Bearer realm="${quote(options.realm)}"`,
      `service="${quote(options.service)}"`,
      ...(scope ? [`scope="${quote(scope)}"`] : []),
      ...(insufficient ? ['error="insufficient_scope"'] : []),
    ].join(',');
    return { ok: false, status: 401, code: 'UNAUTHORIZED', message, challenge };
  }

  function check(token: string): Claims {
    const claims = verifyJwt(token, trusted);
    const now = Date.now();
    if (claims.iss !== options.issuer) throw new TokenInvalid('wrong issuer');
    const audiences = Array.isArray(claims.aud) ? claims.aud : [claims.aud];
    if (!audiences.includes(options.service)) throw new TokenInvalid('wrong audience');
    if (typeof claims.exp !== 'number' || claims.exp * 1000 + leeway < now) {
      throw new TokenInvalid('token expired');
    }
    if (claims.nbf !== undefined && (typeof claims.nbf !== 'number' || claims.nbf * 1000 - leeway > now)) {
      throw new TokenInvalid('token not yet valid');
    }
    return claims;
  }

  /** What a request's token grants: `undefined` without a token, `null` for a token that does not verify. */
  function grantsOf(header: string | undefined): Access[] | undefined | null {
    if (header === undefined) return undefined;
    const bearer = /^Bearer\s+(\S+)\s*$/i.exec(header);
    if (!bearer) return null;
    try {
      return granted(check(bearer[1] as string));
    } catch {
      return null;
    }
  }

  return {
    async pullable(request, repositories) {
      const grants = grantsOf(request.headers.authorization);
      if (grants === null) return [];
      return repositories.filter((name) => {
        const need: Access = { type: 'repository', name, actions: ['pull'] };
        return (grants !== undefined && grantCovers(grants, need)) || permitted(rules, undefined, [need]);
      });
    },
    async authorize(request, access) {
      const header = request.headers.authorization;
      const bearer = header === undefined ? null : /^Bearer\s+(\S+)\s*$/i.exec(header);
      if (!bearer) {
        if (header === undefined && access.length > 0 && permitted(rules, undefined, access)) {
          return { ok: true, principal: {} };
        }
        return refuse(
          access,
          header === undefined ? 'authentication required' : 'a Bearer token is required',
        );
      }
      let claims: Claims;
      try {
        claims = check(bearer[1] as string);
      } catch (error) {
        const reason = error instanceof TokenInvalid ? error.message : 'malformed token';
        return refuse(access, `invalid token: ${reason}`);
      }
      const grants = granted(claims);
      // each need is met by the token, or by what the rules let anyone do
      const covered = access.every(
        (need) => grantCovers(grants, need) || permitted(rules, undefined, [need]),
      );
      if (!covered) return refuse(access, 'the token does not grant the access needed', true);
      const subject = typeof claims.sub === 'string' ? claims.sub : undefined;
      return { ok: true, principal: subject === undefined ? {} : { subject } };
    },
  };
}
