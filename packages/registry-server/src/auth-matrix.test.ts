// The auth matrix over HTTP: for anonymous, basic and token modes, every pull,
// push and delete without the right credentials or scope is refused with
// 401/403 and the right challenge, and succeeds with them.
import { execFile } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { createRegistryClient } from '@stowage/registry-client';
import { createMemoryRegistry, pushImage, randomImage, requirePeers } from '@stowage/testing';
import bcrypt from 'bcryptjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { now, signJwt } from '../test/jwt.js';
import { type Served, serve } from '../test/serve.js';
import { createHtpasswdAuthorizer } from './auth/htpasswd.js';
import { createTokenAuthorizer } from './auth/token.js';
import type { Authorizer } from './auth/types.js';

const run = promisify(execFile);
const image = randomImage({ layers: 1 });

type Operation = 'pull' | 'push' | 'delete';

/** Runs one operation with the given Authorization header; returns the refusing response or 'ok'. */
async function attempt(served: Served, op: Operation, repository: string, authorization?: string) {
  const headers: Record<string, string> = authorization ? { authorization } : {};
  const call = (method: string, path: string, extra: Record<string, string> = {}, body?: Uint8Array) =>
    fetch(`${served.url}${path}`, {
      method,
      headers: { ...headers, ...extra },
      ...(body ? { body } : {}),
    });
  const steps: Response[] = [];
  if (op === 'pull') {
    steps.push(await call('GET', `/v2/${repository}/manifests/v1`));
  } else if (op === 'push') {
    for (const blob of image.blobs) {
      steps.push(
        await call(
          'POST',
          `/v2/${repository}/blobs/uploads/?digest=${blob.descriptor.digest}`,
          {},
          blob.bytes,
        ),
      );
      if (!steps.at(-1)?.ok) break;
    }
    if (steps.every((r) => r.ok)) {
      steps.push(
        await call(
          'PUT',
          `/v2/${repository}/manifests/v2`,
          { 'content-type': image.manifest.mediaType },
          image.manifest.bytes,
        ),
      );
    }
  } else {
    steps.push(await call('DELETE', `/v2/${repository}/manifests/v2`));
  }
  const refused = steps.find((r) => !r.ok);
  if (!refused) return 'ok' as const;
  const body = (await refused.json()) as { errors: { code: string }[] };
  return {
    status: refused.status,
    code: body.errors[0]?.code,
    challenge: refused.headers.get('www-authenticate'),
  };
}

async function withServer(authorizer: Authorizer | undefined, work: (served: Served) => Promise<void>) {
  const registry = createMemoryRegistry();
  for (const repository of ['app', 'public/app']) await pushImage(registry, repository, image, 'v1');
  const served = await serve({ registry, ...(authorizer ? { auth: authorizer } : {}) });
  try {
    await work(served);
  } finally {
    await served.close();
  }
}

describe('auth matrix', () => {
  const dirs: string[] = [];
  afterAll(async () => {
    for (const dir of dirs) await rm(dir, { recursive: true, force: true });
  });

  it('anonymous mode: pull, push and delete need nothing', async () => {
    await withServer(undefined, async (served) => {
      for (const op of ['pull', 'push', 'delete'] as const)
        expect(await attempt(served, op, 'app'), op).toBe('ok');
    });
  });

  describe('basic mode', () => {
    if (!requirePeers('htpasswd')) return;
    let users: string;
    beforeAll(async () => {
      const dir = await mkdtemp(join(tmpdir(), 'stowage-matrix-'));
      dirs.push(dir);
      await run('htpasswd', ['-B', '-b', '-c', join(dir, 'htpasswd'), 'admin', 'adminpw']);
      await run('htpasswd', ['-B', '-b', join(dir, 'htpasswd'), 'reader', 'readerpw']);
      users = await readFile(join(dir, 'htpasswd'), 'utf8');
    });
    const auth = (user: string, password: string) =>
      `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;

    it('refuses every operation without the right credentials, allows each with them', async () => {
      const authorizer = createHtpasswdAuthorizer({
        realm: 'matrix',
        users,
        rules: [
          { repository: 'public/**', anonymous: ['pull'], users: { admin: ['*'] } },
          { repository: '**', users: { admin: ['*'], reader: ['pull'] } },
        ],
      });
      await withServer(authorizer, async (served) => {
        const unauthorized = { status: 401, code: 'UNAUTHORIZED', challenge: 'Basic realm="matrix"' };
        const denied = { status: 403, code: 'DENIED', challenge: null };
        for (const op of ['pull', 'push', 'delete'] as const) {
          expect(await attempt(served, op, 'app'), `${op} anonymous`).toEqual(unauthorized);
          expect(await attempt(served, op, 'app', auth('admin', 'wrong')), `${op} wrong password`).toEqual(
            unauthorized,
          );
          expect(await attempt(served, op, 'app', auth('nobody', 'x')), `${op} unknown user`).toEqual(
            unauthorized,
          );
        }
        expect(await attempt(served, 'pull', 'app', auth('reader', 'readerpw'))).toBe('ok');
        expect(await attempt(served, 'push', 'app', auth('reader', 'readerpw'))).toEqual(denied);
        expect(await attempt(served, 'delete', 'app', auth('reader', 'readerpw'))).toEqual(denied);
        for (const op of ['pull', 'push', 'delete'] as const) {
          expect(await attempt(served, op, 'app', auth('admin', 'adminpw')), `${op} admin`).toBe('ok');
        }
        // anonymous pull of public/**, nothing more
        expect(await attempt(served, 'pull', 'public/app')).toBe('ok');
        expect(await attempt(served, 'push', 'public/app')).toEqual(unauthorized);
        // the client logs in with the challenge and pushes
        const client = createRegistryClient({
          registry: served.host,
          credentials: { username: 'admin', password: 'adminpw' },
          auth: { useConfigFiles: false },
        });
        await pushImage(client, 'via-client', randomImage(), 'v1');
        expect((await client.listTags('via-client')).items).toEqual(['v1']);
        await client.close();
      });
    });
  });

  it('token mode: no token, a narrow token or a bad token is refused with the scope to ask for', async () => {
    const keys = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const authorizer = createTokenAuthorizer({
      realm: 'https://auth.example/token',
      service: 'matrix',
      issuer: 'auth.example',
      keys: [keys.publicKey.export({ type: 'spki', format: 'pem' }).toString()],
      rules: [{ repository: 'public/**', anonymous: ['pull'] }],
    });
    const token = (actions: string[], extra: object = {}) =>
      `Bearer ${signJwt(
        {
          iss: 'auth.example',
          sub: 'ci',
          aud: 'matrix',
          exp: now() + 300,
          access: [{ type: 'repository', name: 'app', actions }],
          ...extra,
        },
        keys.privateKey,
      )}`;
    const challenge = (scope: string, insufficient = false) =>
      `Bearer realm="https://auth.example/token",service="matrix",scope="${scope}"${insufficient ? ',error="insufficient_scope"' : ''}`;
    await withServer(authorizer, async (served) => {
      const need = {
        pull: 'repository:app:pull',
        push: 'repository:app:pull,push',
        delete: 'repository:app:delete',
      };
      for (const op of ['pull', 'push', 'delete'] as const) {
        expect(await attempt(served, op, 'app'), `${op} without a token`).toEqual({
          status: 401,
          code: 'UNAUTHORIZED',
          challenge: challenge(need[op]),
        });
        expect(
          await attempt(served, op, 'app', token(['pull', 'push', 'delete'], { exp: now() - 3600 })),
        ).toEqual({
          status: 401,
          code: 'UNAUTHORIZED',
          challenge: challenge(need[op]),
        });
      }
      expect(await attempt(served, 'pull', 'app', token(['pull']))).toBe('ok');
      expect(await attempt(served, 'push', 'app', token(['pull']))).toEqual({
        status: 401,
        code: 'UNAUTHORIZED',
        challenge: challenge(need.push, true),
      });
      expect(await attempt(served, 'delete', 'app', token(['pull', 'push']))).toEqual({
        status: 401,
        code: 'UNAUTHORIZED',
        challenge: challenge(need.delete, true),
      });
      for (const op of ['pull', 'push', 'delete'] as const) {
        expect(await attempt(served, op, 'app', token(['pull', 'push', 'delete'])), op).toBe('ok');
      }
      expect(await attempt(served, 'pull', 'public/app')).toBe('ok');

      // Upload sessions: a push token (pull,push, no delete) runs and cancels its own uploads;
      // every upload route, status and cancel included, asks for pull,push.
      const pusher = token(['pull', 'push']);
      const send = (method: string, path: string, authorization?: string) =>
        fetch(`${served.url}${path}`, { method, ...(authorization ? { headers: { authorization } } : {}) });
      const started = await send('POST', '/v2/app/blobs/uploads/', pusher);
      expect(started.status).toBe(202);
      const location = started.headers.get('location') as string;
      expect((await send('GET', location, pusher)).status).toBe(204);
      for (const method of ['GET', 'DELETE']) {
        for (const [who, authorization] of [
          ['a pull token', token(['pull'])],
          ['a delete token', token(['delete'])],
        ] as const) {
          const refused = await send(method, location, authorization);
          expect(refused.status, `${method} with ${who}`).toBe(401);
          expect(refused.headers.get('www-authenticate'), `${method} with ${who}`).toBe(
            challenge('repository:app:pull,push', true),
          );
        }
      }
      expect((await send('DELETE', location, pusher)).status).toBe(204);
      expect((await send('GET', location, pusher)).status).toBe(404);

      // A mount from a repository the token cannot pull is no refusal: a plain session.
      const layer = image.blobs[0]?.descriptor.digest as string;
      const fallback = await send('POST', `/v2/app/blobs/uploads/?mount=${layer}&from=elsewhere`, pusher);
      expect(fallback.status).toBe(202);
      expect(fallback.headers.get('location')).toMatch(/^\/v2\/app\/blobs\/uploads\/.+/);
      // ... and one from a repository anyone may pull mounts
      const mounted = await send('POST', `/v2/app/blobs/uploads/?mount=${layer}&from=public/app`, pusher);
      expect(mounted.status).toBe(201);
    });
  });

  it('users named like Object.prototype members get their own decisions, never a 500', async () => {
    const odd = ['constructor', 'toString', '__proto__', 'hasOwnProperty', 'valueOf', 'isPrototypeOf'];
    const users = new Map([...odd, 'alice'].map((user) => [user, bcrypt.hashSync(`${user}-pw`, 4)]));
    // `__proto__` as an own key, the way JSON and YAML configs hand it over
    const grants = JSON.parse('{"__proto__": ["pull", "push"], "constructor": ["pull"]}') as Record<
      string,
      string[]
    >;
    const authorizer = createHtpasswdAuthorizer({
      realm: 'matrix',
      users,
      rules: [
        { repository: 'team/**', authenticated: ['pull'], users: { alice: ['*'] } },
        { repository: 'grants/**', users: grants },
      ],
    });
    const registry = createMemoryRegistry();
    for (const repository of ['team/app', 'grants/app']) await pushImage(registry, repository, image, 'v1');
    const served = await serve({ registry, auth: authorizer });
    const login = (user: string) => `Basic ${Buffer.from(`${user}:${user}-pw`).toString('base64')}`;
    const denied = { status: 403, code: 'DENIED', challenge: null };
    try {
      for (const user of odd) {
        expect(await attempt(served, 'pull', 'team/app', login(user)), `${user} pull team`).toBe('ok');
        expect(await attempt(served, 'push', 'team/app', login(user)), `${user} push team`).toEqual(denied);
        expect(await attempt(served, 'delete', 'team/app', login(user)), `${user} delete`).toEqual(denied);
      }
      expect(await attempt(served, 'push', 'team/app', login('alice'))).toBe('ok');
      // the grants keyed by those names are theirs, and nobody else's
      expect(await attempt(served, 'push', 'grants/app', login('__proto__'))).toBe('ok');
      expect(await attempt(served, 'pull', 'grants/app', login('constructor'))).toBe('ok');
      expect(await attempt(served, 'push', 'grants/app', login('constructor'))).toEqual(denied);
      for (const user of ['toString', 'hasOwnProperty', 'valueOf', 'alice']) {
        expect(await attempt(served, 'pull', 'grants/app', login(user)), `${user} pull grants`).toEqual(
          denied,
        );
      }
    } finally {
      await served.close();
      await (authorizer as { close?: () => Promise<void> }).close?.();
    }
  });
});
