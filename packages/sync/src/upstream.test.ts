import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { rootCertificates } from 'node:tls';
import { isStowageError, type Logger } from '@stowage/oci';
import { requirePeers, selfSignedCertificate } from '@stowage/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseSyncConfig, type UpstreamConfig } from './config.js';
import { upstreamClientOptions } from './upstream.js';

async function upstreamOf(registry: Record<string, unknown>, credentials?: string): Promise<UpstreamConfig> {
  const config = await parseSyncConfig(
    { ...(credentials ? { credentialsFile: 'auth.json' } : {}), registries: [registry] },
    { readFile: async () => credentials ?? '' },
  );
  return config.upstreams[0] as UpstreamConfig;
}

async function certDirError(upstream: UpstreamConfig): Promise<{ key: string; detail: string }> {
  try {
    await upstreamClientOptions(upstream, upstream.urls[0] as string);
  } catch (error) {
    if (!isStowageError(error, 'CONFIG_INVALID')) throw error;
    return { key: String(error.details.key), detail: String(error.details.detail) };
  }
  throw new Error('accepted');
}

describe('upstreamClientOptions', () => {
  it('speaks plain HTTP to an http:// URL, with no TLS entry for it', async () => {
    const upstream = await upstreamOf({ urls: ['http://mirror.internal:5000'] });
    const options = await upstreamClientOptions(upstream, 'http://mirror.internal:5000');
    expect(options.registry).toBe('mirror.internal:5000');
    expect(options.insecure).toBe(true);
    expect(options.tls?.['mirror.internal:5000']).toBeUndefined();
  });

  it('always gives an https:// host a TLS entry (so a loopback https upstream is not spoken to in plain HTTP)', async () => {
    const upstream = await upstreamOf({ urls: ['https://127.0.0.1:5443'] });
    const options = await upstreamClientOptions(upstream, 'https://127.0.0.1:5443');
    expect(options.registry).toBe('127.0.0.1:5443');
    expect(options.insecure).toBeUndefined();
    expect(options.tls?.['127.0.0.1:5443']).toEqual({});
  });

  it('tlsVerify: false accepts any certificate for that host only', async () => {
    const upstream = await upstreamOf({ urls: ['https://a.example', 'https://b.example'], tlsVerify: false });
    const options = await upstreamClientOptions(upstream, 'https://b.example', {
      client: { tls: { 'other.example': { rejectUnauthorized: true } } },
    });
    expect(options.tls?.['b.example']).toEqual({ rejectUnauthorized: false });
    expect(options.tls?.['other.example']).toEqual({ rejectUnauthorized: true });
    const verified = await upstreamClientOptions(
      await upstreamOf({ urls: ['https://b.example'] }),
      'https://b.example',
    );
    expect(verified.tls?.['b.example']?.rejectUnauthorized).toBeUndefined();
  });

  it("gives Docker Hub's TLS settings to the host the client really speaks to", async () => {
    const upstream = await upstreamOf({ urls: ['https://docker.io'], tlsVerify: false });
    const options = await upstreamClientOptions(upstream, 'https://docker.io');
    expect(options.tls?.['registry-1.docker.io']).toEqual({ rejectUnauthorized: false });
    expect(options.tls?.['docker.io']).toEqual({ rejectUnauthorized: false });
  });

  it('maps maxRetries and retryDelay onto the client retry policy', async () => {
    const upstream = await upstreamOf({ urls: ['https://r.example'], maxRetries: 7, retryDelay: '250ms' });
    const clock = { now: () => 0, sleep: async () => {} };
    const options = await upstreamClientOptions(upstream, 'https://r.example', {
      client: { retry: { clock } },
    });
    expect(options.retry).toEqual({ clock, retries: 7, minDelayMs: 250, maxDelayMs: 10_000 });
    // defaults: 3 retries from 1 s
    const defaults = await upstreamClientOptions(
      await upstreamOf({ urls: ['https://r.example'] }),
      'https://r.example',
    );
    expect(defaults.retry).toMatchObject({ retries: 3, minDelayMs: 1000 });
    // a delay past the client's ceiling lifts the ceiling (zot's examples say 5m); fractions round up
    const long = await upstreamClientOptions(
      await upstreamOf({ urls: ['https://r.example'], retryDelay: '5m', maxRetries: 0 }),
      'https://r.example',
    );
    expect(long.retry).toMatchObject({ retries: 0, minDelayMs: 300_000, maxDelayMs: 300_000 });
    const fraction = await upstreamClientOptions(
      await upstreamOf({ urls: ['https://r.example'], retryDelay: '1500us' }),
      'https://r.example',
    );
    expect(fraction.retry?.minDelayMs).toBe(2);
  });

  it("uses the upstream's credentials for the URL's host, else leaves the client's config-file lookup", async () => {
    const upstream = await upstreamOf(
      { urls: ['https://origin.example', 'https://mirror.example'] },
      JSON.stringify({ 'origin.example': { username: 'alice', password: 's3cret' } }),
    );
    const origin = await upstreamClientOptions(upstream, 'https://origin.example');
    expect(origin.credentials).toEqual({ username: 'alice', password: 's3cret' });
    expect(origin.auth).toBeUndefined();
    const mirror = await upstreamClientOptions(upstream, 'https://mirror.example');
    expect(mirror.credentials).toBeUndefined();
    expect(mirror.auth).toBeUndefined();
  });

  it('merges the given client options (logger, user agent)', async () => {
    const logger: Logger = { debug() {}, warn() {} };
    const upstream = await upstreamOf({ urls: ['http://r.example'] });
    const options = await upstreamClientOptions(upstream, 'http://r.example', {
      client: { logger, userAgent: 'stowage-sync-test', pageSize: 50 },
    });
    expect(options).toMatchObject({
      logger,
      userAgent: 'stowage-sync-test',
      pageSize: 50,
      registry: 'r.example',
    });
  });

  describe('certDir', () => {
    if (!requirePeers('openssl')) return;
    let root: string;
    let ca: { cert: string; key: string };
    let client: { cert: string; key: string };
    const read = (path: string) => readFile(path, 'utf8');

    beforeAll(async () => {
      root = await mkdtemp(join(tmpdir(), 'stowage-sync-certdir-'));
      const caDir = join(root, 'ca-source');
      const clientDir = join(root, 'client-source');
      await Promise.all([mkdir(caDir), mkdir(clientDir)]);
      ca = await selfSignedCertificate({ dir: caDir, commonName: 'upstream CA' });
      client = await selfSignedCertificate({ dir: clientDir, commonName: 'sync client' });
    });
    afterAll(async () => {
      await rm(root, { recursive: true, force: true });
    });

    async function dir(files: Record<string, string>): Promise<string> {
      const path = await mkdtemp(join(root, 'certs-'));
      for (const [name, source] of Object.entries(files))
        await writeFile(join(path, name), await read(source));
      return path;
    }

    it('reads ca.crt and every other *.crt as CAs (besides the system roots), client.cert and client.key', async () => {
      const certDir = await dir({
        'ca.crt': ca.cert,
        'extra.crt': client.cert,
        'client.cert': client.cert,
        'client.key': client.key,
        'README.txt': ca.cert,
      });
      const upstream = await upstreamOf({ urls: ['https://r.example:8443'], certDir });
      const options = await upstreamClientOptions(upstream, 'https://r.example:8443');
      const tls = options.tls?.['r.example:8443'];
      const cas = tls?.ca as string[];
      expect(cas.slice(0, rootCertificates.length)).toEqual([...rootCertificates]);
      // ca.crt first, then the others; README.txt is not a CA
      expect(cas.slice(rootCertificates.length)).toEqual([await read(ca.cert), await read(client.cert)]);
      expect(tls?.cert).toBe(await read(client.cert));
      expect(tls?.key).toBe(await read(client.key));
      expect(tls?.rejectUnauthorized).toBeUndefined();
    });

    it('combines with tlsVerify: false, and is not read for an http:// URL', async () => {
      const certDir = await dir({ 'ca.crt': ca.cert });
      const upstream = await upstreamOf({
        urls: ['https://r.example', 'http://plain.example'],
        certDir,
        tlsVerify: false,
      });
      const options = await upstreamClientOptions(upstream, 'https://r.example');
      expect(options.tls?.['r.example']).toMatchObject({ rejectUnauthorized: false });
      expect(options.tls?.['r.example']?.cert).toBeUndefined();
      const plain = await upstreamClientOptions(upstream, 'http://plain.example');
      expect(plain.tls).toEqual({});
    });

    it('refuses a missing, empty or half-filled directory naming certDir', async () => {
      const missing = await upstreamOf({ urls: ['https://r.example'], certDir: join(root, 'nope') });
      expect(await certDirError(missing)).toMatchObject({
        key: 'registries[0].certDir',
        detail: expect.stringMatching(/cannot read the directory .*nope \(ENOENT\)/),
      });
      const empty = await upstreamOf({ urls: ['https://r.example'], certDir: await dir({}) });
      expect((await certDirError(empty)).detail).toMatch(/holds neither ca\.crt/);
      const half = await upstreamOf({
        urls: ['https://r.example'],
        certDir: await dir({ 'client.cert': client.cert }),
      });
      expect((await certDirError(half)).detail).toMatch(/client\.cert without client\.key/);
    });
  });
});
