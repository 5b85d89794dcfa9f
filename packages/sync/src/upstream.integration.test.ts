import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isStowageError, type Registry } from '@stowage/oci';
import type { RegistryClient } from '@stowage/registry-client';
import {
  type CountingProxy,
  type DockerRegistry,
  pushImage,
  randomImage,
  requirePeers,
  selfSignedCertificate,
  startCountingProxy,
  startDockerRegistry,
} from '@stowage/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseSyncConfig, type UpstreamConfig } from './config.js';
import { clientConnector, type UpstreamClientOptions } from './upstream.js';

/** Sleeps nothing: retries run at once, no real waits in tests. */
const instantClock = { now: () => Date.now(), sleep: async () => {} };

async function upstreamOf(registry: Record<string, unknown>, credentials?: object): Promise<UpstreamConfig> {
  const config = await parseSyncConfig(
    { ...(credentials ? { credentialsFile: 'auth.json' } : {}), registries: [registry] },
    { readFile: async () => JSON.stringify(credentials) },
  );
  return config.upstreams[0] as UpstreamConfig;
}

/** Connects, runs `body` with the client, closes it. */
async function withClient<T>(
  upstream: UpstreamConfig,
  url: string,
  options: UpstreamClientOptions,
  body: (client: RegistryClient) => Promise<T>,
): Promise<T> {
  const client = (await clientConnector(options)(upstream, url)) as Registry as RegistryClient;
  try {
    return await body(client);
  } finally {
    await client.close();
  }
}

async function errorCodeOf(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (error) {
    return isStowageError(error) ? error.code : `not a StowageError: ${String(error)}`;
  }
  return 'resolved';
}

describe('clientConnector → docker-registry', () => {
  if (!requirePeers('docker-registry')) return;

  let root: string;
  /** No Docker or containers credential file is read unless a test names one. */
  const noConfigFiles: UpstreamClientOptions = {
    client: { auth: { configPaths: [] }, retry: { clock: instantClock } },
  };

  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), 'stowage-sync-upstream-'));
  });
  afterAll(async () => {
    await rm(root, { recursive: true, force: true });
  });

  describe('anonymous', () => {
    let registry: DockerRegistry;
    beforeAll(async () => {
      registry = await startDockerRegistry();
    });
    afterAll(async () => {
      await registry?.stop();
    });

    it('pings and lists tags over plain HTTP', async () => {
      const upstream = await upstreamOf({ urls: [registry.url] });
      await withClient(upstream, registry.url, noConfigFiles, async (client) => {
        expect((await client.ping()).auth).toBe('none');
        await pushImage(client, 'team/app', randomImage({ seed: 11 }), 'v1');
        await pushImage(client, 'team/app', randomImage({ seed: 12 }), 'v2');
        expect((await client.listTags('team/app')).items).toEqual(['v1', 'v2']);
      });
    });
  });

  describe('with htpasswd', () => {
    let registry: DockerRegistry;
    beforeAll(async () => {
      registry = await startDockerRegistry({ htpasswd: [{ username: 'alice', password: 's3cret' }] });
      const upstream = await upstreamOf(
        { urls: [registry.url] },
        { [registry.host]: { username: 'alice', password: 's3cret' } },
      );
      await withClient(upstream, registry.url, noConfigFiles, (client) =>
        pushImage(client, 'private/app', randomImage({ seed: 21 }), 'v1'),
      );
    });
    afterAll(async () => {
      await registry?.stop();
    });

    it("uses the credentials file's entry for the host", async () => {
      const upstream = await upstreamOf(
        { urls: [registry.url] },
        { [registry.host]: { username: 'alice', password: 's3cret' } },
      );
      await withClient(upstream, registry.url, noConfigFiles, async (client) => {
        expect((await client.ping()).auth).toBe('basic');
        expect((await client.listTags('private/app')).items).toEqual(['v1']);
      });
    });

    it('is refused without credentials, and with wrong ones', async () => {
      const anonymous = await upstreamOf({ urls: [registry.url] });
      await withClient(anonymous, registry.url, noConfigFiles, async (client) => {
        expect(await errorCodeOf(client.listTags('private/app'))).toBe('UNAUTHORIZED');
      });
      const wrong = await upstreamOf(
        { urls: [registry.url] },
        { [registry.host]: { username: 'alice', password: 'nope' } },
      );
      await withClient(wrong, registry.url, noConfigFiles, async (client) => {
        expect(await errorCodeOf(client.listTags('private/app'))).toBe('UNAUTHORIZED');
      });
    });

    it("falls back to the Docker config file when the upstream has no credentials for the host, and never overrides the upstream's", async () => {
      const dir = await mkdtemp(join(root, 'docker-config-'));
      const configPath = join(dir, 'config.json');
      const auth = Buffer.from('alice:s3cret').toString('base64');
      await writeFile(configPath, JSON.stringify({ auths: { [registry.host]: { auth } } }));
      const fromFile: UpstreamClientOptions = {
        client: { auth: { configPaths: [configPath] }, retry: { clock: instantClock } },
      };
      const anonymous = await upstreamOf({ urls: [registry.url] });
      await withClient(anonymous, registry.url, fromFile, async (client) => {
        expect((await client.listTags('private/app')).items).toEqual(['v1']);
      });
      // the upstream's own (wrong) entry wins over the config file
      const wrong = await upstreamOf(
        { urls: [registry.url] },
        { [registry.host]: { username: 'alice', password: 'nope' } },
      );
      await withClient(wrong, registry.url, fromFile, async (client) => {
        expect(await errorCodeOf(client.listTags('private/app'))).toBe('UNAUTHORIZED');
      });
    });
  });

  describe('retries', () => {
    let registry: DockerRegistry;
    let proxy: CountingProxy;
    beforeAll(async () => {
      registry = await startDockerRegistry();
      proxy = await startCountingProxy({ target: registry.url });
      const upstream = await upstreamOf({ urls: [registry.url] });
      await withClient(upstream, registry.url, noConfigFiles, (client) =>
        pushImage(client, 'app', randomImage({ seed: 31 }), 'v1'),
      );
    });
    afterAll(async () => {
      await proxy?.close();
      await registry?.stop();
    });

    const tagsList = { method: 'GET', path: '/v2/app/tags/list' };

    it('retries a failing request maxRetries times', async () => {
      const upstream = await upstreamOf({ urls: [proxy.url], maxRetries: 2, retryDelay: '10ms' });
      proxy.reset();
      proxy.failNext({ status: 503, times: 2, match: tagsList });
      await withClient(upstream, proxy.url, noConfigFiles, async (client) => {
        expect((await client.listTags('app')).items).toEqual(['v1']);
      });
      expect(proxy.count(tagsList)).toBe(3);
      expect(proxy.count({ ...tagsList, injected: true })).toBe(2);
    });

    it('gives up after maxRetries', async () => {
      const upstream = await upstreamOf({ urls: [proxy.url], maxRetries: 1, retryDelay: '10ms' });
      proxy.reset();
      proxy.failNext({ status: 503, times: 2, match: tagsList });
      await withClient(upstream, proxy.url, noConfigFiles, async (client) => {
        expect(await errorCodeOf(client.listTags('app'))).not.toBe('resolved');
      });
      expect(proxy.count(tagsList)).toBe(2);
    });
  });
});

describe('clientConnector → an https upstream (certDir, tlsVerify)', () => {
  if (!requirePeers('openssl')) return;

  let root: string;
  let server: { cert: string; key: string };
  let client: { cert: string; key: string };
  const servers: Server[] = [];
  const noConfigFiles: UpstreamClientOptions = {
    client: { auth: { configPaths: [] }, retry: { clock: instantClock } },
  };

  /** A TLS server on 127.0.0.1 answering `GET /v2/` as a registry would; with `clientCa`, it wants a client certificate. */
  async function startTlsRegistry(clientCa?: string): Promise<string> {
    const https = createServer(
      {
        cert: await readFile(server.cert),
        key: await readFile(server.key),
        ...(clientCa ? { requestCert: true, rejectUnauthorized: true, ca: [clientCa] } : {}),
      },
      (request, response) => {
        response.setHeader('Docker-Distribution-Api-Version', 'registry/2.0');
        response.setHeader('Content-Type', 'application/json');
        response.statusCode = request.url === '/v2/' ? 200 : 404;
        response.end('{}');
      },
    );
    servers.push(https);
    await new Promise<void>((resolve) => https.listen(0, '127.0.0.1', resolve));
    return `https://127.0.0.1:${(https.address() as AddressInfo).port}`;
  }

  async function certDir(files: Record<string, string>): Promise<string> {
    const dir = await mkdtemp(join(root, 'certs-'));
    for (const [name, source] of Object.entries(files))
      await writeFile(join(dir, name), await readFile(source));
    return dir;
  }

  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), 'stowage-sync-tls-'));
    await Promise.all([mkdir(join(root, 'server')), mkdir(join(root, 'client'))]);
    server = await selfSignedCertificate({ dir: join(root, 'server'), ip: '127.0.0.1' });
    client = await selfSignedCertificate({ dir: join(root, 'client'), commonName: 'sync client' });
  });
  afterAll(async () => {
    for (const https of servers) {
      https.closeAllConnections();
      await new Promise((resolve) => https.close(resolve));
    }
    await rm(root, { recursive: true, force: true });
  });

  it("trusts certDir's ca.crt, refuses the unknown certificate without it, accepts anything with tlsVerify: false", async () => {
    const url = await startTlsRegistry();
    const trusted = await upstreamOf({ urls: [url], certDir: await certDir({ 'ca.crt': server.cert }) });
    await withClient(trusted, url, noConfigFiles, async (c) => {
      expect((await c.ping()).registry).toBe(new URL(url).host);
    });
    const unknown = await upstreamOf({ urls: [url], maxRetries: 0 });
    await withClient(unknown, url, noConfigFiles, async (c) => {
      expect(await errorCodeOf(c.ping())).not.toBe('resolved');
    });
    const unverified = await upstreamOf({ urls: [url], tlsVerify: false });
    await withClient(unverified, url, noConfigFiles, async (c) => {
      expect((await c.ping()).registry).toBe(new URL(url).host);
    });
  });

  it("presents certDir's client.cert and client.key to a server that wants a client certificate", async () => {
    const url = await startTlsRegistry(await readFile(client.cert, 'utf8'));
    const withCert = await upstreamOf({
      urls: [url],
      certDir: await certDir({ 'ca.crt': server.cert, 'client.cert': client.cert, 'client.key': client.key }),
    });
    await withClient(withCert, url, noConfigFiles, async (c) => {
      expect((await c.ping()).registry).toBe(new URL(url).host);
    });
    const without = await upstreamOf({
      urls: [url],
      maxRetries: 0,
      certDir: await certDir({ 'ca.crt': server.cert }),
    });
    await withClient(without, url, noConfigFiles, async (c) => {
      expect(await errorCodeOf(c.ping())).not.toBe('resolved');
    });
  });
});
