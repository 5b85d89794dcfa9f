import { createPrivateKey, randomUUID, sign, X509Certificate } from 'node:crypto';
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { buffer } from 'node:stream/consumers';
import { type Digest, digestOf, isStowageError, MediaType } from '@stowage/oci';
import {
  type DockerRegistry,
  peerStatus,
  requirePeers,
  selfSignedCertificate,
  startDockerRegistry,
} from '@stowage/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRegistryClient, type RegistryClient } from './client.js';
import type { RegistryClientOptions } from './options.js';

const encode = (value: unknown) => new TextEncoder().encode(JSON.stringify(value));

/** Pushes a one-layer image with the client under test; returns its manifest digest. */
async function pushSmallImage(client: RegistryClient, repository: string, tag: string): Promise<Digest> {
  const layer = new TextEncoder().encode(`layer of ${repository}:${tag} ${randomUUID()}`);
  const config = encode({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] } });
  await client.putBlob(repository, layer, { digest: digestOf(layer) });
  await client.putBlob(repository, config, { digest: digestOf(config) });
  const manifest = encode({
    schemaVersion: 2,
    mediaType: MediaType.OciManifest,
    config: { mediaType: MediaType.OciConfig, digest: digestOf(config), size: config.byteLength },
    layers: [{ mediaType: MediaType.OciLayer, digest: digestOf(layer), size: layer.byteLength }],
  });
  return (await client.putManifest(repository, tag, { bytes: manifest, mediaType: MediaType.OciManifest }))
    .digest;
}

describe('registry-client auth against docker-registry', () => {
  if (!requirePeers('docker-registry', peerStatus('openssl'))) return;

  let work: string;
  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'stowage-auth-'));
  });
  afterAll(async () => {
    await rm(work, { recursive: true, force: true });
  });

  describe('htpasswd basic auth', () => {
    let registry: DockerRegistry;
    const clients: RegistryClient[] = [];
    const client = (options: Omit<RegistryClientOptions, 'registry'> = {}) => {
      const created = createRegistryClient({
        registry: registry.host,
        auth: { useConfigFiles: false },
        ...options,
      });
      clients.push(created);
      return created;
    };

    beforeAll(async () => {
      registry = await startDockerRegistry({ htpasswd: [{ username: 'alice', password: 'wonder land' }] });
    });
    afterAll(async () => {
      await Promise.all(clients.map((c) => c.close()));
      await registry?.stop();
    });

    it('pushes and pulls with explicit credentials', async () => {
      const alice = client({ credentials: { username: 'alice', password: 'wonder land' } });
      expect(await alice.ping()).toMatchObject({ auth: 'basic', apiVersion: 'registry/2.0' });
      const digest = await pushSmallImage(alice, 'basic/app', 'v1');
      expect((await alice.getManifest('basic/app', 'v1')).digest).toBe(digest);
      expect((await alice.listTags('basic/app')).items).toEqual(['v1']);
    });

    it('refuses wrong or missing credentials with UNAUTHORIZED, never echoing the password', async () => {
      const wrong = client({ credentials: { username: 'alice', password: 'not-the-password' } });
      const error = await wrong.listTags('basic/app').catch((e: unknown) => e);
      expect(isStowageError(error, 'UNAUTHORIZED')).toBe(true);
      expect(JSON.stringify([String(error), (error as { details?: unknown }).details])).not.toContain(
        'not-the-password',
      );
      await expect(client().listTags('basic/app')).rejects.toMatchObject({
        code: 'UNAUTHORIZED',
        status: 401,
      });
    });

    it('reads credentials from a containers auth.json (REGISTRY_AUTH_FILE)', async () => {
      const authFile = join(work, 'auth.json');
      await writeFile(
        authFile,
        JSON.stringify({
          auths: { [registry.host]: { auth: Buffer.from('alice:wonder land').toString('base64') } },
        }),
      );
      const fromFile = client({
        auth: { env: { REGISTRY_AUTH_FILE: authFile, HOME: join(work, 'nohome') } },
      });
      expect((await fromFile.listTags('basic/app')).items).toEqual(['v1']);
    });

    it('runs a docker-credential helper found on PATH', async () => {
      const bin = join(work, 'bin');
      await mkdir(bin, { recursive: true });
      const log = join(work, 'helper.log');
      const helper = join(bin, 'docker-credential-stowagetest');
      await writeFile(
        helper,
        `#!/bin/sh\nserver=$(cat)\necho "$1 $server" >> "${log}"\nprintf '{"ServerURL":"%s","Username":"alice","Secret":"wonder land"}' "$server"\n`,
      );
      await chmod(helper, 0o755);
      const dockerConfig = join(work, 'docker');
      await mkdir(dockerConfig, { recursive: true });
      await writeFile(
        join(dockerConfig, 'config.json'),
        JSON.stringify({ credHelpers: { [registry.host]: 'stowagetest' } }),
      );
      const viaHelper = client({
        auth: {
          env: {
            PATH: `${bin}${delimiter}${process.env.PATH ?? ''}`,
            DOCKER_CONFIG: dockerConfig,
            HOME: join(work, 'nohome'),
          },
        },
      });
      expect((await viaHelper.listTags('basic/app')).items).toEqual(['v1']);
      expect((await viaHelper.listTags('basic/app')).items).toEqual(['v1']);
      // The helper ran once, asked for this registry.
      expect((await readFile(log, 'utf8')).trim().split('\n')).toEqual([`get ${registry.host}`]);
    });
  });

  describe('bearer token auth with a token server run by the test', () => {
    let registry: DockerRegistry;
    let tokens: TokenServer;
    const clients: RegistryClient[] = [];
    const client = (options: Omit<RegistryClientOptions, 'registry'> = {}) => {
      const created = createRegistryClient({
        registry: registry.host,
        credentials: { username: 'alice', password: 's3cret' },
        auth: { useConfigFiles: false },
        ...options,
      });
      clients.push(created);
      return created;
    };

    beforeAll(async () => {
      tokens = await startTokenServer(work);
      registry = await startDockerRegistry({
        config: {
          auth: {
            token: {
              realm: `${tokens.url}/token`,
              service: tokens.service,
              issuer: tokens.issuer,
              rootcertbundle: tokens.certPath,
            },
          },
        },
      });
    });
    afterAll(async () => {
      await Promise.all(clients.map((c) => c.close()));
      await registry?.stop();
      await tokens?.close();
    });

    it('discovers the bearer challenge, and one or two tokens serve twenty operations on a repository', async () => {
      const alice = client();
      expect(await alice.ping()).toMatchObject({ auth: 'bearer' });
      const before = tokens.requests.length;
      const digest = await pushSmallImage(alice, 'tok/app', 'v1'); // HEAD, POST, PUT ×2, manifest PUT
      for (let i = 0; i < 5; i++) await alice.headManifest('tok/app', 'v1');
      for (let i = 0; i < 5; i++) await alice.getManifest('tok/app', digest);
      for (let i = 0; i < 4; i++) await alice.listTags('tok/app');
      await alice.putManifest('tok/app', 'v2', {
        bytes: (await alice.getManifest('tok/app', 'v1')).bytes,
        mediaType: MediaType.OciManifest,
      });
      const requests = tokens.requests.slice(before).filter((r) => r.scopes.length > 0);
      expect(requests.length).toBeGreaterThanOrEqual(1);
      expect(requests.length).toBeLessThanOrEqual(2);
      expect(requests.every((r) => r.account === 'alice' && r.authenticated)).toBe(true);
      expect(requests.at(-1)?.scopes).toEqual(['repository:tok/app:pull,push']);
    });

    it('accumulates scopes: a cross-repository mount gets one token for both repositories', async () => {
      const alice = client();
      const digest = await pushSmallImage(alice, 'tok/source', 'v1');
      const manifest = await alice.getManifest('tok/source', digest);
      const layer = (JSON.parse(Buffer.from(manifest.bytes).toString()) as { layers: { digest: Digest }[] })
        .layers[0];
      const before = tokens.requests.length;
      const mounted = await alice.mountBlob('tok/target', layer?.digest as Digest, { from: 'tok/source' });
      expect(mounted?.digest).toBe(layer?.digest);
      const last = tokens.requests.slice(before).at(-1);
      expect(last?.scopes).toEqual(['repository:tok/source:pull,push', 'repository:tok/target:pull,push']);
      // Every later operation on either repository is covered by that token.
      const count = tokens.requests.length;
      await alice.headBlob('tok/target', layer?.digest as Digest);
      await alice.getManifest('tok/source', digest);
      expect(tokens.requests.length).toBe(count);
    });

    it('refreshes once on 401 when the registry rejects a token the client still trusts', async () => {
      const alice = client();
      await alice.listTags('tok/app'); // caches a token
      const before = tokens.requests.length;
      tokens.expireNext = 1; // the next token is already expired in the registry's eyes
      await alice.putManifest('tok/app', 'v3', {
        bytes: (await alice.getManifest('tok/app', 'v1')).bytes,
        mediaType: MediaType.OciManifest,
      });
      const after = tokens.requests.slice(before);
      expect(after).toHaveLength(2); // the wider (push) token came expired, the refresh after the 401 did not
      expect((await alice.listTags('tok/app')).items).toEqual(['v1', 'v2', 'v3']);
      expect(tokens.requests.length).toBe(before + 2);
    });

    it('exchanges an identity token with an OAuth2 refresh_token grant', async () => {
      const viaRefresh = client({ credentials: { identityToken: tokens.identityToken } });
      const before = tokens.requests.length;
      expect((await viaRefresh.listTags('tok/app')).items).toContain('v1');
      const request = tokens.requests.slice(before).at(-1);
      expect(request).toMatchObject({ method: 'POST', grant: 'refresh_token', account: 'alice' });
    });

    it('asks with grant_type=password when configured', async () => {
      const viaPassword = client({ auth: { useConfigFiles: false, oauth2Password: true } });
      const before = tokens.requests.length;
      expect((await viaPassword.listTags('tok/app')).items).toContain('v1');
      expect(tokens.requests.slice(before).at(-1)).toMatchObject({ method: 'POST', grant: 'password' });
    });

    it('maps a token server refusal to UNAUTHORIZED and an unpermitted scope to DENIED-like refusals', async () => {
      const mallory = client({ credentials: { username: 'mallory', password: 'guess' } });
      await expect(mallory.listTags('tok/app')).rejects.toMatchObject({ code: 'UNAUTHORIZED' });
      const reader = client({ credentials: { username: 'reader', password: 'r' } });
      expect((await reader.listTags('tok/app')).items).toContain('v1');
      // The token server grants reader no push: the registry keeps refusing after the one refresh.
      const error = await reader
        .putBlob('tok/app', new Uint8Array([1, 2, 3]), { digest: digestOf(new Uint8Array([1, 2, 3])) })
        .catch((e: unknown) => e);
      expect(isStowageError(error, 'UNAUTHORIZED') || isStowageError(error, 'DENIED')).toBe(true);
    });

    it('streams a blob through a token-protected registry', async () => {
      const alice = client();
      const big = new Uint8Array(3 * 1024 * 1024).map((_, i) => i % 251);
      const digest = digestOf(big);
      await alice.putBlob('tok/big', big, { digest });
      const content = await alice.getBlob('tok/big', digest);
      expect(Buffer.compare(await buffer(content.stream), Buffer.from(big))).toBe(0);
    });
  });
});

interface TokenRequestRecord {
  readonly method: string;
  readonly scopes: readonly string[];
  readonly account: string | undefined;
  readonly authenticated: boolean;
  readonly grant?: string;
}

interface TokenServer {
  readonly url: string;
  readonly service: string;
  readonly issuer: string;
  readonly certPath: string;
  readonly identityToken: string;
  readonly requests: TokenRequestRecord[];
  /** Issue this many next tokens already expired (beyond the registry's leeway). */
  expireNext: number;
  close(): Promise<void>;
}

const users: Readonly<Record<string, { password: string; actions: readonly string[] }>> = {
  alice: { password: 's3cret', actions: ['pull', 'push', 'delete', '*'] },
  reader: { password: 'r', actions: ['pull'] },
};

/**
 * A distribution token server in the smallest form: checks basic credentials
 * (or an OAuth2 grant), grants the requested actions the user may have, and
 * signs an ES256 JWT whose `x5c` header carries a self-signed certificate the
 * registry trusts through `rootcertbundle`.
 */
async function startTokenServer(work: string): Promise<TokenServer> {
  const dir = join(work, 'token');
  await mkdir(dir, { recursive: true });
  const { cert: certPath, key: keyPath } = await selfSignedCertificate({
    dir,
    commonName: 'stowage-test-token',
  });
  const key = createPrivateKey(await readFile(keyPath));
  const x5c = new X509Certificate(await readFile(certPath)).raw.toString('base64');
  const service = 'stowage-test-registry';
  const issuer = 'stowage-test-issuer';
  const identityToken = `id-${randomUUID()}`;
  const b64url = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');

  const state = {
    requests: [] as TokenRequestRecord[],
    expireNext: 0,
  };

  const jwt = (subject: string, access: unknown[]) => {
    const now = Math.floor(Date.now() / 1000);
    const expired = state.expireNext > 0;
    if (expired) state.expireNext--;
    const header = b64url({ typ: 'JWT', alg: 'ES256', x5c: [x5c] });
    const claims = b64url({
      iss: issuer,
      sub: subject,
      aud: service,
      // distribution allows 60 s of clock leeway: an "expired" token is well past it.
      exp: expired ? now - 600 : now + 300,
      nbf: now - 10,
      iat: now,
      jti: randomUUID(),
      access,
    });
    const signature = sign('sha256', Buffer.from(`${header}.${claims}`), { key, dsaEncoding: 'ieee-p1363' });
    return `${header}.${claims}.${signature.toString('base64url')}`;
  };

  const grantFor = (user: string, scopes: readonly string[]) =>
    scopes.flatMap((scope) => {
      const first = scope.indexOf(':');
      const last = scope.lastIndexOf(':');
      const type = scope.slice(0, first);
      const name = scope.slice(first + 1, last);
      const allowed = users[user]?.actions ?? [];
      const actions = scope
        .slice(last + 1)
        .split(',')
        .filter((a) => allowed.includes(a));
      return actions.length > 0 ? [{ type, name, actions }] : [];
    });

  const readBody = async (request: IncomingMessage) => (await buffer(request)).toString('utf8');

  const server: Server = createServer(async (request, response) => {
    const url = new URL(request.url ?? '/', 'http://localhost');
    const reply = (status: number, body: unknown) => {
      response.writeHead(status, { 'content-type': 'application/json' });
      response.end(JSON.stringify(body));
    };
    if (url.pathname !== '/token') return reply(404, {});
    let user: string | undefined;
    let scopes: string[];
    let grant: string | undefined;
    if (request.method === 'POST') {
      const form = new URLSearchParams(await readBody(request));
      grant = form.get('grant_type') ?? undefined;
      scopes = (form.get('scope') ?? '').split(' ').filter(Boolean);
      if (grant === 'refresh_token' && form.get('refresh_token') === identityToken) user = 'alice';
      if (grant === 'password' && users[form.get('username') ?? '']?.password === form.get('password')) {
        user = form.get('username') ?? undefined;
      }
      if (form.get('service') !== service) return reply(400, { error: 'wrong service' });
    } else {
      scopes = url.searchParams.getAll('scope');
      const header = request.headers.authorization ?? '';
      if (header.startsWith('Basic ')) {
        const [name, password] = Buffer.from(header.slice(6), 'base64').toString().split(':');
        if (name !== undefined && users[name]?.password === password) user = name;
        else return reply(401, { errors: [{ code: 'UNAUTHORIZED', message: 'bad credentials' }] });
      }
      if (url.searchParams.get('service') !== service) return reply(400, { error: 'wrong service' });
    }
    state.requests.push({
      method: request.method ?? 'GET',
      scopes: [...scopes].sort(),
      account: user ?? url.searchParams.get('account') ?? undefined,
      authenticated: user !== undefined,
      ...(grant !== undefined ? { grant } : {}),
    });
    if (request.method === 'POST' && user === undefined) return reply(401, { error: 'invalid_grant' });
    const token = jwt(user ?? '', user ? grantFor(user, scopes) : []);
    reply(
      200,
      request.method === 'POST'
        ? { access_token: token, expires_in: 300 }
        : { token, expires_in: 300, issued_at: new Date().toISOString() },
    );
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    service,
    issuer,
    certPath,
    identityToken,
    get requests() {
      return state.requests;
    },
    get expireNext() {
      return state.expireNext;
    },
    set expireNext(value: number) {
      state.expireNext = value;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
