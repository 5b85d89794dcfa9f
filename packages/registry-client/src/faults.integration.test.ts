// Faults a real registry cannot be made to produce, injected by a small proxy
// in front of a real docker-registry: 429 with Retry-After, 503, connections
// reset in the middle of a download or an upload, and a blob corrupted on disk.
import { createHash } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, request, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { DigestMismatchError, digestOf, isStowageError, markReopenable } from '@stowage/oci';
import {
  collect,
  createMemoryRegistry,
  type DockerRegistry,
  pushImage,
  randomBlob,
  randomImage,
  requirePeers,
  startDockerRegistry,
} from '@stowage/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRegistryClient, type RegistryClient } from './client.js';
import { copyImage } from './copy-image.js';

type Fault =
  | { kind: 'status'; status: number; headers?: Record<string, string> }
  | { kind: 'reset-response'; afterBytes: number }
  | { kind: 'reset-request'; afterBytes: number };

interface Armed {
  match: (req: IncomingMessage) => boolean;
  fault: Fault;
  times: number;
}

/** A forwarding proxy whose faults tests arm per request. It keeps the Host header, so Locations point back at it. */
class FaultProxy {
  readonly seen: { method: string; url: string; range?: string }[] = [];
  #armed: Armed[] = [];
  #server: Server;
  constructor(private readonly upstreamPort: number) {
    this.#server = createServer((req, res) => this.#handle(req, res));
  }

  async listen(): Promise<string> {
    await new Promise<void>((resolve) => this.#server.listen(0, '127.0.0.1', resolve));
    return `127.0.0.1:${(this.#server.address() as AddressInfo).port}`;
  }

  arm(match: (req: IncomingMessage) => boolean, fault: Fault, times = 1): void {
    this.#armed.push({ match, fault, times });
  }

  close(): Promise<void> {
    this.#server.closeAllConnections();
    return new Promise((resolve) => this.#server.close(() => resolve()));
  }

  #handle(req: IncomingMessage, res: ServerResponse): void {
    this.seen.push({
      method: req.method ?? '',
      url: req.url ?? '',
      ...(req.headers.range ? { range: req.headers.range } : {}),
    });
    const armed = this.#armed.find((a) => a.times > 0 && a.match(req));
    if (armed) armed.times--;
    const fault = armed?.fault;
    if (fault?.kind === 'status') {
      req.resume();
      res.writeHead(fault.status, { 'content-type': 'application/json', ...fault.headers });
      res.end(
        JSON.stringify({
          errors: [{ code: fault.status === 429 ? 'TOOMANYREQUESTS' : 'UNAVAILABLE', message: 'injected' }],
        }),
      );
      return;
    }
    const upstream = request(
      { host: '127.0.0.1', port: this.upstreamPort, method: req.method, path: req.url, headers: req.headers },
      (upstreamRes) => {
        res.writeHead(upstreamRes.statusCode ?? 502, upstreamRes.headers);
        if (fault?.kind !== 'reset-response') {
          upstreamRes.pipe(res);
          return;
        }
        let sent = 0;
        upstreamRes.on('data', (chunk: Buffer) => {
          const room = fault.afterBytes - sent;
          if (room <= 0) return;
          res.write(chunk.subarray(0, room));
          sent += Math.min(room, chunk.byteLength);
          if (sent >= fault.afterBytes) {
            upstreamRes.destroy();
            setTimeout(() => res.socket?.destroy(), 20);
          }
        });
      },
    );
    upstream.on('error', () => res.socket?.destroy());
    if (fault?.kind === 'reset-request') {
      let received = 0;
      req.on('data', (chunk: Buffer) => {
        received += chunk.byteLength;
        if (received >= fault.afterBytes) {
          upstream.destroy();
          req.socket.destroy();
        } else {
          upstream.write(chunk);
        }
      });
      return;
    }
    req.pipe(upstream);
  }
}

describe('faults between the client and docker-registry', () => {
  if (!requirePeers('docker-registry')) return;

  let registry: DockerRegistry;
  let proxy: FaultProxy;
  let client: RegistryClient;
  let direct: RegistryClient;
  /** The client's clock: no real waits; it records what the retry loops asked to wait, and its time stands still. */
  const now = Date.parse('2026-01-01T00:00:00Z');
  const slept: number[] = [];
  const clock = { now: () => now, sleep: async (ms: number) => void slept.push(ms) };

  beforeAll(async () => {
    registry = await startDockerRegistry();
    proxy = new FaultProxy(registry.port);
    const host = await proxy.listen();
    client = createRegistryClient({
      registry: host,
      retry: { retries: 4, minDelayMs: 10, maxDelayMs: 50, clock },
      chunkSize: 256 * 1024,
      monolithicMaxBytes: 512 * 1024,
    });
    direct = createRegistryClient({ registry: registry.host });
  });

  afterAll(async () => {
    await client?.close();
    await direct?.close();
    await proxy?.close();
    await registry?.stop();
  });

  it('waits out a 429 with Retry-After in seconds', async () => {
    const image = randomImage();
    await pushImage(direct, 'faults/retry-after', image, 'v1');
    proxy.arm((req) => req.method === 'GET' && req.url === '/v2/faults/retry-after/manifests/v1', {
      kind: 'status',
      status: 429,
      headers: { 'retry-after': '1' },
    });
    slept.length = 0;
    const got = await client.getManifest('faults/retry-after', 'v1');
    expect(got.digest).toBe(image.manifest.digest);
    // The server's second, in full, though maxDelayMs is 50.
    expect(slept).toEqual([1000]);
    expect(proxy.seen.filter((s) => s.url === '/v2/faults/retry-after/manifests/v1')).toHaveLength(2);
  });

  it('waits out a 429 with Retry-After as an HTTP date', async () => {
    const image = randomImage();
    await pushImage(direct, 'faults/retry-date', image, 'v1');
    proxy.arm((req) => req.method === 'HEAD' && req.url === '/v2/faults/retry-date/manifests/v1', {
      kind: 'status',
      status: 429,
      headers: { 'retry-after': new Date(now + 2000).toUTCString() },
    });
    slept.length = 0;
    expect((await client.headManifest('faults/retry-date', 'v1'))?.digest).toBe(image.manifest.digest);
    expect(slept).toEqual([2000]); // the date, read against the client's clock
    expect(
      proxy.seen.filter((s) => s.method === 'HEAD' && s.url === '/v2/faults/retry-date/manifests/v1'),
    ).toHaveLength(2);
  });

  it('retries a 503', async () => {
    const image = randomImage();
    await pushImage(direct, 'faults/unavailable', image, 'v1');
    const digest = image.layers[0]!.descriptor.digest;
    proxy.arm((req) => req.method === 'GET' && req.url === `/v2/faults/unavailable/blobs/${digest}`, {
      kind: 'status',
      status: 503,
    });
    const content = await client.getBlob('faults/unavailable', digest);
    expect(digestOf(await collect(content.stream))).toBe(digest);
  });

  it('resumes a download broken mid-way with a Range request', async () => {
    const blob = randomBlob(2 * 1024 * 1024);
    const { digest } = blob.descriptor;
    await direct.putBlob('faults/download', blob.bytes, { digest });
    proxy.arm(
      (req) =>
        req.method === 'GET' && req.url === `/v2/faults/download/blobs/${digest}` && !req.headers.range,
      {
        kind: 'reset-response',
        afterBytes: 700 * 1024,
      },
    );
    const content = await client.getBlob('faults/download', digest);
    expect(digestOf(await collect(content.stream))).toBe(digest);
    const ranged = proxy.seen.filter((s) => s.url === `/v2/faults/download/blobs/${digest}` && s.range);
    expect(ranged.length).toBeGreaterThanOrEqual(1);
    expect(ranged[0]!.range).toMatch(/^bytes=[1-9][0-9]*-/);
  });

  it('resumes or restarts a chunked upload broken mid-way; the blob verifies', async () => {
    const blob = randomBlob(1536 * 1024);
    const { digest } = blob.descriptor;
    proxy.arm(
      (req) => req.method === 'PATCH' && (req.url ?? '').startsWith('/v2/faults/upload/blobs/uploads/'),
      {
        kind: 'reset-request',
        afterBytes: 100 * 1024,
      },
    );
    await client.putBlob('faults/upload', blob.bytes, { digest, size: blob.bytes.byteLength });
    expect(await direct.headBlob('faults/upload', digest)).toEqual({ digest, size: blob.bytes.byteLength });
    expect(digestOf(await collect((await direct.getBlob('faults/upload', digest)).stream))).toBe(digest);
    expect(proxy.seen.filter((s) => s.method === 'PATCH').length).toBeGreaterThan(6);
  });

  it('sends a re-openable stream over the monolithic limit in one request, and reopens it when that breaks', async () => {
    const blob = randomBlob(2 * 1024 * 1024); // 4x monolithicMaxBytes
    const { digest } = blob.descriptor;
    const streamOf = async function* () {
      for (let at = 0; at < blob.bytes.byteLength; at += 64 * 1024)
        yield blob.bytes.subarray(at, at + 64 * 1024);
    };
    let reopened = 0;
    const body = markReopenable(streamOf(), () => {
      reopened++;
      return streamOf();
    });
    proxy.arm(
      (req) => req.method === 'PUT' && (req.url ?? '').startsWith('/v2/faults/reopen/blobs/uploads/'),
      { kind: 'reset-request', afterBytes: 512 * 1024 },
    );
    await client.putBlob('faults/reopen', body, { digest, size: blob.bytes.byteLength });
    expect(digestOf(await collect((await direct.getBlob('faults/reopen', digest)).stream))).toBe(digest);
    const uploads = proxy.seen.filter((s) => s.url.startsWith('/v2/faults/reopen/blobs/uploads/'));
    // no 256 KiB PATCH chunks: a PUT of the whole blob, broken, then the same from the reopened stream
    expect(uploads.filter((s) => s.method === 'PATCH')).toEqual([]);
    expect(uploads.filter((s) => s.method === 'PUT')).toHaveLength(2);
    expect(reopened).toBe(1);
  });

  it('restarts a monolithic upload broken mid-way; the blob verifies', async () => {
    const blob = randomBlob(300 * 1024);
    const { digest } = blob.descriptor;
    proxy.arm(
      (req) => req.method === 'PUT' && (req.url ?? '').startsWith('/v2/faults/monolithic/blobs/uploads/'),
      {
        kind: 'reset-request',
        afterBytes: 64 * 1024,
      },
    );
    await client.putBlob('faults/monolithic', blob.bytes, { digest, size: blob.bytes.byteLength });
    expect(digestOf(await collect((await direct.getBlob('faults/monolithic', digest)).stream))).toBe(digest);
    const puts = proxy.seen.filter(
      (s) => s.method === 'PUT' && s.url.startsWith('/v2/faults/monolithic/blobs/uploads/'),
    );
    expect(puts.length).toBeGreaterThanOrEqual(2);
  });

  it('a blob corrupted on disk fails verification and nothing reaches the destination', async () => {
    const image = randomImage({ layers: 1, layerSize: 64 * 1024 });
    await pushImage(direct, 'faults/corrupt', image, 'v1');
    const layer = image.layers[0]!.descriptor.digest;
    const hex = layer.slice('sha256:'.length);
    const file = join(registry.dataDir, 'docker/registry/v2/blobs/sha256', hex.slice(0, 2), hex, 'data');
    const bytes = await readFile(file);
    bytes[100] = (bytes[100]! + 1) & 0xff;
    await writeFile(file, bytes);
    expect(createHash('sha256').update(bytes).digest('hex')).not.toBe(hex);

    const content = await client.getBlob('faults/corrupt', layer);
    await expect(collect(content.stream)).rejects.toBeInstanceOf(DigestMismatchError);

    const destination = createMemoryRegistry();
    const error = await copyImage(
      { registry: client, repository: 'faults/corrupt', reference: 'v1' },
      { registry: destination, repository: 'copy', tag: 'v1' },
    ).catch((e: unknown) => e);
    expect(isStowageError(error, 'DIGEST_INVALID')).toBe(true);
    expect(await destination.headBlob('copy', layer)).toBeUndefined();
    expect(await destination.headManifest('copy', 'v1').catch(() => undefined)).toBeUndefined();
    expect((await destination.listRepositories()).items).toEqual([]);
  });
});
