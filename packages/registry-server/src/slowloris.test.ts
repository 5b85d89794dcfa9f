// Acceptance 4 of issue 11, over real sockets against a listening server: slow
// bodies and slow headers are cut while honest clients keep being served, and
// beyond the connection cap new connections are closed at once while the
// existing ones keep working.
import type { Server } from 'node:http';
import type { Socket } from 'node:net';
import { createMemoryRegistry, randomBlob } from '@stowage/testing';
import { afterEach, describe, expect, it } from 'vitest';
import { close, collect, listen, open, type RawAnswer } from '../test/raw.js';
import { createRegistryHandler } from './handler.js';
import { createRegistryServer, type RegistryServerOptions } from './server.js';

const WINDOW_MS = 2000;
const RATE = 1024;

const servers: Server[] = [];
const sockets: Socket[] = [];
afterEach(async () => {
  for (const socket of sockets.splice(0)) socket.destroy();
  for (const server of servers.splice(0)) await close(server);
});

async function start(options: Partial<RegistryServerOptions> = {}) {
  const warnings: { object: Record<string, unknown>; message: string | undefined }[] = [];
  const registry = createMemoryRegistry();
  // the handler's own idle timeout is far off: only the minimum rate may cut these bodies
  const records: { method: string; status: number }[] = [];
  const handler = createRegistryHandler({
    registry,
    limits: { bodyIdleTimeoutMs: 120_000 },
    onRequest: (record) => records.push({ method: record.method, status: record.status }),
  });
  const server = createRegistryServer({
    handler,
    minBodyRate: { bytesPerSecond: RATE, windowMs: WINDOW_MS },
    logger: {
      warn: (object, message) => warnings.push({ object: { ...object }, message }),
      error: () => {},
    },
    ...options,
  });
  servers.push(server);
  const port = await listen(server);
  return { port, url: `http://127.0.0.1:${port}`, warnings, records };
}

async function connection(port: number): Promise<Socket> {
  const socket = await open(port);
  sockets.push(socket);
  return socket;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Sends `head`, then one byte every `everyMs` until the server closes the connection. */
async function trickle(port: number, head: string, everyMs: number) {
  const socket = await connection(port);
  const startedAt = performance.now();
  socket.write(head);
  const timer = setInterval(() => {
    if (socket.writable) socket.write('x');
  }, everyMs);
  const answer = collect(socket, 60_000).then((result) => ({
    ...result,
    after: performance.now() - startedAt,
  }));
  void answer.finally(() => clearInterval(timer));
  // wrapped, so awaiting the connection does not wait for its answer
  return { answer };
}

/** A PATCH of `total` bytes sent at `bytesPerSecond` (by elapsed time, so a late timer catches up). */
async function steadyUpload(port: number, location: string, total: number, bytesPerSecond: number) {
  const socket = await connection(port);
  const answer = collect(socket, 60_000);
  socket.write(
    `PATCH ${location} HTTP/1.1\r\nHost: h\r\nContent-Length: ${total}\r\nContent-Type: application/octet-stream\r\nConnection: close\r\n\r\n`,
  );
  const started = performance.now();
  let sent = 0;
  while (sent < total && socket.writable) {
    await sleep(100);
    const due = Math.min(total, Math.floor(((performance.now() - started) / 1000) * bytesPerSecond));
    if (due > sent) {
      socket.write(Buffer.alloc(due - sent, 7));
      sent = due;
    }
  }
  return answer;
}

async function startUpload(url: string, repository: string): Promise<string> {
  const response = await fetch(`${url}/v2/${repository}/blobs/uploads/`, { method: 'POST' });
  expect(response.status).toBe(202);
  return response.headers.get('location') as string;
}

function ociCode(answer: RawAnswer): string | undefined {
  return (JSON.parse(answer.body) as { errors: { code: string }[] }).errors[0]?.code;
}

describe('slowloris', () => {
  it('cuts 300 trickling bodies after the window while honest requests and a slow honest upload are served', async () => {
    const { port, url, warnings, records } = await start();
    const locations = await Promise.all(Array.from({ length: 300 }, () => startUpload(url, 'slow/app')));
    // 2 bytes a second each, far under 1 KiB/s
    const attacks = await Promise.all(
      locations.map((location) =>
        trickle(port, `PATCH ${location} HTTP/1.1\r\nHost: h\r\nContent-Length: 1000000\r\n\r\n`, 500),
      ),
    );
    const cut = Promise.all(attacks.map((attack) => attack.answer));
    let attacking = true;
    void cut.finally(() => {
      attacking = false;
    });

    // an honest upload at 10 KiB/s for over two windows: slow, but not cut
    const honestLocation = await startUpload(url, 'honest/slow');
    const honestUpload = steadyUpload(port, honestLocation, 50 * 1024, 10 * 1024);

    const statuses: number[] = [];
    while (attacking) {
      statuses.push((await fetch(`${url}/v2/`)).status);
      const blob = randomBlob(1024);
      const pushed = await fetch(`${url}/v2/honest/app/blobs/uploads/?digest=${blob.descriptor.digest}`, {
        method: 'POST',
        body: blob.bytes,
      });
      statuses.push(pushed.status);
      await sleep(100);
    }
    const results = await cut;
    // at least one round (a ping and a push) ran while the attack went on
    expect(statuses.length).toBeGreaterThanOrEqual(2);
    expect(statuses.filter((status) => status !== 200 && status !== 201)).toEqual([]);

    for (const result of results) {
      expect(result.status).toBe(408);
      expect(ociCode(result)).toBe('BLOB_UPLOAD_INVALID');
      expect(result.headers.connection).toBe('close');
      expect(result.headers['content-type']).toBe('application/json');
      // not before a whole window, and by the deadline (generous: the machine may be loaded)
      expect(result.after).toBeGreaterThanOrEqual(WINDOW_MS - 50);
      expect(result.after).toBeLessThan(WINDOW_MS + 15_000);
    }
    const slow = await honestUpload;
    expect(slow.status).toBe(202);
    expect(slow.headers.range).toBe(`0-${50 * 1024 - 1}`);
    // every handler whose body was cut has finished (its read ended), none waits for its idle timeout
    const cutRecords = () => records.filter((record) => record.method === 'PATCH' && record.status === 408);
    for (let i = 0; i < 400 && cutRecords().length < 300; i++) await sleep(25);
    expect(cutRecords()).toHaveLength(300);
    // one warn line for the whole burst, not one per connection
    const cutLines = warnings.filter((line) => line.message?.includes('slower than the minimum rate'));
    expect(cutLines).toHaveLength(1);
  }, 90_000);

  it('cuts trickled header blocks after the headers timeout', async () => {
    const { port, url } = await start({ headersTimeoutMs: WINDOW_MS });
    const attacks = await Promise.all(
      Array.from({ length: 50 }, () => trickle(port, 'GET /v2/ HTTP/1.1\r\nHost: h\r\nX-Slow: ', 200)),
    );
    expect((await fetch(`${url}/v2/`)).status).toBe(200);
    for (const result of await Promise.all(attacks.map((attack) => attack.answer))) {
      expect(result.status).toBe(408);
      expect(ociCode(result)).toBe('UNSUPPORTED');
      expect(result.headers.connection).toBe('close');
      expect(result.after).toBeLessThan(WINDOW_MS + 15_000);
    }
    expect((await fetch(`${url}/v2/`)).status).toBe(200);
  }, 60_000);

  it('closes connections beyond the cap at once while the existing ones keep working', async () => {
    const cap = 50;
    const { port, warnings } = await start({ maxConnections: cap });
    const ping = 'GET /v2/ HTTP/1.1\r\nHost: h\r\n\r\n';
    /** One ping on an open keep-alive connection; resolves with the status line. */
    const pingOn = (socket: Socket) =>
      new Promise<string>((resolve, reject) => {
        let text = '';
        const onData = (chunk: Buffer) => {
          text += chunk.toString('latin1');
          const end = text.indexOf('\r\n\r\n');
          const length = Number(/content-length: (\d+)/i.exec(text)?.[1] ?? Number.NaN);
          if (end >= 0 && text.length >= end + 4 + length) {
            socket.off('data', onData);
            resolve(text.split('\r\n')[0] ?? '');
          }
        };
        socket.on('data', onData);
        const closed = () => reject(new Error(`closed after ${JSON.stringify(text)}`));
        socket.once('end', closed);
        socket.once('close', closed);
        socket.once('error', closed);
        socket.write(ping);
      });

    const held: Socket[] = [];
    for (let i = 0; i < cap; i++) {
      const socket = await connection(port);
      held.push(socket);
      expect(await pingOn(socket)).toBe('HTTP/1.1 200 OK');
    }
    // beyond the cap: accepted by the kernel, then closed at once with nothing sent
    // (keep-alive and header timeouts are a minute away, so this is the cap)
    const refused = await Promise.all(
      Array.from({ length: 20 }, async () => {
        const socket = await connection(port);
        const startedAt = performance.now();
        const answer = collect(socket, 30_000);
        socket.write(ping);
        return { ...(await answer), after: performance.now() - startedAt };
      }),
    );
    for (const result of refused) {
      expect(result.text).toBe('');
      expect(result.after).toBeLessThan(10_000);
    }
    for (const socket of held) expect(await pingOn(socket)).toBe('HTTP/1.1 200 OK');
    const dropLines = warnings.filter((line) => line.message?.includes('connection cap'));
    expect(dropLines).toHaveLength(1);
    expect(dropLines[0]?.object.maxConnections).toBe(cap);

    // room again once some leave
    for (const socket of held.splice(0, 5)) socket.destroy();
    let status = '';
    for (let attempt = 0; attempt < 100 && status === ''; attempt++) {
      const socket = await connection(port);
      status = await pingOn(socket).catch(() => '');
      if (status === '') await sleep(50);
    }
    expect(status).toBe('HTTP/1.1 200 OK');
  }, 60_000);
});
