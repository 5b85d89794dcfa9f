// A client that goes away mid-request: mid-body on every upload path, and
// mid-download of a blob larger than the socket buffers (64 MiB). Each is recorded as
// aborted (status 499), never as a 500, and nothing is logged at error level.
import { connect } from 'node:net';
import { digestOf } from '@stowage/oci';
import { createMemoryRegistry, type MemoryRegistry, randomImage } from '@stowage/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Served, serve } from '../test/serve.js';
import { createRegistryHandler, type RequestRecord } from './handler.js';
import { createRegistryServer } from './server.js';

/** Resolves once the store has read the first chunk of a request body. */
let bodyStarted: () => void = () => {};

/** The memory registry, telling when a body it reads has started to arrive. */
function watching(base: MemoryRegistry): MemoryRegistry {
  async function* watched(body: AsyncIterable<Uint8Array>): AsyncGenerator<Uint8Array> {
    let first = true;
    for await (const chunk of body) {
      yield chunk;
      if (first) bodyStarted();
      first = false;
    }
  }
  const wrap = (value: unknown) =>
    typeof value === 'object' && value !== null && Symbol.asyncIterator in value
      ? watched(value as AsyncIterable<Uint8Array>)
      : value;
  return new Proxy(base, {
    get(target, key, receiver) {
      if (key === 'appendUpload')
        return (name: string, id: string, options: { body: unknown }) =>
          target.appendUpload(name, id, { ...(options as object), body: wrap(options.body) } as never);
      if (key === 'putBlob')
        return (name: string, body: unknown, options: object) =>
          target.putBlob(name, wrap(body) as never, options as never);
      if (key === 'finishUpload')
        return (name: string, id: string, options: { body?: unknown }) =>
          target.finishUpload(name, id, {
            ...options,
            ...(options.body ? { body: wrap(options.body) } : {}),
          } as never);
      return Reflect.get(target, key, receiver);
    },
  });
}

const registry = createMemoryRegistry();
const records: RequestRecord[] = [];
let recorded: (record: RequestRecord) => void = () => {};
const logs: { level: string; object: object; message?: string }[] = [];
let served: Served;
let port: number;
// larger than what loopback buffers can hold between the two ends (here up to 32 MiB received, 4 MiB sent)
const big = new Uint8Array(64 << 20).fill(7);
const bigDigest = digestOf(big);

beforeAll(async () => {
  await registry.putBlob('dl/app', big, { digest: bigDigest });
  served = await serve({
    registry: watching(registry),
    onRequest: (record) => {
      records.push(record);
      recorded(record);
    },
    logger: {
      info: (object, message) => logs.push({ level: 'info', object, ...(message ? { message } : {}) }),
      warn: (object, message) => logs.push({ level: 'warn', object, ...(message ? { message } : {}) }),
      error: (object, message) => logs.push({ level: 'error', object, ...(message ? { message } : {}) }),
    },
  });
  port = Number(served.host.split(':')[1]);
});
afterAll(() => served?.close());

/** The record of the next request to end. */
const nextRecord = () =>
  new Promise<RequestRecord>((resolve) => {
    recorded = resolve;
  });

/** Sends a request head and part of its body, waits until the store reads it, then disconnects. */
async function abandonBody(head: string): Promise<RequestRecord> {
  const record = nextRecord();
  const started = new Promise<void>((resolve) => {
    bodyStarted = resolve;
  });
  const socket = connect(port, '127.0.0.1');
  socket.on('error', () => {});
  socket.write(`${head}\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n`);
  socket.write(Buffer.alloc(4096, 1));
  await started;
  socket.destroy();
  return record;
}

describe('a client that goes away mid-request', () => {
  it('mid-body, on every upload path, is recorded as aborted with no error logged', async () => {
    const session = await fetch(`${served.url}/v2/up/app/blobs/uploads/`, { method: 'POST' });
    const location = session.headers.get('location') as string;
    const digest = `sha256:${'0'.repeat(64)}`;
    for (const head of [
      `PATCH ${location} HTTP/1.1`,
      `PUT ${location}?digest=${digest} HTTP/1.1`,
      `POST /v2/up/app/blobs/uploads/?digest=${digest} HTTP/1.1`,
    ]) {
      logs.length = 0;
      const record = await abandonBody(head);
      expect(record, head).toMatchObject({ aborted: true, status: 499 });
      expect(record.bytesIn, head).toBeGreaterThan(0);
      expect(
        logs.filter((l) => l.level === 'error'),
        head,
      ).toEqual([]);
      const line = logs.find((l) => l.level === 'info');
      expect(line?.object, head).toMatchObject({ status: 499, aborted: true });
    }
    // a manifest push whose body never finishes is the same
    logs.length = 0;
    const record = nextRecord();
    // the handler reads a manifest body itself: disconnect once it has the request
    const handling = new Promise((resolve) => served.server.once('request', resolve));
    const socket = connect(port, '127.0.0.1');
    socket.on('error', () => {});
    socket.write(
      'PUT /v2/up/app/manifests/v1 HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 5000\r\n\r\n{"sch',
    );
    await handling;
    socket.destroy();
    expect(await record).toMatchObject({ aborted: true, status: 499 });
    expect(logs.filter((l) => l.level === 'error')).toEqual([]);
  });

  it('mid-download of a large blob is recorded as aborted with no error logged', async () => {
    logs.length = 0;
    const record = nextRecord();
    const socket = connect(port, '127.0.0.1');
    socket.on('error', () => {});
    socket.write(`GET /v2/dl/app/blobs/${bigDigest} HTTP/1.1\r\nHost: x\r\n\r\n`);
    // the headers and the first bytes are here; the rest of 64 MiB cannot fit in the socket buffers
    const first = await new Promise<string>((resolve) =>
      socket.once('data', (chunk) => resolve(chunk.toString('latin1'))),
    );
    expect(first).toMatch(/^HTTP\/1\.1 200 /);
    socket.destroy();
    const done = await record;
    expect(done).toMatchObject({ aborted: true, status: 499, route: 'blob' });
    expect(logs.filter((l) => l.level === 'error')).toEqual([]);
    expect(logs.find((l) => l.level === 'info')?.object).toMatchObject({ status: 499, aborted: true });
  });

  it('leaves requests that complete, and real failures, as they were', async () => {
    logs.length = 0;
    const image = randomImage();
    const record = nextRecord();
    expect((await fetch(`${served.url}/v2/dl/app/blobs/${bigDigest}`, { method: 'HEAD' })).status).toBe(200);
    expect(await record).toMatchObject({ aborted: false, status: 200 });
    // answers on connections that close after them, as asked, are complete too
    for (const path of [`/v2/dl/app/blobs/${bigDigest}`, '/v2/', '/v2/nope/tags/list']) {
      const closing = nextRecord();
      const socket = connect(port, '127.0.0.1');
      const received = new Promise<number>((resolve) => {
        let length = 0;
        socket.on('data', (chunk) => {
          length += chunk.length;
        });
        socket.on('end', () => resolve(length));
      });
      socket.write(`GET ${path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`);
      expect(await received, path).toBeGreaterThan(0);
      expect(await closing, path).toMatchObject({ aborted: false });
    }
    const refused = nextRecord();
    expect((await fetch(`${served.url}/v2/dl/app/manifests/${image.manifest.digest}`)).status).toBe(404);
    expect(await refused).toMatchObject({ aborted: false, status: 404 });
    expect(logs.filter((l) => l.level === 'error')).toEqual([]);
  });

  it('cut by the server for a body slower than its minimum rate: recorded as the 408 it got, not as aborted', async () => {
    const errors: object[] = [];
    const ended: RequestRecord[] = [];
    let done: () => void = () => {};
    const recordedHere = new Promise<void>((resolve) => {
      done = resolve;
    });
    const handler = createRegistryHandler({
      registry: createMemoryRegistry(),
      logger: { info() {}, warn() {}, error: (object) => errors.push(object) },
      onRequest: (record) => {
        ended.push(record);
        done();
      },
    });
    const server = createRegistryServer({
      handler,
      logger: { warn() {}, error: (object) => errors.push(object) },
      minBodyRate: { bytesPerSecond: 100_000, windowMs: 300 },
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port: slowPort } = server.address() as { port: number };
    try {
      const session = await fetch(`http://127.0.0.1:${slowPort}/v2/slow/app/blobs/uploads/`, {
        method: 'POST',
      });
      const location = session.headers.get('location') as string;
      await recordedHere;
      ended.length = 0;
      const recorded = new Promise<void>((resolve) => {
        done = resolve;
      });
      const answer = await new Promise<string>((resolve) => {
        const socket = connect(slowPort, '127.0.0.1');
        let data = '';
        socket.on('data', (chunk) => {
          data += chunk.toString('latin1');
        });
        socket.on('error', () => {});
        socket.on('close', () => resolve(data));
        socket.write(`PATCH ${location} HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n0123456789`);
      });
      expect(answer).toMatch(/^HTTP\/1\.1 408 /);
      await recorded;
      expect(ended[0]).toMatchObject({ status: 408, aborted: false, route: 'upload' });
      expect(errors).toEqual([]);
    } finally {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    }
  });
});
