// Signs JWTs for the token-auth tests, as a token server would.
import { createPrivateKey, type KeyObject, sign } from 'node:crypto';

export interface TokenClaims {
  readonly iss?: string;
  readonly sub?: string;
  readonly aud?: string | string[];
  readonly exp?: number;
  readonly nbf?: number;
  readonly access?: readonly { type: string; name: string; actions: string[] }[];
}

const b64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');

/** A signed JWT; `alg` picks the algorithm, `x5c` the certificate chain (base64 DER). */
export function signJwt(
  claims: TokenClaims,
  key: KeyObject | string,
  alg = 'ES256',
  extraHeader: Record<string, unknown> = {},
): string {
  const privateKey = typeof key === 'string' ? createPrivateKey(key) : key;
  const head = `${b64({ alg, typ: 'JWT', ...extraHeader })}.${b64(claims)}`;
  const hashes: Record<string, string | null> = {
    ES256: 'sha256',
    ES384: 'sha384',
    RS256: 'sha256',
    EdDSA: null,
  };
  const hash = alg in hashes ? (hashes[alg] as string | null) : 'sha256';
  const signature =
    privateKey.asymmetricKeyType === 'ec'
      ? sign(hash, Buffer.from(head), { key: privateKey, dsaEncoding: 'ieee-p1363' })
      : sign(hash, Buffer.from(head), privateKey);
  return `${head}.${signature.toString('base64url')}`;
}

export function now(): number {
  return Math.floor(Date.now() / 1000);
}
