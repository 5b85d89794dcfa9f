import { createHash } from 'node:crypto';
import diagnosticsChannel from 'node:diagnostics_channel';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buffer } from 'node:stream/consumers';
import {
  type Digest,
  DigestMismatchError,
  digestOf,
  fullCapabilities,
  isStowageError,
  MediaType,
  markVerified,
  RegistryError,
} from '@stowage/oci';
import { findExecutable, selfSignedCertificate } from '@stowage/testing';
import { afterEach, describe, expect, it } from 'vitest';
import { distributionCapabilities } from './api/ping.js';
import { createRegistryClient, type RegistryClient } from './client.js';
import { isResponseError, RegistryResponseError, RegistryServerError } from './errors.js';
import { REQUEST_CHANNEL, type RequestEvent } from './internal/transport.js';
import type { RegistryClientOptions } from './options.js';

interface Seen {
  readonly method: string;
  readonly url: string;
  readonly headers: IncomingMessage['headers'];
  readonly body: Buffer;
  /** The client's port: the same one on requests that shared a connection. */
  readonly port: number | undefined;
}

type Handler = (request: Seen, response: ServerResponse) => unknown;

interface Fake {
  readonly host: string;
  readonly url: string;
  readonly seen: Seen[];
  handle: Handler;
  close(): Promise<void>;
}

const opened: { close(): Promise<void> }[] = [];

async function fake(handle: Handler): Promise<Fake> {
  const seen: Seen[] = [];
  const state = { handle };
  const server: Server = createServer(async (request, response) => {
    let body: Buffer;
    try {
      body = await buffer(request);
    } catch {
      return; // the client gave up sending (an upload it refused to finish)
    }
    const record = {
      method: request.method ?? 'GET',
      url: request.url ?? '/',
      headers: request.headers,
      body,
      port: request.socket.remotePort,
    };
    seen.push(record);
    await state.handle(record, response);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const host = `127.0.0.1:${(server.address() as AddressInfo).port}`;
  const result: Fake = {
    host,
    url: `http://${host}`,
    seen,
    get handle() {
      return state.handle;
    },
    set handle(value: Handler) {
      state.handle = value;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
  opened.push(result);
  return result;
}

function client(options: RegistryClientOptions): RegistryClient {
  const created = createRegistryClient({
    auth: { useConfigFiles: false },
    retry: { retries: 3, minDelayMs: 1, maxDelayMs: 5 },
    ...options,
  });
  opened.push(created);
  return created;
}

afterEach(async () => {
  await Promise.all(opened.splice(0).map((o) => o.close()));
});

function json(response: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}) {
  response.writeHead(status, { 'content-type': 'application/json', ...headers });
  response.end(JSON.stringify(body));
}

const content = Buffer.from('the quick brown fox jumps over the lazy dog '.repeat(2_000));
const contentDigest = digestOf(content);

describe('verification of pulled bytes', () => {
  it('fails the blob stream with DigestMismatchError when the bytes are wrong', async () => {
    const server = await fake((request, response) => {
      if (request.url === '/v2/') return json(response, 200, {});
      const tampered = Buffer.from(content);
      tampered[100] = 0x21;
      response.writeHead(200, { 'content-length': String(tampered.length) });
      response.end(tampered);
    });
    const blob = await client({ registry: server.host }).getBlob('a/b', contentDigest);
    expect(blob.size).toBe(content.length);
    const error = await buffer(blob.stream).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(DigestMismatchError);
  });

  it('fails a manifest pulled by digest, or whose Docker-Content-Digest disagrees', async () => {
    const manifest = Buffer.from(
      JSON.stringify({ schemaVersion: 2, mediaType: MediaType.OciIndex, manifests: [] }),
    );
    const digest = digestOf(manifest);
    const server = await fake((request, response) => {
      if (request.url === '/v2/') return json(response, 200, {});
      if (request.url.endsWith(digest)) {
        response.writeHead(200, { 'content-type': MediaType.OciIndex });
        return response.end(Buffer.concat([manifest, Buffer.from(' ')]));
      }
      response.writeHead(200, {
        'content-type': MediaType.OciIndex,
        'docker-content-digest': digestOf('other'),
      });
      response.end(manifest);
    });
    const registry = client({ registry: server.host });
    await expect(registry.getManifest('a/b', digest)).rejects.toBeInstanceOf(DigestMismatchError);
    await expect(registry.getManifest('a/b', 'latest')).rejects.toBeInstanceOf(DigestMismatchError);
  });

  it('takes the media type from the body when Content-Type is generic', async () => {
    const manifest = Buffer.from(
      JSON.stringify({ schemaVersion: 2, mediaType: MediaType.DockerManifestList, manifests: [] }),
    );
    const server = await fake((request, response) => {
      if (request.url === '/v2/') return json(response, 200, {});
      response.writeHead(200, { 'content-type': 'application/json; charset=utf-8' });
      response.end(manifest);
    });
    const got = await client({ registry: server.host }).getManifest('a/b', 'v1');
    expect(got).toMatchObject({
      mediaType: MediaType.DockerManifestList,
      digest: digestOf(manifest),
      size: manifest.length,
    });
    expect(got.bytes).toEqual(new Uint8Array(manifest));
  });
});

describe('broken downloads', () => {
  it('resumes from the byte reached with a Range request, under the same hash', async () => {
    let first = true;
    const server = await fake((request, response) => {
      if (request.url === '/v2/') return json(response, 200, {});
      const range = /bytes=(\d+)-/.exec(request.headers.range ?? '');
      if (first) {
        first = false;
        response.writeHead(200, { 'content-length': String(content.length) });
        response.write(content.subarray(0, 30_000));
        setTimeout(() => response.socket?.destroy(), 20);
        return;
      }
      const start = Number(range?.[1] ?? 0);
      response.writeHead(206, {
        'content-length': String(content.length - start),
        'content-range': `bytes ${start}-${content.length - 1}/${content.length}`,
      });
      response.end(content.subarray(start));
    });
    const blob = await client({ registry: server.host }).getBlob('a/b', contentDigest);
    expect(Buffer.compare(await buffer(blob.stream), content)).toBe(0);
    const gets = server.seen.filter((s) => s.method === 'GET' && s.url.includes('/blobs/'));
    expect(gets).toHaveLength(2);
    expect(Number(/bytes=(\d+)-/.exec(gets[1]?.headers.range ?? '')?.[1])).toBeGreaterThan(0);
  });

  it('serves a range, verifying the whole blob when the registry ignores Range', async () => {
    const server = await fake((request, response) => {
      if (request.url === '/v2/') return json(response, 200, {});
      response.writeHead(200, { 'content-length': String(content.length) });
      response.end(content);
    });
    const part = await client({ registry: server.host }).getBlob('a/b', contentDigest, {
      range: { start: 4, end: 8 },
    });
    expect(part.range).toEqual({ start: 4, end: 8 });
    expect((await buffer(part.stream)).toString()).toBe('quick');
  });
});

describe('mirrors and redirects', () => {
  it('tries mirrors first for pulls by digest, and the registry when they fail; tags only at the registry', async () => {
    const index = Buffer.from(
      JSON.stringify({ schemaVersion: 2, mediaType: MediaType.OciIndex, manifests: [] }),
    );
    const origin = await fake((request, response) => {
      if (request.url === '/v2/') return json(response, 200, {});
      if (request.url.includes('/manifests/')) {
        response.writeHead(200, { 'content-type': MediaType.OciIndex });
        return response.end(index);
      }
      response.writeHead(200, { 'content-length': String(content.length) });
      response.end(content);
    });
    const badMirror = await fake((request, response) => {
      if (request.url === '/v2/') return json(response, 200, {});
      if (request.url.includes('/manifests/')) {
        response.writeHead(200, { 'content-type': MediaType.OciIndex });
        return response.end('{"tampered":true}');
      }
      json(response, 404, { errors: [{ code: 'BLOB_UNKNOWN', message: 'no' }] });
    });
    const goodMirror = await fake((request, response) => {
      if (request.url === '/v2/') return json(response, 200, {});
      response.writeHead(200, { 'content-length': String(content.length) });
      response.end(content);
    });
    const registry = client({ registry: origin.host, mirrors: [badMirror.host, goodMirror.host] });
    expect(Buffer.compare(await buffer((await registry.getBlob('a/b', contentDigest)).stream), content)).toBe(
      0,
    );
    expect(goodMirror.seen.some((s) => s.url.includes('/blobs/'))).toBe(true);
    expect(origin.seen.some((s) => s.url.includes('/blobs/'))).toBe(false);

    const byDigest = await registry.getManifest('a/b', digestOf(index));
    expect(byDigest.digest).toBe(digestOf(index));
    await registry.getManifest('a/b', 'latest');
    expect(badMirror.seen.filter((s) => s.url.includes('/manifests/')).map((s) => s.url)).toEqual([
      `/v2/a/b/manifests/${digestOf(index)}`,
    ]);
  });

  it('follows a blob redirect to storage without sending the registry credentials there', async () => {
    const storage = await fake((_request, response) => {
      response.writeHead(200, { 'content-length': String(content.length) });
      response.end(content);
    });
    const origin = await fake((request, response) => {
      if (request.headers.authorization === undefined) {
        return json(response, 401, {}, { 'www-authenticate': 'Basic realm="fake"' });
      }
      if (request.url === '/v2/') return json(response, 200, {});
      response.writeHead(307, { location: `${storage.url}/blobs/x?X-Amz-Signature=s3cr3t` });
      response.end();
    });
    const registry = client({ registry: origin.host, credentials: { username: 'u', password: 'p' } });
    const blob = await registry.getBlob('a/b', contentDigest);
    expect(Buffer.compare(await buffer(blob.stream), content)).toBe(0);
    expect(storage.seen).toHaveLength(1);
    expect(storage.seen[0]?.headers.authorization).toBeUndefined();
    expect(origin.seen.at(-1)?.headers.authorization).toMatch(/^Basic /);
  });
});

describe('transport policies', () => {
  it('keeps the connection after a HEAD (a copy HEADs every blob)', async () => {
    const server = await fake((request, response) => {
      if (request.url === '/v2/') return json(response, 200, {});
      response.writeHead(404, { 'content-length': '0' });
      response.end();
    });
    const registry = client({ registry: server.host });
    for (const text of ['a', 'b', 'c', 'd', 'e', 'f'])
      expect(await registry.headBlob('a/b', digestOf(text))).toBeUndefined();
    const heads = server.seen.filter((s) => s.method === 'HEAD');
    expect(heads).toHaveLength(6);
    // one after the other, on the pool's connections (the ping's and one more), none closed after
    expect(new Set(heads.map((s) => s.port)).size).toBeLessThanOrEqual(2);
  });

  it('retries 429 and 503 honouring Retry-After, then succeeds', async () => {
    let calls = 0;
    const server = await fake((request, response) => {
      if (request.url === '/v2/') return json(response, 200, {});
      calls++;
      if (calls === 1)
        return json(
          response,
          429,
          { errors: [{ code: 'TOOMANYREQUESTS', message: 'slow down' }] },
          { 'retry-after': '0' },
        );
      if (calls === 2)
        return json(response, 503, {}, { 'retry-after': new Date(Date.now() - 1000).toUTCString() });
      json(response, 200, { name: 'a/b', tags: ['v1'] });
    });
    expect((await client({ registry: server.host }).listTags('a/b')).items).toEqual(['v1']);
    expect(calls).toBe(3);
  });

  it('raises typed errors with diagnostics after the retries run out', async () => {
    const server = await fake((request, response) => {
      if (request.url === '/v2/') return json(response, 200, {});
      json(
        response,
        429,
        { errors: [{ code: 'TOOMANYREQUESTS', message: 'slow down', detail: { limit: 1 } }] },
        { 'retry-after': '0' },
      );
    });
    const error = await client({ registry: server.host, retry: { retries: 1, minDelayMs: 1 } })
      .listTags('a/b')
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RegistryResponseError);
    expect(error).toMatchObject({ code: 'TOOMANYREQUESTS', status: 429, method: 'GET', retryable: true });
    expect((error as RegistryResponseError).diagnostics).toEqual([
      { code: 'TOOMANYREQUESTS', message: 'slow down', detail: { limit: 1 } },
    ]);
    expect(server.seen.filter((s) => s.url.includes('tags')).length).toBe(2);
  });

  it('reports an unreachable registry as a retryable NETWORK_ERROR', async () => {
    const server = await fake(() => {});
    const host = server.host;
    await server.close();
    const error = await client({ registry: host, retry: { retries: 1, minDelayMs: 1 } })
      .listTags('a/b')
      .catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'NETWORK_ERROR', retryable: true });
  });

  it('validates input before any request', async () => {
    const server = await fake((_request, response) => json(response, 200, {}));
    const registry = client({ registry: server.host });
    await expect(registry.listTags('UPPER/case')).rejects.toMatchObject({ code: 'NAME_INVALID' });
    await expect(registry.getManifest('a/b', 'bad tag!')).rejects.toMatchObject({ code: 'TAG_INVALID' });
    await expect(registry.headBlob('a/b', 'sha256:nope' as Digest)).rejects.toMatchObject({
      code: 'DIGEST_INVALID',
    });
    await expect(
      registry.putBlob('a/b', new Uint8Array([1]), { digest: digestOf(new Uint8Array([2])) }),
    ).rejects.toBeInstanceOf(DigestMismatchError);
    await expect(registry.getUpload('a/b', 'garbage')).rejects.toMatchObject({ code: 'BLOB_UPLOAD_UNKNOWN' });
    expect(server.seen).toHaveLength(0);
  });

  it("aborts with the caller's reason", async () => {
    const server = await fake(() => {}); // never answers
    const registry = client({ registry: server.host });
    const controller = new AbortController();
    const pending = registry.listTags('a/b', { signal: controller.signal });
    setTimeout(() => controller.abort(new Error('user gave up')), 20);
    await expect(pending).rejects.toThrow('user gave up');
  });

  it('publishes request events on diagnostics_channel, without credentials', async () => {
    const events: RequestEvent[] = [];
    const listener = (message: unknown) => events.push(message as RequestEvent);
    diagnosticsChannel.subscribe(REQUEST_CHANNEL, listener);
    try {
      const server = await fake((request, response) => {
        if (request.headers.authorization === undefined) {
          return json(response, 401, {}, { 'www-authenticate': 'Basic realm="x"' });
        }
        json(response, 200, { name: 'a/b', tags: [] });
      });
      await client({ registry: server.host, credentials: { username: 'u', password: 'hunter2' } }).listTags(
        'a/b',
      );
      expect(events.map((e) => `${e.method} ${e.status}`)).toEqual(['GET 401', 'GET 200']);
      expect(JSON.stringify(events)).not.toContain('hunter2');
    } finally {
      diagnosticsChannel.unsubscribe(REQUEST_CHANNEL, listener);
    }
  });
});

describe('TLS', () => {
  it.skipIf(!findExecutable('openssl'))(
    'trusts a CA given per host, and refuses an unknown certificate',
    async () => {
      const dir = await mkdtemp(join(tmpdir(), 'stowage-tls-'));
      try {
        await selfSignedCertificate({ dir, ip: '127.0.0.1', days: 1 });
        const cert = await readFile(join(dir, 'cert.pem'));
        const server = createHttpsServer(
          { key: await readFile(join(dir, 'key.pem')), cert },
          (_request, response) => json(response, 200, { name: 'a/b', tags: ['secure'] }),
        );
        await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
        opened.push({ close: () => new Promise<void>((resolve) => server.close(() => resolve())) });
        const host = `127.0.0.1:${(server.address() as AddressInfo).port}`;
        const trusted = client({ registry: host, tls: { [host]: { ca: cert } } });
        expect((await trusted.listTags('a/b')).items).toEqual(['secure']);
        const skipVerify = client({ registry: host, tls: { '127.0.0.1': { rejectUnauthorized: false } } });
        expect((await skipVerify.listTags('a/b')).items).toEqual(['secure']);
        const strict = client({ registry: host, tls: { [host]: {} }, retry: { retries: 0 } });
        await expect(strict.listTags('a/b')).rejects.toMatchObject({ code: 'NETWORK_ERROR' });
        server.closeAllConnections();
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    },
  );
});

describe('uploads', () => {
  /** A registry that keeps upload sessions in memory, rotates their Location and can break a PATCH once. */
  async function uploadServer(
    options: { breakFirstPatchAfter?: number; chunkMinLength?: number; singlePost?: boolean } = {},
  ) {
    const sessions = new Map<string, Buffer>();
    const blobs = new Map<string, Buffer>();
    let counter = 0;
    let broken = false;
    const server = await fake((request, response) => {
      const url = new URL(request.url, 'http://x');
      if (url.pathname === '/v2/') return json(response, 200, {});
      const blob = /^\/v2\/(.+)\/blobs\/(sha256:[a-f0-9]{64})$/.exec(url.pathname);
      if (blob) {
        const found = blobs.get(blob[2] as string);
        if (!found) return json(response, 404, { errors: [{ code: 'BLOB_UNKNOWN', message: 'unknown' }] });
        response.writeHead(200, { 'content-length': String(found.length) });
        return response.end(request.method === 'HEAD' ? undefined : found);
      }
      const location = (id: string) => `/v2/a/b/blobs/uploads/${id}?_state=${++counter}`;
      const range = (id: string) => {
        const size = sessions.get(id)?.length ?? 0;
        return `0-${Math.max(0, size - 1)}`;
      };
      const single = url.searchParams.get('digest');
      if (request.method === 'POST' && options.singlePost && single) {
        if (`sha256:${createHash('sha256').update(request.body).digest('hex')}` !== single) {
          return json(response, 400, { errors: [{ code: 'DIGEST_INVALID', message: 'bad digest' }] });
        }
        blobs.set(single, request.body);
        response.writeHead(201, { 'docker-content-digest': single, location: `/v2/a/b/blobs/${single}` });
        return response.end();
      }
      if (request.method === 'POST') {
        const id = `s${++counter}`;
        sessions.set(id, Buffer.alloc(0));
        const headers: Record<string, string> = { location: location(id), range: '0-0' };
        if (options.chunkMinLength) headers['oci-chunk-min-length'] = String(options.chunkMinLength);
        response.writeHead(202, headers);
        return response.end();
      }
      const id = /uploads\/([^/?]+)/.exec(url.pathname)?.[1] ?? '';
      const current = sessions.get(id);
      if (current === undefined)
        return json(response, 404, { errors: [{ code: 'BLOB_UPLOAD_UNKNOWN', message: 'gone' }] });
      if (request.method === 'GET') {
        response.writeHead(204, { location: location(id), range: range(id) });
        return response.end();
      }
      if (request.method === 'PATCH') {
        const start = Number(/^(\d+)-/.exec(request.headers['content-range'] ?? '')?.[1] ?? current.length);
        if (start !== current.length)
          return json(response, 416, { errors: [{ code: 'BLOB_UPLOAD_INVALID', message: 'range' }] });
        if (options.breakFirstPatchAfter !== undefined && !broken && current.length > 0) {
          broken = true;
          sessions.set(id, Buffer.concat([current, request.body.subarray(0, options.breakFirstPatchAfter)]));
          return response.socket?.destroy();
        }
        sessions.set(id, Buffer.concat([current, request.body]));
        response.writeHead(202, { location: location(id), range: range(id) });
        return response.end();
      }
      if (request.method === 'PUT') {
        const all = Buffer.concat([current, request.body]);
        const digest = url.searchParams.get('digest') ?? '';
        if (`sha256:${createHash('sha256').update(all).digest('hex')}` !== digest) {
          return json(response, 400, { errors: [{ code: 'DIGEST_INVALID', message: 'bad digest' }] });
        }
        sessions.delete(id);
        blobs.set(digest, all);
        response.writeHead(201, { 'docker-content-digest': digest, location: `/v2/a/b/blobs/${digest}` });
        return response.end();
      }
      if (request.method === 'DELETE') {
        sessions.delete(id);
        response.writeHead(204);
        return response.end();
      }
      json(response, 405, {});
    });
    return { server, sessions, blobs };
  }

  async function* stream(data: Buffer, piece = 10_000) {
    for (let i = 0; i < data.length; i += piece) yield data.subarray(i, i + piece);
  }

  it('streams a large blob in Content-Range chunks and resumes a chunk that broke mid-way', async () => {
    const { server, blobs, sessions } = await uploadServer({ breakFirstPatchAfter: 1_000 });
    const registry = client({ registry: server.host, chunkSize: 20_000, monolithicMaxBytes: 0 });
    const result = await registry.putBlob('a/b', stream(content), { digest: contentDigest });
    expect(result).toEqual({ digest: contentDigest, size: content.length });
    expect(Buffer.compare(blobs.get(contentDigest) as Buffer, content)).toBe(0);
    expect(sessions.size).toBe(0);
    const patches = server.seen.filter((s) => s.method === 'PATCH').map((s) => s.headers['content-range']);
    // The second chunk broke after 1,000 bytes: it was resent from byte 21,000 after a status query.
    expect(patches.slice(0, 3)).toEqual(['0-19999', '20000-39999', '21000-39999']);
    expect(server.seen.some((s) => s.method === 'GET' && s.url.includes('/uploads/'))).toBe(true);
  });

  it('asks whether the blob is there before uploading, unless the caller says it just found it absent', async () => {
    const { server, blobs } = await uploadServer();
    const registry = client({ registry: server.host });
    const heads = () => server.seen.filter((s) => s.method === 'HEAD').length;
    await registry.putBlob('a/b', stream(content), { digest: contentDigest });
    expect(heads()).toBe(1);
    blobs.clear();
    await registry.putBlob('a/b', stream(content), { digest: contentDigest, knownAbsent: true });
    expect(heads()).toBe(1);
    expect(Buffer.compare(blobs.get(contentDigest) as Buffer, content)).toBe(0);
  });

  it('trusts a body its producer verifies, and still never sends its last chunk when it fails at the end', async () => {
    const { server, blobs, sessions } = await uploadServer();
    const registry = client({ registry: server.host });
    // the producer's own check fails after the last chunk (a copy whose source sent wrong bytes)
    async function* failingAtEnd() {
      yield* stream(content);
      throw new DigestMismatchError(contentDigest, digestOf('other'));
    }
    const error = await registry
      .putBlob('a/b', markVerified(failingAtEnd(), contentDigest), {
        digest: contentDigest,
        size: content.length,
        knownAbsent: true,
      })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(DigestMismatchError);
    expect(blobs.size).toBe(0);
    expect(sessions.size).toBe(0);
    const ok = await registry.putBlob('a/b', markVerified(stream(content), contentDigest), {
      digest: contentDigest,
      size: content.length,
    });
    expect(ok).toEqual({ digest: contentDigest, size: content.length });
    expect(Buffer.compare(blobs.get(contentDigest) as Buffer, content)).toBe(0);
  });

  it('never commits a streamed blob whose digest is wrong, and cancels its session', async () => {
    const { server, blobs, sessions } = await uploadServer();
    const registry = client({ registry: server.host, chunkSize: 20_000, monolithicMaxBytes: 0 });
    const wrong = digestOf('something else');
    await expect(registry.putBlob('a/b', stream(content), { digest: wrong })).rejects.toBeInstanceOf(
      DigestMismatchError,
    );
    expect(blobs.size).toBe(0);
    expect(sessions.size).toBe(0);
    expect(server.seen.some((s) => s.method === 'PUT')).toBe(false);
  });

  it('never commits a monolithic streamed blob whose bytes are wrong: the last bytes are held back', async () => {
    const { server, blobs, sessions } = await uploadServer();
    const registry = client({ registry: server.host });
    const error = await registry
      .putBlob('a/b', stream(content), { digest: digestOf('other'), size: content.length })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(DigestMismatchError);
    expect(blobs.size).toBe(0);
    expect(sessions.size).toBe(0);
    const short = await registry
      .putBlob('a/b', stream(content.subarray(0, 10)), { digest: contentDigest, size: content.length })
      .catch((e: unknown) => e);
    expect(isStowageError(short, 'SIZE_INVALID')).toBe(true);
    expect(blobs.size).toBe(0);
  });

  it('appends a stream in bounded chunks and refuses a chunk that breaks its declared length', async () => {
    const { server, blobs } = await uploadServer();
    const registry = client({ registry: server.host, chunkSize: 16_000 });
    const started = await registry.startUpload('a/b');
    const appended = await registry.appendUpload('a/b', started.id, {
      body: stream(content),
      offset: 0,
      length: content.length,
    });
    expect(appended.offset).toBe(content.length);
    const patchSizes = server.seen.filter((s) => s.method === 'PATCH').map((s) => s.body.length);
    expect(Math.max(...patchSizes)).toBe(16_000);
    await expect(
      registry.appendUpload('a/b', appended.id, { body: stream(Buffer.from('12345')), length: 6 }),
    ).rejects.toMatchObject({ code: 'SIZE_INVALID' });
    expect((await registry.getUpload('a/b', appended.id)).offset).toBe(content.length);
    await registry.finishUpload('a/b', appended.id, { digest: contentDigest });
    expect(blobs.has(contentDigest)).toBe(true);
  });

  it('a small streamed blob of known size goes in one POST ?digest=, and through a session where that is refused', async () => {
    const small = content.subarray(0, 30_000);
    const digest = digestOf(small);
    for (const singlePost of [true, false]) {
      const { server, blobs, sessions } = await uploadServer({ singlePost });
      const registry = client({ registry: server.host });
      // twice: the second shows what the client learnt from the first
      for (const _ of [1, 2]) {
        blobs.clear();
        expect(await registry.putBlob('a/b', stream(small), { digest, size: small.length })).toEqual({
          digest,
          size: small.length,
        });
        expect(Buffer.compare(blobs.get(digest) as Buffer, small)).toBe(0);
      }
      const uploads = server.seen
        .filter((s) => s.method !== 'HEAD' && s.method !== 'GET')
        .map(
          (s) =>
            `${s.method} ${s.url.includes('?digest=') ? 'digest' : s.url.includes('uploads/s') ? 'session' : 'new'}`,
        );
      // refused: the body sent with the first POST was dropped, and the bytes read whole are sent again
      expect(uploads).toEqual(
        singlePost
          ? ['POST digest', 'POST digest']
          : ['POST digest', 'PUT session', 'POST new', 'PUT session'],
      );
      expect(sessions.size).toBe(0);
    }
    // Beyond the limit, or of unknown size, a streamed blob never goes whole into memory.
    const { server } = await uploadServer({ singlePost: true });
    const limited = client({ registry: server.host, singleRequestMaxBytes: 20_000 });
    await limited.putBlob('a/b', stream(small), { digest, size: small.length });
    await limited.putBlob('a/b', stream(small), { digest });
    expect(server.seen.filter((s) => s.url.includes('?digest=') && s.method === 'POST')).toEqual([]);
  });

  it('honours OCI-Chunk-Min-Length', async () => {
    const { server } = await uploadServer({ chunkMinLength: 50_000 });
    const registry = client({
      registry: server.host,
      chunkSize: 20_000,
      monolithicMaxBytes: 0,
      singleRequestMaxBytes: 0,
    });
    await registry.putBlob('a/b', stream(content), { digest: contentDigest });
    const sizes = server.seen.filter((s) => s.method === 'PATCH').map((s) => s.body.length);
    expect(sizes.slice(0, -1).every((size) => size >= 50_000)).toBe(true);
  });

  it('restarts from a re-openable source when the session is lost', async () => {
    const { server, blobs, sessions } = await uploadServer();
    let opens = 0;
    let dropped = false;
    const original = server.handle;
    server.handle = (request, response) => {
      // A re-openable source streams in one PUT; drop the session in the middle of it.
      if (request.method === 'PUT' && !dropped) {
        dropped = true;
        sessions.clear(); // the registry forgot the session (restart, purge)
        return response.socket?.destroy();
      }
      return original(request, response);
    };
    const registry = client({ registry: server.host, chunkSize: 20_000, monolithicMaxBytes: 0 });
    const result = await registry.putBlob(
      'a/b',
      () => {
        opens++;
        return stream(content);
      },
      { digest: contentDigest, size: content.length },
    );
    expect(result.size).toBe(content.length);
    expect(opens).toBe(2);
    expect(blobs.has(contentDigest)).toBe(true);
  });

  it('keeps the latest Location: an upload session id keeps working after the registry rotates it', async () => {
    const { server, blobs } = await uploadServer();
    const registry = client({ registry: server.host });
    const started = await registry.startUpload('a/b');
    const first = await registry.appendUpload('a/b', started.id, {
      body: content.subarray(0, 100),
      offset: 0,
    });
    expect(first.offset).toBe(100);
    // Appending with the original id still goes to the latest Location.
    const second = await registry.appendUpload('a/b', started.id, {
      body: content.subarray(100, 300),
      offset: 100,
    });
    expect(second.offset).toBe(300);
    await expect(
      registry.appendUpload('a/b', started.id, { body: content.subarray(0, 5), offset: 0 }),
    ).rejects.toMatchObject({ code: 'RANGE_INVALID' });
    // A client that never saw the session (another process) finds the offset with a status query.
    const other = client({ registry: server.host });
    expect((await other.getUpload('a/b', second.id)).offset).toBe(300);
    const done = await other.finishUpload('a/b', second.id, {
      digest: digestOf(content.subarray(0, 400)),
      body: content.subarray(300, 400),
      offset: 300,
    });
    expect(done).toEqual({ digest: digestOf(content.subarray(0, 400)), size: 400 });
    expect(blobs.has(done.digest)).toBe(true);
  });

  it('checks the digest of a session it fed before committing it', async () => {
    const { server, blobs } = await uploadServer();
    const registry = client({ registry: server.host });
    const started = await registry.startUpload('a/b');
    const appended = await registry.appendUpload('a/b', started.id, { body: content.subarray(0, 10) });
    const error = await registry
      .finishUpload('a/b', appended.id, { digest: digestOf('not it') })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(DigestMismatchError);
    expect(server.seen.some((s) => s.method === 'PUT')).toBe(false);
    expect(blobs.size).toBe(0);
    expect(isStowageError(error, 'DIGEST_INVALID')).toBe(true);
  });
});

describe('capabilities and origin', () => {
  const manifest = Buffer.from(
    JSON.stringify({ schemaVersion: 2, mediaType: MediaType.OciIndex, manifests: [] }),
  );

  /** A registry that answers `/v2/` with the given `Stowage-Capabilities` (none when undefined) and takes manifests. */
  function declaring(header: string | undefined) {
    return fake((request, response) => {
      if (request.url === '/v2/')
        return json(response, 200, {}, header === undefined ? {} : { 'stowage-capabilities': header });
      if (request.method === 'PUT') {
        response.writeHead(201, { 'docker-content-digest': digestOf(request.body) });
        return response.end();
      }
      json(response, 404, { errors: [{ code: 'MANIFEST_UNKNOWN', message: 'unknown' }] });
    });
  }

  it('reads the Stowage-Capabilities header of the /v2/ ping, once per client', async () => {
    const server = await declaring(
      'catalog, catalogPaging, tagPaging, deleteTag, deleteManifest, deleteBlob, mount, anonymousMount, uploadStatus, ranges, sha512, sparseIndex, lock, futureThing, referrers=api',
    );
    const registry = client({ registry: server.host });
    const capabilities = await registry.capabilities();
    // everything the header names, an unknown name ignored
    expect(capabilities).toMatchObject({
      catalog: true,
      deleteBlob: true,
      sparseIndex: true,
      referrers: 'api',
    });
    expect(capabilities).not.toHaveProperty('futureThing');
    // the client's own, named or not: it has sessions and checks chunk offsets itself, and has no lock or GC
    expect(capabilities).toMatchObject({
      uploadSessions: true,
      outOfOrderChunkRefusal: true,
      lock: false,
      garbageCollect: false,
    });
    expect(capabilities).toEqual({ ...fullCapabilities, lock: false, garbageCollect: false });
    expect(await registry.capabilities()).toBe(capabilities);
    expect(server.seen.filter((s) => s.url === '/v2/')).toHaveLength(1);
  });

  it('takes the distribution 2.8 profile without the header, and the option over both', async () => {
    const plain = await declaring(undefined);
    const profile = await client({ registry: plain.host }).capabilities();
    expect(profile).toEqual(distributionCapabilities);
    expect(profile).toMatchObject({
      deleteTag: false,
      anonymousMount: false,
      sparseIndex: false,
      lock: false,
      garbageCollect: false,
      referrers: 'tag-schema',
      catalog: true,
      mount: true,
      tagPaging: true,
    });
    const overridden = await client({
      registry: plain.host,
      capabilities: { deleteTag: true, sha512: false },
    }).capabilities();
    expect(overridden).toMatchObject({ deleteTag: true, sha512: false, anonymousMount: false });
    const declared = await declaring('catalog, referrers=none');
    expect(
      await client({ registry: declared.host, capabilities: { catalog: false } }).capabilities(),
    ).toMatchObject({ catalog: false, deleteBlob: false, referrers: 'tag-schema' });
  });

  it('refuses an invalid capabilities option', () => {
    expect(() =>
      createRegistryClient({ registry: '127.0.0.1:1', capabilities: { referrers: 'maybe' as 'api' } }),
    ).toThrow(expect.objectContaining({ code: 'OPTIONS_INVALID' }));
    expect(() =>
      createRegistryClient({ registry: '127.0.0.1:1', capabilities: { lock: 'yes' as unknown as boolean } }),
    ).toThrow(expect.objectContaining({ code: 'OPTIONS_INVALID' }));
  });

  it('sends a sparse index with Stowage-Sparse-Index when the registry declares sparseIndex', async () => {
    const server = await declaring('sparseIndex, referrers=api');
    const registry = client({ registry: server.host });
    await registry.putManifest('a/b', 'v1', { bytes: manifest, mediaType: MediaType.OciIndex, sparse: true });
    await registry.putManifest('a/b', 'v2', { bytes: manifest, mediaType: MediaType.OciIndex });
    const puts = server.seen.filter((s) => s.method === 'PUT');
    expect(puts.map((s) => s.headers['stowage-sparse-index'])).toEqual(['true', undefined]);
  });

  it('refuses a sparse index with UNSUPPORTED, before any PUT, when the registry lacks sparseIndex', async () => {
    for (const header of [undefined, 'catalog, referrers=api']) {
      const server = await declaring(header);
      const error = await client({ registry: server.host })
        .putManifest('a/b', 'v1', { bytes: manifest, mediaType: MediaType.OciIndex, sparse: true })
        .catch((e: unknown) => e);
      expect(isStowageError(error, 'UNSUPPORTED')).toBe(true);
      expect(server.seen.filter((s) => s.method === 'PUT')).toEqual([]);
    }
  });

  it('fails capabilities() on a malformed header rather than guessing', async () => {
    const server = await declaring('catalog, referrers=sometimes');
    await expect(client({ registry: server.host }).capabilities()).rejects.toMatchObject({
      code: 'PROTOCOL_ERROR',
    });
  });

  it('gives one origin to clients of one host with one credential identity, and another to the rest', () => {
    const make = (options: Omit<RegistryClientOptions, 'registry'>, registry = '127.0.0.1:5000') =>
      client({ registry, ...options }).origin;
    const anonymous = make({});
    expect(anonymous).toBe('http://127.0.0.1:5000');
    expect(make({}, 'ghcr.io')).toBe('https://ghcr.io');
    const alice = make({ credentials: { username: 'alice', password: 'one' } });
    expect(alice).toMatch(/^http:\/\/127\.0\.0\.1:5000#[0-9a-f]{16}$/);
    expect(alice).not.toContain('alice');
    expect(make({ credentials: { username: 'alice', password: 'rotated' } })).toBe(alice);
    expect(make({ credentials: { username: 'bob', password: 'one' } })).not.toBe(alice);
    expect(make({ credentials: { identityToken: 'refresh-1' } })).not.toBe(
      make({ credentials: { identityToken: 'refresh-2' } }),
    );
    expect(make({ credentials: { username: 'alice', password: 'one' } }, '127.0.0.1:5001')).not.toBe(alice);
    // A credentials function is one identity, whatever it resolves to later.
    const lookup = () => ({ username: 'carol', password: 'x' });
    expect(make({ credentials: lookup })).toBe(make({ credentials: lookup }));
    expect(make({ credentials: lookup })).not.toBe(make({ credentials: () => undefined }));
    // Config files: the files read are the identity.
    const files = (paths: string[]) => make({ auth: { useConfigFiles: true, configPaths: paths } });
    expect(files(['/a/config.json'])).toBe(files(['/a/config.json']));
    expect(files(['/a/config.json'])).not.toBe(files(['/b/config.json']));
    expect(files(['/a/config.json'])).not.toBe(anonymous);
  });
});

describe('logging and errors', () => {
  it('logs object first, as pino does, and never the credentials', async () => {
    const lines: { fields: object; message?: string }[] = [];
    const logger = { debug: (fields: object, message?: string) => lines.push({ fields, message }) };
    const server = await fake((request, response) => {
      if (request.headers.authorization === undefined)
        return json(response, 401, {}, { 'www-authenticate': 'Basic realm="x"' });
      json(response, 200, { name: 'a/b', tags: ['v1'] });
    });
    await client({
      registry: server.host,
      logger,
      credentials: { username: 'u', password: 'hunter2' },
    }).listTags('a/b');
    const requests = lines.filter((l) => l.message === 'registry request');
    expect(requests.length).toBeGreaterThan(0);
    expect(requests[0]?.fields).toMatchObject({ method: 'GET', status: 401 });
    expect(lines.find((l) => l.message === 'registry auth discovered')?.fields).toMatchObject({
      scheme: 'basic',
    });
    expect(JSON.stringify(lines)).not.toContain('hunter2');
  });

  it('raises a 503 as a RegistryServerError, a RegistryError with UNAVAILABLE and the Retry-After', async () => {
    const slept: number[] = [];
    const clock = { now: () => Date.now(), sleep: async (ms: number) => void slept.push(ms) };
    const server = await fake((request, response) => {
      if (request.url === '/v2/') return json(response, 200, {});
      json(response, 503, {}, { 'retry-after': '7' });
    });
    const error = await client({ registry: server.host, retry: { retries: 2, clock } })
      .listTags('a/b')
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RegistryServerError);
    expect(error).toBeInstanceOf(RegistryError);
    expect(error).toMatchObject({ code: 'UNAVAILABLE', status: 503, retryAfterMs: 7_000, retryable: true });
    expect(isResponseError(error)).toBe(true);
    // Both waits were the server's 7 s, on the injected clock: no real time passed.
    expect(slept).toEqual([7_000, 7_000]);
  });

  it('recognises response errors by brand and code, not by class', () => {
    const real = new RegistryResponseError({
      status: 404,
      method: 'GET',
      url: 'https://r/',
      endpoint: 'blob',
    });
    expect(isResponseError(real)).toBe(true);
    // Same shape, no brand: an error from elsewhere is not mistaken for one.
    const lookalike = Object.assign(new RegistryError('BLOB_UNKNOWN', 'x'), { status: 404, method: 'GET' });
    expect(isResponseError(lookalike)).toBe(false);
    expect(isResponseError({ code: 'BLOB_UNKNOWN', status: 404 })).toBe(false);
  });
});
