import { execFile } from 'node:child_process';
import {
  constants,
  createHmac,
  createPrivateKey,
  createSecretKey,
  generateKeyPairSync,
  type KeyObject,
  type SignKeyObjectInput,
  type SignPrivateKeyInput,
  sign,
} from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { isStowageError, type StowageError } from '@stowage/oci';
import { requirePeers } from '@stowage/testing';
import bcrypt from 'bcryptjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { now, signJwt } from '../../test/jwt.js';
import { createRulesAuthorizer } from './anonymous.js';
import { createHtpasswdAuthorizer, parseHtpasswd } from './htpasswd.js';
import { allowedActions, matchesRepository } from './rules.js';
import { createTokenAuthorizer } from './token.js';
import type { Access } from './types.js';

const run = promisify(execFile);
const dirs: string[] = [];
afterAll(async () => {
  for (const dir of dirs) await rm(dir, { recursive: true, force: true });
});

const pull = (name: string): Access[] => [{ type: 'repository', name, actions: ['pull'] }];
const push = (name: string): Access[] => [{ type: 'repository', name, actions: ['pull', 'push'] }];
const basic = (user: string, password: string) => ({
  headers: { authorization: `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}` },
});
const bearer = (token: string) => ({ headers: { authorization: `Bearer ${token}` } });
const none = { headers: {} };

describe('access rules', () => {
  it('match repository globs', () => {
    const table: [string, string, boolean][] = [
      ['public/**', 'public', true],
      ['public/**', 'public/a', true],
      ['public/**', 'public/a/b', true],
      ['public/**', 'publicity', false],
      ['*', 'a', true],
      ['*', 'a/b', false],
      ['team/*/app', 'team/x/app', true],
      ['team/*/app', 'team/x/y/app', false],
      ['**/cache', 'cache', true],
      ['**/cache', 'a/b/cache', true],
      ['**', 'anything/at/all', true],
      ['a.b', 'axb', false],
    ];
    for (const [pattern, name, expected] of table)
      expect(matchesRepository(pattern, name), `${pattern} ${name}`).toBe(expected);
  });

  it('give the first matching rule the say', () => {
    const rules = [
      { repository: 'public/**', anonymous: ['pull'], authenticated: ['push'], users: { admin: ['delete'] } },
      { repository: '**', users: { admin: ['*'] } },
    ];
    expect([...(allowedActions(rules, 'public/x', undefined) ?? [])]).toEqual(['pull']);
    expect([...(allowedActions(rules, 'public/x', 'bob') ?? [])].sort()).toEqual(['pull', 'push']);
    expect([...(allowedActions(rules, 'public/x', 'admin') ?? [])].sort()).toEqual([
      'delete',
      'pull',
      'push',
    ]);
    expect([...(allowedActions(rules, 'private', 'admin') ?? [])].sort()).toEqual([
      '*',
      'delete',
      'pull',
      'push',
    ]);
    expect(allowedActions([], 'x', 'bob')).toBeUndefined();
  });

  it('look users up as own keys only, whatever their names', () => {
    const users = JSON.parse('{"__proto__": ["push"], "alice": ["delete"]}') as Record<string, string[]>;
    const rules = [{ repository: '**', authenticated: ['pull'], users }];
    for (const subject of ['constructor', 'toString', 'hasOwnProperty', 'valueOf', '__defineGetter__']) {
      expect([...(allowedActions(rules, 'x', subject) ?? [])], subject).toEqual(['pull']);
    }
    expect([...(allowedActions(rules, 'x', '__proto__') ?? [])].sort()).toEqual(['pull', 'push']);
    expect([...(allowedActions(rules, 'x', 'alice') ?? [])].sort()).toEqual(['delete', 'pull']);
  });

  it('restrict anonymous use when no credentials exist at all', async () => {
    const authorizer = createRulesAuthorizer([{ repository: 'mirror/**', anonymous: ['pull'] }]);
    expect((await authorizer.authorize(none, pull('mirror/a'))).ok).toBe(true);
    const denied = await authorizer.authorize(none, push('mirror/a'));
    expect(denied).toMatchObject({ ok: false, status: 403, code: 'DENIED' });
    expect((await authorizer.authorize(none, push('other'))).ok).toBe(true);
  });
});

describe('htpasswd basic auth', () => {
  if (!requirePeers('htpasswd')) return;

  let file: string;
  beforeAll(async () => {
    const dir = await mkdtemp(join(tmpdir(), 'stowage-htpasswd-'));
    dirs.push(dir);
    file = join(dir, 'htpasswd');
    await run('htpasswd', ['-B', '-b', '-c', file, 'alice', 'secret']);
    await run('htpasswd', ['-B', '-b', file, 'bob', 'hunter2']);
  });

  it('accepts right passwords from a file made by htpasswd -B, refuses the rest with a challenge', async () => {
    const authorizer = createHtpasswdAuthorizer({
      realm: 'stowage',
      users: await readFile(file, 'utf8'),
      rules: [
        { repository: 'public/**', anonymous: ['pull'], users: { alice: ['*'] }, authenticated: ['pull'] },
      ],
    });
    expect(await authorizer.authorize(basic('alice', 'secret'), push('app'))).toEqual({
      ok: true,
      principal: { subject: 'alice' },
    });
    // cached: the second check does not need bcrypt, and still refuses a wrong password
    expect((await authorizer.authorize(basic('alice', 'secret'), push('app'))).ok).toBe(true);
    for (const request of [
      basic('alice', 'wrong'),
      basic('mallory', 'secret'),
      none,
      { headers: { authorization: 'Basic !!!' } },
      { headers: { authorization: `Basic ${Buffer.from('nocolon').toString('base64')}` } },
      { headers: { authorization: 'Bearer abc' } },
    ]) {
      expect(await authorizer.authorize(request, push('app'))).toMatchObject({
        ok: false,
        status: 401,
        code: 'UNAUTHORIZED',
        challenge: 'Basic realm="stowage"',
      });
    }
    // rules: anonymous pull on public/**, not push; bob may pull but not push there
    expect((await authorizer.authorize(none, pull('public/x'))).ok).toBe(true);
    expect((await authorizer.authorize(none, push('public/x'))).ok).toBe(false);
    expect(await authorizer.authorize(basic('bob', 'hunter2'), push('public/x'))).toMatchObject({
      ok: false,
      status: 403,
      code: 'DENIED',
    });
    expect((await authorizer.authorize(basic('alice', 'secret'), push('public/x'))).ok).toBe(true);
    // the ping needs credentials
    expect((await authorizer.authorize(none, [])).ok).toBe(false);
  });

  it('refuses hashes other than bcrypt and malformed files with typed errors', () => {
    for (const text of ['alice:$apr1$abc$def', 'alice:{SHA}abc=', 'no-colon-here', 'alice:']) {
      let caught: unknown;
      try {
        parseHtpasswd(text);
      } catch (error) {
        caught = error;
      }
      expect(isStowageError(caught, 'AUTH_CONFIG_INVALID'), text).toBe(true);
    }
    expect(parseHtpasswd('# comment\n\n').size).toBe(0);
  });
});

describe('token auth', () => {
  const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const ed = generateKeyPairSync('ed25519');
  const other = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const pem = (key: typeof ec.publicKey) => key.export({ type: 'spki', format: 'pem' }).toString();
  const authorizer = createTokenAuthorizer({
    realm: 'https://auth.example/token',
    service: 'registry.example',
    issuer: 'auth.example',
    keys: [pem(ec.publicKey), pem(rsa.publicKey), pem(ed.publicKey)],
    rules: [{ repository: 'public/**', anonymous: ['pull'] }],
  });
  const good = (access: { type: string; name: string; actions: string[] }[], extra: object = {}) => ({
    iss: 'auth.example',
    sub: 'alice',
    aud: 'registry.example',
    exp: now() + 300,
    nbf: now() - 10,
    access,
    ...extra,
  });
  const appPull = [{ type: 'repository', name: 'app', actions: ['pull'] }];

  it('puts only valid names into the scope of a challenge, and nothing a header cannot carry', async () => {
    for (const name of ['x\u0000', 'x\r\nX-Injected: yes', 'x\u007f', 'x\u0100', 'UPPER', '../x', 'a"b']) {
      const decision = await authorizer.authorize(none, pull(name));
      expect(decision, JSON.stringify(name)).toMatchObject({ ok: false, status: 401 });
      const challenge = (decision as { challenge: string }).challenge;
      expect(challenge).toBe('Bearer realm="https://auth.example/token",service="registry.example"');
    }
    const both = await authorizer.authorize(none, [...pull('x\u0000'), ...pull('good/name')]);
    expect((both as { challenge: string }).challenge).toContain('scope="repository:good/name:pull"');
    const odd = createTokenAuthorizer({
      realm: 'https://auth.example/t\u00f6ken\r\n"x"',
      service: 'reg\u0000istry',
      issuer: 'auth.example',
      keys: [pem(ec.publicKey)],
    });
    const refused = (await odd.authorize(none, pull('app'))) as { challenge: string };
    expect(refused.challenge).toBe(
      'Bearer realm="https://auth.example/tkenx",service="registry",scope="repository:app:pull"',
    );
  });

  it('accepts tokens signed by a configured key whose access covers the request', async () => {
    for (const [key, alg] of [
      [ec.privateKey, 'ES256'],
      [rsa.privateKey, 'RS256'],
      [ed.privateKey, 'EdDSA'],
    ] as const) {
      const decision = await authorizer.authorize(bearer(signJwt(good(appPull), key, alg)), pull('app'));
      expect(decision, alg).toEqual({ ok: true, principal: { subject: 'alice' } });
    }
    const catalog = signJwt(good([{ type: 'registry', name: 'catalog', actions: ['*'] }]), ec.privateKey);
    expect(
      (await authorizer.authorize(bearer(catalog), [{ type: 'registry', name: 'catalog', actions: ['*'] }]))
        .ok,
    ).toBe(true);
    const audiences = signJwt(good(appPull, { aud: ['other', 'registry.example'] }), ec.privateKey);
    expect((await authorizer.authorize(bearer(audiences), pull('app'))).ok).toBe(true);
  });

  it('refuses bad tokens with a Bearer challenge naming the scope', async () => {
    const hs256 = (() => {
      const head = `${Buffer.from(JSON.stringify({ alg: 'HS256' })).toString('base64url')}.${Buffer.from(JSON.stringify(good(appPull))).toString('base64url')}`;
      return `${head}.${createHmac('sha256', pem(ec.publicKey)).update(head).digest('base64url')}`;
    })();
    const unsigned = `${Buffer.from('{"alg":"none"}').toString('base64url')}.${Buffer.from(JSON.stringify(good(appPull))).toString('base64url')}.`;
    const bad = {
      expired: signJwt(good(appPull, { exp: now() - 3600 }), ec.privateKey),
      'not yet valid': signJwt(good(appPull, { nbf: now() + 3600 }), ec.privateKey),
      'wrong issuer': signJwt(good(appPull, { iss: 'evil' }), ec.privateKey),
      'wrong audience': signJwt(good(appPull, { aud: 'elsewhere' }), ec.privateKey),
      'unknown key': signJwt(good(appPull), other.privateKey),
      'alg none': unsigned,
      'HS256 with the public key as secret': hs256,
      'ES256 header on an RSA signature': signJwt(good(appPull), rsa.privateKey, 'ES256'),
      garbage: 'a.b.c',
      'not a jwt': 'token',
    };
    for (const [what, token] of Object.entries(bad)) {
      const decision = await authorizer.authorize(bearer(token), pull('app'));
      expect(decision, what).toMatchObject({
        ok: false,
        status: 401,
        code: 'UNAUTHORIZED',
        challenge:
          'Bearer realm="https://auth.example/token",service="registry.example",scope="repository:app:pull"',
      });
    }
  });

  it('asks for a wider token when the scope is not enough, and lets anonymous pull public/**', async () => {
    const decision = await authorizer.authorize(bearer(signJwt(good(appPull), ec.privateKey)), push('app'));
    expect(decision).toMatchObject({
      ok: false,
      status: 401,
      challenge:
        'Bearer realm="https://auth.example/token",service="registry.example",scope="repository:app:pull,push",error="insufficient_scope"',
    });
    expect((await authorizer.authorize(none, pull('public/app'))).ok).toBe(true);
    expect((await authorizer.authorize(none, push('public/app'))).ok).toBe(false);
    const catalog = await authorizer.authorize(none, [{ type: 'registry', name: 'catalog', actions: ['*'] }]);
    expect(catalog).toMatchObject({
      ok: false,
      challenge: expect.stringContaining('scope="registry:catalog:*"'),
    });
  });

  it('verifies an x5c chain to a configured root certificate (openssl-made CA and leaf)', async () => {
    if (!requirePeers('openssl')) return;
    const dir = await mkdtemp(join(tmpdir(), 'stowage-x5c-'));
    dirs.push(dir);
    const ssl = (...args: string[]) => run('openssl', args, { cwd: dir });
    await ssl('ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', 'ca.key');
    await ssl(
      'req',
      '-x509',
      '-new',
      '-key',
      'ca.key',
      '-subj',
      '/CN=test-ca',
      '-days',
      '2',
      '-out',
      'ca.pem',
    );
    await ssl('ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', 'leaf.key');
    await ssl('req', '-new', '-key', 'leaf.key', '-subj', '/CN=token-signer', '-out', 'leaf.csr');
    await ssl(
      'x509',
      '-req',
      '-in',
      'leaf.csr',
      '-CA',
      'ca.pem',
      '-CAkey',
      'ca.key',
      '-CAcreateserial',
      '-days',
      '2',
      '-out',
      'leaf.pem',
    );
    const leafPem = await readFile(join(dir, 'leaf.pem'), 'utf8');
    const leafDer = leafPem.replace(/-----[^-]+-----|\s/g, '');
    const chained = createTokenAuthorizer({
      realm: 'r',
      service: 'registry.example',
      issuer: 'auth.example',
      keys: [await readFile(join(dir, 'ca.pem'), 'utf8')],
    });
    const leafKey = await readFile(join(dir, 'leaf.key'), 'utf8');
    const token = signJwt(good(appPull), leafKey, 'ES256', { x5c: [leafDer] });
    expect((await chained.authorize(bearer(token), pull('app'))).ok).toBe(true);
    // a self-made certificate that does not chain to the root is refused
    await ssl(
      'req',
      '-x509',
      '-new',
      '-key',
      'leaf.key',
      '-subj',
      '/CN=rogue',
      '-days',
      '2',
      '-out',
      'rogue.pem',
    );
    const rogueDer = (await readFile(join(dir, 'rogue.pem'), 'utf8')).replace(/-----[^-]+-----|\s/g, '');
    const rogue = signJwt(good(appPull), leafKey, 'ES256', { x5c: [rogueDer] });
    expect((await chained.authorize(bearer(rogue), pull('app'))).ok).toBe(false);
  });
});

/** Signs a JWT with any algorithm the authorizer knows (test/jwt.ts covers ES256, RS256, EdDSA). */
function jwt(claims: object, key: KeyObject, alg: string, header: Record<string, unknown> = {}): string {
  const head = `${b64url({ alg, typ: 'JWT', ...header })}.${b64url(claims)}`;
  const bits = alg.slice(2);
  const hash = alg === 'EdDSA' ? null : `sha${bits}`;
  const options: SignKeyObjectInput | SignPrivateKeyInput = alg.startsWith('ES')
    ? { key, dsaEncoding: 'ieee-p1363' }
    : alg.startsWith('PS')
      ? { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: constants.RSA_PSS_SALTLEN_DIGEST }
      : { key };
  return `${head}.${sign(hash, Buffer.from(head), options).toString('base64url')}`;
}
const b64url = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');

function configError(make: () => unknown): StowageError | undefined {
  try {
    make();
  } catch (error) {
    if (isStowageError(error, 'AUTH_CONFIG_INVALID')) return error;
    throw error;
  }
  return undefined;
}

describe('htpasswd configuration', () => {
  const alice = bcrypt.hashSync('secret', 4);

  it('names the line of a malformed or non-bcrypt entry', () => {
    const malformed = configError(() => parseHtpasswd(`# users\n\nalice:${alice}\nbroken line\n`));
    expect(malformed?.message).toContain('line 4');
    expect(malformed?.details).toMatchObject({ line: 4 });
    const md5 = configError(() =>
      parseHtpasswd(`alice:${alice}\nbob:$apr1$x8/rG1Kv$Gq9vWQlXcYJzQ1Tq8bqxB0\n`),
    );
    expect(md5?.message).toMatch(/line 2 \(bob\).*\$apr1\$/);
    expect(parseHtpasswd(`\r\n# c\r\nalice:${alice}\r\n`)).toEqual(new Map([['alice', alice]]));
  });

  it('refuses other hash kinds at creation, from text or from a map', () => {
    for (const hash of [
      '$apr1$x8/rG1Kv$Gq9vWQlXcYJzQ1Tq8bqxB0',
      '{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=',
      'rl4XpLm4pIhXk', // crypt
      '$6$salt$hash', // sha512-crypt
      `$2y$99$${'a'.repeat(53)}`, // bcrypt-shaped, a cost bcryptjs throws on
      'plain',
    ]) {
      expect(
        configError(() => createHtpasswdAuthorizer({ realm: 'r', users: new Map([['u', hash]]) })),
        hash,
      ).toBeDefined();
      expect(
        configError(() => createHtpasswdAuthorizer({ realm: 'r', users: `u:${hash}\n` })),
        hash,
      ).toBeDefined();
    }
  });

  it('takes a map, shares one bcrypt run between concurrent requests, and never throws', async () => {
    const authorizer = createHtpasswdAuthorizer({ realm: 'r', users: new Map([['alice', alice]]) });
    const decisions = await Promise.all(
      Array.from({ length: 8 }, () => authorizer.authorize(basic('alice', 'secret'), push('app'))),
    );
    expect(decisions.every((d) => d.ok)).toBe(true);
    expect((await authorizer.authorize(basic('alice', 'x'.repeat(200)), push('app'))).ok).toBe(false);
    const empty = createHtpasswdAuthorizer({ realm: 'r', users: new Map() });
    expect(await empty.authorize(basic('alice', 'secret'), push('app'))).toMatchObject({ status: 401 });
  });
});

describe('token algorithms and keys', () => {
  const p256 = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const p384 = generateKeyPairSync('ec', { namedCurve: 'P-384' });
  const p521 = generateKeyPairSync('ec', { namedCurve: 'P-521' });
  const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const ed448 = generateKeyPairSync('ed448');
  const k256 = generateKeyPairSync('ec', { namedCurve: 'secp256k1' });
  const claims = (extra: object = {}) => ({
    iss: 'iss',
    sub: 'alice',
    aud: ['other', 'svc'],
    exp: now() + 60,
    access: [{ type: 'repository', name: 'app', actions: ['pull', 'push'] }],
    ...extra,
  });
  const options = { realm: 'https://auth/token', service: 'svc', issuer: 'iss' };
  const authorizer = createTokenAuthorizer({
    ...options,
    keys: [p256.publicKey, p384.publicKey, p521.publicKey, rsa.publicKey, ed448.publicKey, k256.publicKey],
  });
  const ok = async (token: string) => (await authorizer.authorize(bearer(token), pull('app'))).ok;

  it('accepts every asymmetric algorithm with its own key type and curve', async () => {
    const cases: [KeyObject, string][] = [
      [p256.privateKey, 'ES256'],
      [p384.privateKey, 'ES384'],
      [p521.privateKey, 'ES512'],
      [rsa.privateKey, 'RS256'],
      [rsa.privateKey, 'RS384'],
      [rsa.privateKey, 'RS512'],
      [rsa.privateKey, 'PS256'],
      [rsa.privateKey, 'PS384'],
      [rsa.privateKey, 'PS512'],
      [ed448.privateKey, 'EdDSA'],
    ];
    for (const [key, alg] of cases) expect(await ok(jwt(claims(), key, alg)), alg).toBe(true);
  });

  it('refuses algorithms that do not match the key, and unknown header extensions', async () => {
    const refused: Record<string, string> = {
      'ES384 by a P-256 key': jwt(claims(), p256.privateKey, 'ES384'),
      'ES256 by a P-384 key': jwt(claims(), p384.privateKey, 'ES256'),
      'ES256 by a secp256k1 key (ES256K)': jwt(claims(), k256.privateKey, 'ES256'),
      'PS256 header, PKCS#1 v1.5 signature': jwt(claims(), rsa.privateKey, 'RS256').replace(
        /^[^.]+/,
        b64url({ alg: 'PS256' }),
      ),
      'RS256 header, PSS signature': jwt(claims(), rsa.privateKey, 'PS256').replace(
        /^[^.]+/,
        b64url({ alg: 'RS256' }),
      ),
      'prototype name as alg': jwt(claims(), p256.privateKey, 'ES256', { alg: 'constructor' }),
      crit: jwt(claims(), p256.privateKey, 'ES256', { crit: ['exp'] }),
      'payload not an object': `${b64url({ alg: 'EdDSA' })}.${b64url([1])}.${sign(
        null,
        Buffer.from(`${b64url({ alg: 'EdDSA' })}.${b64url([1])}`),
        ed448.privateKey,
      ).toString('base64url')}`,
      'nbf not a number': jwt(claims({ nbf: 'soon' }), p256.privateKey, 'ES256'),
      'no exp': jwt(claims({ exp: undefined }), p256.privateKey, 'ES256'),
      'no aud': jwt(claims({ aud: undefined }), p256.privateKey, 'ES256'),
    };
    for (const [what, token] of Object.entries(refused)) expect(await ok(token), what).toBe(false);
    // within the leeway, a little expired or a little early still passes
    expect(await ok(jwt(claims({ exp: now() - 30, nbf: now() + 30 }), p256.privateKey, 'ES256'))).toBe(true);
    const strict = createTokenAuthorizer({ ...options, keys: [p256.publicKey], leewaySeconds: 0 });
    const late = jwt(claims({ exp: now() - 30 }), p256.privateKey, 'ES256');
    expect((await strict.authorize(bearer(late), pull('app'))).ok).toBe(false);
  });

  it('checks a token naming a kid with that key only, when keys are named', async () => {
    const named = createTokenAuthorizer({ ...options, keys: { ec: p256.publicKey, rsa: rsa.publicKey } });
    const decide = async (token: string) => (await named.authorize(bearer(token), pull('app'))).ok;
    expect(await decide(jwt(claims(), p256.privateKey, 'ES256', { kid: 'ec' }))).toBe(true);
    expect(await decide(jwt(claims(), p256.privateKey, 'ES256', { kid: 'rsa' }))).toBe(false);
    expect(await decide(jwt(claims(), p256.privateKey, 'ES256', { kid: 'nope' }))).toBe(false);
    expect(await decide(jwt(claims(), rsa.privateKey, 'RS256'))).toBe(true);
  });

  it('refuses keys that cannot verify tokens at creation', () => {
    for (const keys of [
      ['not a key'],
      ['-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n'],
      [createSecretKey(Buffer.from('hmac secret'))],
      [],
    ]) {
      expect(
        configError(() => createTokenAuthorizer({ ...options, keys })),
        String(keys[0]),
      ).toBeDefined();
    }
    // a private key is taken for its public half
    expect(() => createTokenAuthorizer({ ...options, keys: [p256.privateKey] })).not.toThrow();
  });

  it('builds one challenge scope per need, lets rules meet needs the token does not, answers the ping', async () => {
    const withRules = createTokenAuthorizer({
      ...options,
      keys: [p256.publicKey],
      rules: [{ repository: 'public/**', anonymous: ['pull'] }],
    });
    const mount: Access[] = [
      { type: 'repository', name: 'app', actions: ['pull', 'push'] },
      { type: 'repository', name: 'base/os', actions: ['pull'] },
    ];
    const token = jwt(claims(), p256.privateKey, 'ES256');
    expect(await withRules.authorize(bearer(token), mount)).toMatchObject({
      status: 401,
      challenge:
        'Bearer realm="https://auth/token",service="svc",scope="repository:app:pull,push repository:base/os:pull",error="insufficient_scope"',
    });
    const fromPublic: Access[] = [
      mount[0] as Access,
      { type: 'repository', name: 'public/os', actions: ['pull'] },
    ];
    expect((await withRules.authorize(bearer(token), fromPublic)).ok).toBe(true);
    expect(await withRules.authorize(bearer(token), [])).toEqual({
      ok: true,
      principal: { subject: 'alice' },
    });
    expect(await withRules.authorize(none, [])).toMatchObject({
      status: 401,
      challenge: 'Bearer realm="https://auth/token",service="svc"',
    });
    const star = jwt(
      claims({ access: [{ type: 'repository', name: 'app', actions: ['*'] }] }),
      p256.privateKey,
      'ES256',
    );
    expect((await withRules.authorize(bearer(star), push('app'))).ok).toBe(true);
    expect((await withRules.authorize(bearer(star), push('app2'))).ok).toBe(false);
  });
});

describe('x5c chains with an intermediate', () => {
  if (!requirePeers('openssl')) return;

  it('accepts leaf ← intermediate CA ← configured root, refuses a leaf posing as an intermediate', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'stowage-x5c-chain-'));
    dirs.push(dir);
    const ssl = (...args: string[]) => run('openssl', args, { cwd: dir });
    const der = async (file: string) =>
      (await readFile(join(dir, file), 'utf8')).replace(/-----[^-]+-----|\s/g, '');
    for (const name of ['root', 'inter', 'leaf', 'sub']) {
      await ssl('ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', `${name}.key`);
    }
    await ssl(
      'req',
      '-x509',
      '-new',
      '-key',
      'root.key',
      '-subj',
      '/CN=root',
      '-days',
      '2',
      '-out',
      'root.pem',
    );
    await writeFile(
      join(dir, 'ca.ext'),
      'basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign\n',
    );
    const issue = async (name: string, ca: string, extensions: string[] = []) => {
      await ssl('req', '-new', '-key', `${name}.key`, '-subj', `/CN=${name}`, '-out', `${name}.csr`);
      await ssl(
        ...['x509', '-req', '-in', `${name}.csr`, '-CA', `${ca}.pem`, '-CAkey', `${ca}.key`],
        ...['-CAcreateserial', '-days', '2', ...extensions, '-out', `${name}.pem`],
      );
    };
    await issue('inter', 'root', ['-extfile', 'ca.ext']);
    await issue('leaf', 'inter');
    await issue('sub', 'leaf'); // issued by a certificate that is not a CA
    const chained = createTokenAuthorizer({
      realm: 'r',
      service: 'svc',
      issuer: 'iss',
      keys: [await readFile(join(dir, 'root.pem'), 'utf8')],
    });
    const claims = {
      iss: 'iss',
      aud: 'svc',
      exp: now() + 60,
      access: [{ type: 'repository', name: 'app', actions: ['pull'] }],
    };
    const key = (name: string) =>
      readFile(join(dir, `${name}.key`), 'utf8').then((pem) => createPrivateKey(pem));
    const decide = async (signer: string, x5c: string[]) =>
      (await chained.authorize(bearer(jwt(claims, await key(signer), 'ES256', { x5c })), pull('app'))).ok;
    expect(await decide('leaf', [await der('leaf.pem'), await der('inter.pem')])).toBe(true);
    expect(await decide('leaf', [await der('leaf.pem')])).toBe(false); // the intermediate is missing
    expect(await decide('sub', [await der('sub.pem'), await der('leaf.pem'), await der('inter.pem')])).toBe(
      false,
    );
    expect(await decide('inter', [await der('leaf.pem'), await der('inter.pem')])).toBe(false); // wrong key
    expect(await decide('leaf', ['not base64 der'])).toBe(false);
  });
});
