import { execFile } from 'node:child_process';
import { createHmac, generateKeyPairSync } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { isStowageError } from '@stowage/oci';
import { requirePeers } from '@stowage/testing';
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
