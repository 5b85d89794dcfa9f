// The web UI's server side: its files at /ui/ (compressed, cached, with a
// strict content security policy), and sessions that give the page's API
// requests the user's credentials, so the API's own authorization decides
// everything; changes need the session's CSRF token.
import { execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { createRegistryClient } from '@stowage/registry-client';
import { pushImage, randomImage, requirePeers } from '@stowage/testing';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildAuthorizer } from './auth.js';
import { loadConfig } from './config.js';
import { type RunningServer, startServer } from './server.js';

const dirs: string[] = [];
const servers: RunningServer[] = [];
afterAll(async () => {
  for (const server of servers) await server.close();
  for (const dir of dirs) await rm(dir, { recursive: true, force: true });
});

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'stowage-ui-'));
  dirs.push(dir);
  return dir;
}

/** A built UI stand-in: the server serves whatever files the directory holds. */
async function fakeUi(): Promise<string> {
  const dir = await tempDir();
  await mkdir(join(dir, 'assets'));
  await writeFile(
    join(dir, 'index.html'),
    `<!doctype html><title>stowage</title>${'<p>hello</p>'.repeat(200)}`,
  );
  await writeFile(join(dir, 'assets', 'app-1234.js'), 'console.log("ui");\n');
  return dir;
}

async function start(overrides: Record<string, unknown> = {}): Promise<RunningServer> {
  const config = await loadConfig({
    overrides: {
      'storage.filesystem.rootdirectory': await tempDir(),
      'http.addr': '127.0.0.1:0',
      ...overrides,
    },
  });
  const auth = await buildAuthorizer(config);
  const running = await startServer(config, {
    logger: pino({ level: 'silent' }),
    uiDirectory: await fakeUi(),
    ...(auth ? { auth } : {}),
  });
  servers.push(running);
  return running;
}

describe('the UI files', () => {
  let server: RunningServer;
  beforeAll(async () => {
    server = await start();
  });

  it('serves index.html at /ui/ with a strict content security policy, gzipped when asked', async () => {
    const moved = await fetch(`${server.url}/ui`, { redirect: 'manual' });
    expect([moved.status, moved.headers.get('location')]).toEqual([308, '/ui/']);
    const page = await fetch(`${server.url}/ui/`, { headers: { 'accept-encoding': 'identity' } });
    expect(page.status).toBe(200);
    expect(page.headers.get('content-type')).toBe('text/html; charset=utf-8');
    expect(page.headers.get('content-security-policy')).toMatch(/default-src 'self'.*frame-ancestors 'none'/);
    expect(page.headers.get('x-content-type-options')).toBe('nosniff');
    expect(page.headers.get('cache-control')).toBe('no-cache');
    const text = await page.text();
    expect(text).toMatch(/^<!doctype html>/);
    // undici's fetch decodes gzip itself: ask with a raw request to see the bytes on the wire
    const { request } = await import('node:http');
    const wire = await new Promise<{ encoding?: string; bytes: Buffer }>((resolve, reject) => {
      request(`${server.url}/ui/`, { headers: { 'accept-encoding': 'gzip' } }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () =>
          resolve({
            ...(res.headers['content-encoding'] ? { encoding: res.headers['content-encoding'] } : {}),
            bytes: Buffer.concat(chunks),
          }),
        );
      })
        .on('error', reject)
        .end();
    });
    expect(wire.encoding).toBe('gzip');
    expect(wire.bytes.byteLength).toBeLessThan(Buffer.byteLength(text));
    expect(gunzipSync(wire.bytes).toString()).toBe(text);
    const etag = page.headers.get('etag') as string;
    expect((await fetch(`${server.url}/ui/`, { headers: { 'if-none-match': etag } })).status).toBe(304);
  });

  it('caches hashed assets for good, and finds nothing outside the built files', async () => {
    const asset = await fetch(`${server.url}/ui/assets/app-1234.js`);
    expect([asset.status, asset.headers.get('cache-control'), await asset.text()]).toEqual([
      200,
      'public, max-age=31536000, immutable',
      'console.log("ui");\n',
    ]);
    for (const path of [
      '/ui/nope.js',
      '/ui/../package.json',
      '/ui/%2e%2e/package.json',
      '/ui/%E0%A4%A',
      '/ui/assets',
    ]) {
      expect((await fetch(`${server.url}${path}`)).status, path).toBe(404);
    }
    expect((await fetch(`${server.url}/ui/`, { method: 'POST' })).status).toBe(405);
  });

  it('with no users, everyone browses anonymously and may do what the API allows', async () => {
    expect(await (await fetch(`${server.url}/ui/api/session`)).json()).toEqual({
      user: null,
      csrf: null,
      login: 'none',
    });
    expect(await (await fetch(`${server.url}/ui/api/access?repository=app`)).json()).toEqual({
      actions: ['pull', 'push', 'delete'],
    });
    const login = await fetch(`${server.url}/ui/api/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ username: 'a', password: 'b' }),
    });
    expect(login.status).toBe(400);
  });

  it('is off with ui.enabled: false', async () => {
    const off = await start({ 'ui.enabled': false });
    expect((await fetch(`${off.url}/ui/`)).status).toBe(404);
    expect((await fetch(`${off.url}/ui/api/session`)).status).toBe(404);
  });
});

describe('UI sessions over htpasswd', () => {
  if (!requirePeers('htpasswd')) return;
  let server: RunningServer;
  let alice: string;
  let bob: string;
  const image = randomImage();

  beforeAll(async () => {
    const dir = await tempDir();
    const file = join(dir, 'htpasswd');
    const line = (user: string, password: string) =>
      execFileSync('htpasswd', ['-Bbn', '-C', '4', user, password], { encoding: 'utf8' }).trim();
    await writeFile(file, `${line('alice', 'wonder')}\n${line('bob', 'builder')}\n`);
    server = await start({
      'auth.htpasswd': { realm: 'stowage', path: file },
      access: [{ repository: '**', users: { alice: ['pull', 'push', 'delete'], bob: ['pull'] } }],
    });
    const client = createRegistryClient({
      registry: new URL(server.url).host,
      credentials: { username: 'alice', password: 'wonder' },
      auth: { useConfigFiles: false },
    });
    await pushImage(client, 'team/app', image, 'v1');
    await client.putManifest('team/app', 'v2', {
      bytes: image.manifest.bytes,
      mediaType: image.manifest.mediaType,
    });
    await client.close();
  });

  async function login(username: string, password: string): Promise<{ status: number; cookie?: string }> {
    const response = await fetch(`${server.url}/ui/api/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ username, password }),
    });
    const setCookie = response.headers.get('set-cookie') ?? undefined;
    return { status: response.status, ...(setCookie ? { cookie: setCookie.split(';')[0] as string } : {}) };
  }

  async function session(cookie: string) {
    return (await (await fetch(`${server.url}/ui/api/session`, { headers: { cookie } })).json()) as {
      user: string | null;
      csrf: string | null;
      login: string;
    };
  }

  it('logs in with the htpasswd users, setting an HttpOnly SameSite=Strict cookie; a wrong password is 401', async () => {
    expect((await login('alice', 'nope')).status).toBe(401);
    expect((await login('nobody', 'x')).status).toBe(401);
    const form = await fetch(`${server.url}/ui/api/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: 'username=alice&password=wonder',
    });
    expect(form.status).toBe(415);
    const response = await fetch(`${server.url}/ui/api/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ username: 'alice', password: 'wonder' }),
    });
    expect(response.status).toBe(204);
    expect(response.headers.get('set-cookie')).toMatch(
      /^stowage_ui=[\w-]{40,}; Path=\/; HttpOnly; SameSite=Strict$/,
    );
    alice = (response.headers.get('set-cookie') as string).split(';')[0] as string;
    expect(await session(alice)).toMatchObject({ user: 'alice', login: 'htpasswd' });
    bob = (await login('bob', 'builder')).cookie as string;
  });

  it('gives the page the user’s access: the API answers as it would answer the user', async () => {
    // anonymous: the API asks for credentials, with a Basic challenge for clients...
    const anonymous = await fetch(`${server.url}/v2/team/app/tags/list`);
    expect([anonymous.status, anonymous.headers.get('www-authenticate')]).toEqual([
      401,
      'Basic realm="stowage"',
    ]);
    // ...and without one for the page's own requests, so no browser password dialog covers its form
    const fromPage = await fetch(`${server.url}/v2/team/app/tags/list`, {
      headers: { 'sec-fetch-site': 'same-origin', 'sec-fetch-dest': 'empty', 'sec-fetch-mode': 'cors' },
    });
    expect([fromPage.status, fromPage.headers.get('www-authenticate')]).toEqual([401, null]);
    const tags = await fetch(`${server.url}/v2/team/app/tags/list`, { headers: { cookie: bob } });
    expect([tags.status, await tags.json()]).toEqual([200, { name: 'team/app', tags: ['v1', 'v2'] }]);
    const access = (who: string) =>
      fetch(`${server.url}/ui/api/access?repository=team/app`, { headers: { cookie: who } }).then((r) =>
        r.json(),
      );
    expect(await access(alice)).toEqual({ actions: ['pull', 'push', 'delete'] });
    expect(await access(bob)).toEqual({ actions: ['pull'] });
    expect(await (await fetch(`${server.url}/ui/api/access?repository=team/app`)).json()).toEqual({
      actions: [],
    });
  });

  it('refuses a change without the CSRF token; with it, the API decides: bob is refused, alice deletes', async () => {
    const remove = (who: string, csrf?: string) =>
      fetch(`${server.url}/v2/team/app/manifests/v2`, {
        method: 'DELETE',
        headers: { cookie: who, ...(csrf ? { 'x-stowage-csrf': csrf } : {}) },
      });
    const noToken = await remove(alice);
    expect(noToken.status).toBe(403);
    expect(((await noToken.json()) as { errors: { code: string }[] }).errors[0]?.code).toBe('DENIED');
    expect((await remove(alice, 'forged')).status).toBe(403);
    // bob's own token: the registry API's authorization refuses him, server side
    const refused = await remove(bob, (await session(bob)).csrf as string);
    expect(refused.status).toBe(403);
    expect(((await refused.json()) as { errors: { code: string }[] }).errors[0]?.code).toBe('DENIED');
    const tags = await fetch(`${server.url}/v2/team/app/tags/list`, { headers: { cookie: bob } });
    expect(((await tags.json()) as { tags: string[] }).tags).toEqual(['v1', 'v2']);
    expect((await remove(alice, (await session(alice)).csrf as string)).status).toBe(202);
    const after = await fetch(`${server.url}/v2/team/app/tags/list`, { headers: { cookie: bob } });
    expect(((await after.json()) as { tags: string[] }).tags).toEqual(['v1']);
  });

  it('logs out with the CSRF token; the cookie no longer works', async () => {
    const { csrf } = await session(bob);
    expect(
      (await fetch(`${server.url}/ui/api/logout`, { method: 'POST', headers: { cookie: bob } })).status,
    ).toBe(403);
    const out = await fetch(`${server.url}/ui/api/logout`, {
      method: 'POST',
      headers: { cookie: bob, 'x-stowage-csrf': csrf as string },
    });
    expect(out.status).toBe(204);
    expect(out.headers.get('set-cookie')).toMatch(/^stowage_ui=; .*Max-Age=0$/);
    expect(await session(bob)).toEqual({ user: null, csrf: null, login: 'htpasswd' });
    expect((await fetch(`${server.url}/v2/team/app/tags/list`, { headers: { cookie: bob } })).status).toBe(
      401,
    );
  });
});
