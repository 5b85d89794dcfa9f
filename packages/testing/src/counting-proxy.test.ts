import { createHash } from 'node:crypto';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { type CountingProxy, startCountingProxy } from './counting-proxy.js';
import { type DockerRegistry, freePort, startDockerRegistry } from './docker-registry.js';
import { requirePeers } from './peers.js';
import { randomBytes } from './random.js';

// The registry client cannot be used here (it depends on this package); the
// client's side is in packages/sync/test/upstream-fixture.test.ts. These talk
// plain fetch to a real docker-registry through the proxy.

const sha256 = (bytes: Uint8Array) => `sha256:${createHash('sha256').update(bytes).digest('hex')}`;

describe('startCountingProxy in front of docker-registry', () => {
  if (!requirePeers('docker-registry')) return;

  let registry: DockerRegistry;
  let proxy: CountingProxy;

  beforeAll(async () => {
    registry = await startDockerRegistry();
    proxy = await startCountingProxy({ target: registry.url });
  });
  afterAll(async () => {
    await proxy?.close();
    await registry?.stop();
  });
  beforeEach(() => proxy.reset());

  /** A chunked upload through the proxy, following each Location as a client would. */
  async function upload(repository: string, bytes: Uint8Array, chunk: number): Promise<string[]> {
    const locations: string[] = [];
    const start = await fetch(`${proxy.url}/v2/${repository}/blobs/uploads/`, { method: 'POST' });
    expect(start.status).toBe(202);
    let location = start.headers.get('location') as string;
    locations.push(location);
    for (let offset = 0; offset < bytes.byteLength; offset += chunk) {
      const part = bytes.subarray(offset, Math.min(bytes.byteLength, offset + chunk));
      const patch = await fetch(new URL(location, proxy.url), {
        method: 'PATCH',
        headers: {
          'content-type': 'application/octet-stream',
          'content-range': `${offset}-${offset + part.byteLength - 1}`,
        },
        body: part,
      });
      expect(patch.status).toBe(202);
      location = patch.headers.get('location') as string;
      locations.push(location);
    }
    const done = new URL(location, proxy.url);
    done.searchParams.set('digest', sha256(bytes));
    const put = await fetch(done, { method: 'PUT' });
    expect(put.status).toBe(201);
    locations.push(put.headers.get('location') as string);
    return locations;
  }

  it('forwards a chunked upload with every Location pointing at the proxy, and streams the blob back intact', async () => {
    const bytes = randomBytes(3 * 1024 * 1024 + 17, 11);
    const locations = await upload('proxy/blob', bytes, 1024 * 1024);
    for (const location of locations) {
      expect(new URL(location, proxy.url).origin).toBe(proxy.url);
      expect(location).not.toContain(registry.host);
    }
    const got = await fetch(`${proxy.url}/v2/proxy/blob/blobs/${sha256(bytes)}`);
    expect(got.status).toBe(200);
    const back = new Uint8Array(await got.arrayBuffer());
    expect(back.byteLength).toBe(bytes.byteLength);
    expect(sha256(back)).toBe(sha256(bytes));

    const seen = proxy.requests().map((r) => `${r.method} ${r.status}`);
    expect(seen).toEqual([
      'POST 202',
      'PATCH 202',
      'PATCH 202',
      'PATCH 202',
      'PATCH 202',
      'PUT 201',
      'GET 200',
    ]);
    const put = proxy.requests().find((r) => r.method === 'PUT');
    expect(put?.path).toMatch(/^\/v2\/proxy\/blob\/blobs\/uploads\/[0-9a-f-]+$/);
    expect(put?.query).toContain(`digest=${encodeURIComponent(sha256(bytes))}`);
    expect(proxy.requests().every((r) => !r.injected)).toBe(true);
  });

  it('keeps request headers: a Range asks the registry for part of a blob', async () => {
    const bytes = randomBytes(4096, 12);
    await upload('proxy/range', bytes, 4096);
    proxy.reset();
    const got = await fetch(`${proxy.url}/v2/proxy/range/blobs/${sha256(bytes)}`, {
      headers: { range: 'bytes=100-199' },
    });
    expect(got.status).toBe(206);
    expect(new Uint8Array(await got.arrayBuffer())).toEqual(bytes.subarray(100, 200));
    expect(proxy.requests()).toEqual([
      {
        method: 'GET',
        path: `/v2/proxy/range/blobs/${sha256(bytes)}`,
        query: '',
        status: 206,
        injected: false,
      },
    ]);
  });

  it('counts by method, path (exact or RegExp) and status', async () => {
    const bytes = randomBytes(100, 13);
    await upload('proxy/count', bytes, 100);
    const digest = sha256(bytes);
    proxy.reset();
    for (let i = 0; i < 3; i++)
      await (await fetch(`${proxy.url}/v2/proxy/count/blobs/${digest}`, { method: 'HEAD' })).arrayBuffer();
    await (await fetch(`${proxy.url}/v2/proxy/count/blobs/${digest}`)).arrayBuffer();
    await (await fetch(`${proxy.url}/v2/proxy/count/manifests/missing`)).arrayBuffer();
    expect(proxy.count()).toBe(5);
    expect(proxy.count({ method: 'head' })).toBe(3);
    expect(proxy.count({ method: 'GET', path: `/v2/proxy/count/blobs/${digest}` })).toBe(1);
    expect(proxy.count({ path: /\/manifests\// })).toBe(1);
    expect(proxy.count({ status: 404 })).toBe(1);
    expect(proxy.count({ status: 200 })).toBe(4);
    expect(proxy.count((r) => r.method === 'HEAD' && r.status === 200)).toBe(3);
    proxy.reset();
    expect(proxy.requests()).toEqual([]);
    expect(proxy.count()).toBe(0);
  });

  it('failNext answers the matching requests with the status and Retry-After, then forwards again', async () => {
    const bytes = randomBytes(100, 14);
    await upload('proxy/fault', bytes, 100);
    const digest = sha256(bytes);
    const blobPath = `/v2/proxy/fault/blobs/${digest}`;
    proxy.reset();
    proxy.failNext({ status: 503, times: 2, match: { method: 'GET', path: blobPath }, retryAfter: 7 });

    // a request the fault does not match goes through
    const head = await fetch(`${proxy.url}${blobPath}`, { method: 'HEAD' });
    expect(head.status).toBe(200);
    for (let i = 0; i < 2; i++) {
      const failed = await fetch(`${proxy.url}${blobPath}`);
      expect(failed.status).toBe(503);
      expect(failed.headers.get('retry-after')).toBe('7');
      const body = (await failed.json()) as { errors: { code: string }[] };
      expect(body.errors[0]?.code).toBe('UNAVAILABLE');
    }
    const third = await fetch(`${proxy.url}${blobPath}`);
    expect(third.status).toBe(200);
    expect(sha256(new Uint8Array(await third.arrayBuffer()))).toBe(digest);
    expect(proxy.requests().map((r) => [r.method, r.status, r.injected])).toEqual([
      ['HEAD', 200, false],
      ['GET', 503, true],
      ['GET', 503, true],
      ['GET', 200, false],
    ]);
    expect(proxy.count({ injected: true })).toBe(2);
  });

  it('failNext takes faults in the order armed; a 429 says TOOMANYREQUESTS; reset drops unused faults', async () => {
    proxy.failNext({
      status: 429,
      match: { path: /\/tags\/list$/ },
      retryAfter: 'Wed, 21 Oct 2015 07:28:00 GMT',
    });
    proxy.failNext({ status: 500, match: (r) => r.path.endsWith('/tags/list') });
    const first = await fetch(`${proxy.url}/v2/proxy/fault/tags/list`);
    expect(first.status).toBe(429);
    expect(first.headers.get('retry-after')).toBe('Wed, 21 Oct 2015 07:28:00 GMT');
    expect(((await first.json()) as { errors: { code: string }[] }).errors[0]?.code).toBe('TOOMANYREQUESTS');
    const second = await fetch(`${proxy.url}/v2/proxy/fault/tags/list`);
    expect(second.status).toBe(500);
    await second.arrayBuffer();
    // the faults are used up: the registry answers (the repository has no tags: its 404)
    const third = await fetch(`${proxy.url}/v2/proxy/fault/tags/list`);
    expect(third.status).toBe(404);
    expect(((await third.json()) as { errors: { code: string }[] }).errors[0]?.code).toBe('NAME_UNKNOWN');
    expect(proxy.requests().map((r) => [r.status, r.injected])).toEqual([
      [429, true],
      [500, true],
      [404, false],
    ]);

    proxy.failNext({ status: 503, times: 5 });
    proxy.reset();
    const after = await fetch(`${proxy.url}/v2/`);
    expect(after.status).toBe(200);
    await after.arrayBuffer();
    expect(proxy.requests()).toEqual([
      { method: 'GET', path: '/v2/', query: '', status: 200, injected: false },
    ]);
  });

  it('refuses a fault that is not one', () => {
    expect(() => proxy.failNext({ status: 42 })).toThrow(/status/);
    expect(() => proxy.failNext({ status: 503, times: 0 })).toThrow(/times/);
  });
});

describe('startCountingProxy with nothing behind it', () => {
  it('answers 502 and records it', async () => {
    const proxy = await startCountingProxy({ target: `http://127.0.0.1:${await freePort()}` });
    try {
      const response = await fetch(`${proxy.url}/v2/`);
      expect(response.status).toBe(502);
      await response.arrayBuffer();
      expect(proxy.requests()).toEqual([
        { method: 'GET', path: '/v2/', query: '', status: 502, injected: false },
      ]);
      expect(proxy.url).toBe(`http://${proxy.host}`);
      expect(proxy.port).toBeGreaterThan(0);
    } finally {
      await proxy.close();
    }
  });

  it('refuses a target that is not an http URL', async () => {
    await expect(startCountingProxy({ target: 'https://127.0.0.1:1' })).rejects.toThrow(/http:\/\//);
    await expect(startCountingProxy({ target: 'nope' })).rejects.toThrow(/not a URL/);
  });
});
