import { execFile } from 'node:child_process';
import { generateKeyPairSync, sign } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { requirePeers } from '@stowage/testing';
import { afterAll, describe, expect, it } from 'vitest';
import { buildAuthorizer } from './auth.js';
import { loadConfig } from './config.js';

const run = promisify(execFile);
const dirs: string[] = [];
afterAll(async () => {
  for (const dir of dirs) await rm(dir, { recursive: true, force: true });
});
const pull = [{ type: 'repository' as const, name: 'app', actions: ['pull'] }];

describe('the authorizer the configuration asks for', () => {
  it('is anonymous by default, rules-only with access rules alone', async () => {
    expect(await buildAuthorizer(await loadConfig())).toBeUndefined();
    const rules = await buildAuthorizer(
      await loadConfig({ overrides: { access: [{ repository: 'app', anonymous: ['pull'] }] } }),
    );
    expect((await rules?.authorize({ headers: {} }, pull))?.ok).toBe(true);
    const push = [{ type: 'repository' as const, name: 'app', actions: ['pull', 'push'] }];
    expect((await rules?.authorize({ headers: {} }, push))?.ok).toBe(false);
  });

  it('reads an htpasswd file made by htpasswd -B', async () => {
    if (!requirePeers('htpasswd')) return;
    const dir = await mkdtemp(join(tmpdir(), 'stowage-app-auth-'));
    dirs.push(dir);
    await run('htpasswd', ['-B', '-b', '-c', join(dir, 'htpasswd'), 'alice', 'pw']);
    const authorizer = await buildAuthorizer(
      await loadConfig({ overrides: { auth: { htpasswd: { realm: 'r', path: join(dir, 'htpasswd') } } } }),
    );
    const header = { authorization: `Basic ${Buffer.from('alice:pw').toString('base64')}` };
    expect((await authorizer?.authorize({ headers: header }, pull))?.ok).toBe(true);
    expect(await authorizer?.authorize({ headers: {} }, pull)).toMatchObject({
      status: 401,
      challenge: 'Basic realm="r"',
    });
  });

  it('reads the token issuer keys from rootcertbundle', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'stowage-app-token-'));
    dirs.push(dir);
    const keys = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    await writeFile(
      join(dir, 'bundle.pem'),
      keys.publicKey.export({ type: 'spki', format: 'pem' }).toString(),
    );
    const authorizer = await buildAuthorizer(
      await loadConfig({
        overrides: {
          auth: {
            token: {
              realm: 'https://auth/token',
              service: 'reg',
              issuer: 'auth',
              rootcertbundle: join(dir, 'bundle.pem'),
            },
          },
        },
      }),
    );
    const part = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');
    const head = `${part({ alg: 'ES256' })}.${part({ iss: 'auth', aud: 'reg', exp: Date.now() / 1000 + 60, access: [{ type: 'repository', name: 'app', actions: ['pull'] }] })}`;
    const signature = sign('sha256', Buffer.from(head), { key: keys.privateKey, dsaEncoding: 'ieee-p1363' });
    const token = `${head}.${signature.toString('base64url')}`;
    expect((await authorizer?.authorize({ headers: { authorization: `Bearer ${token}` } }, pull))?.ok).toBe(
      true,
    );
    expect(await authorizer?.authorize({ headers: {} }, pull)).toMatchObject({
      status: 401,
      challenge: 'Bearer realm="https://auth/token",service="reg",scope="repository:app:pull"',
    });
  });
});
