// createRegistryServer at the socket level: failures that escape the handler, and
// the answers Node's parser makes before any handler runs.
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { createMemoryRegistry } from '@stowage/testing';
import { afterEach, describe, expect, it } from 'vitest';
import { close, collect, exchange, listen, open, type RawAnswer } from '../test/raw.js';
import { createRegistryHandler } from './handler.js';
import { createRegistryServer, originForm } from './server.js';

type Handler = (request: IncomingMessage, response: ServerResponse) => Promise<void> | void;

const servers: Server[] = [];
afterEach(async () => {
  for (const server of servers.splice(0)) await close(server);
});

function recorder() {
  const lines: { level: string; object: Record<string, unknown>; message: string | undefined }[] = [];
  const logger = {
    info: (object: object, message?: string) => lines.push({ level: 'info', object: { ...object }, message }),
    warn: (object: object, message?: string) => lines.push({ level: 'warn', object: { ...object }, message }),
    error: (object: object, message?: string) =>
      lines.push({ level: 'error', object: { ...object }, message }),
  };
  return { lines, logger };
}

async function start(handler: Handler) {
  const log = recorder();
  const server = createRegistryServer({ handler, logger: log.logger });
  servers.push(server);
  const port = await listen(server);
  return { server, port, log };
}

/** A handler that answers 200 with the URL it was given, and a body it read. */
const echo: Handler = async (request, response) => {
  let body = '';
  for await (const chunk of request) body += String(chunk);
  const text = JSON.stringify({ url: request.url, body });
  response.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  response.end(text);
};

/** The status line, OCI error body and headers every answer made outside the handler must have. */
function expectOciError(answer: RawAnswer, status: number, code: string) {
  expect(answer.text).toMatch(new RegExp(`^HTTP/1\\.1 ${status} `));
  expect(answer.headers['content-type']).toBe('application/json');
  expect(answer.headers['docker-distribution-api-version']).toBe('registry/2.0');
  expect(answer.headers.connection).toBe('close');
  expect(Number(answer.headers['content-length'])).toBe(Buffer.byteLength(answer.body, 'latin1'));
  const parsed = JSON.parse(answer.body) as { errors: { code: string; message: string }[] };
  expect(parsed.errors).toHaveLength(1);
  expect(parsed.errors[0]?.code).toBe(code);
  expect(typeof parsed.errors[0]?.message).toBe('string');
}

async function get(port: number, path: string): Promise<number> {
  return (await fetch(`http://127.0.0.1:${port}${path}`)).status;
}

describe('createRegistryServer: failures escaping the handler', () => {
  it('answers a synchronous throw with a 500 OCI error, logs it once, and keeps serving', async () => {
    const { port, log } = await start((request, response) => {
      if (request.url === '/ok') {
        response.end('fine');
        return;
      }
      throw new Error('boom');
    });
    const answer = await exchange(port, 'GET /v2/x HTTP/1.1\r\nHost: h\r\n\r\n');
    expectOciError(answer, 500, 'UNKNOWN');
    expect(answer.body).not.toContain('boom');
    expect(log.lines.filter((line) => line.level === 'error')).toHaveLength(1);
    expect(await get(port, '/ok')).toBe(200);
  });

  it('answers a rejected promise with a 500, even when the handler had set headers', async () => {
    const { port, log } = await start(async (request, response) => {
      if (request.url === '/ok') {
        response.end('fine');
        return;
      }
      response.setHeader('x-request-id', 'abc');
      response.setHeader('location', '/somewhere');
      await new Promise((resolve) => setImmediate(resolve));
      // what issue 11 saw: a header value Node refuses, thrown outside any catch
      response.setHeader('www-authenticate', 'Bearer scope="repository:x\u0000:pull"');
    });
    const answer = await exchange(port, 'GET /v2/x%00/tags/list HTTP/1.1\r\nHost: h\r\n\r\n');
    expectOciError(answer, 500, 'UNKNOWN');
    expect(answer.headers['x-request-id']).toBe('abc');
    expect(answer.headers.location).toBeUndefined();
    const errors = log.lines.filter((line) => line.level === 'error');
    expect(errors).toHaveLength(1);
    expect((errors[0]?.object.err as NodeJS.ErrnoException).code).toBe('ERR_INVALID_CHAR');
    expect(await get(port, '/ok')).toBe(200);
  });

  it('closes the connection when the answer had begun, and keeps serving', async () => {
    const { port } = await start(async (request, response) => {
      if (request.url === '/ok') {
        response.end('fine');
        return;
      }
      response.writeHead(200, { 'content-length': 100 });
      response.write('partial');
      await new Promise((resolve) => setImmediate(resolve));
      throw new Error('late');
    });
    const answer = await exchange(port, 'GET /v2/x HTTP/1.1\r\nHost: h\r\n\r\n');
    expect(answer.status).toBe(200);
    expect(answer.text.endsWith('partial')).toBe(true);
    expect(await get(port, '/ok')).toBe(200);
  });

  it('survives a stream error on the response (a write after its end)', async () => {
    const { port } = await start((request, response) => {
      response.end('done');
      if (request.url !== '/ok') response.write('too late');
    });
    expect(await get(port, '/v2/')).toBe(200);
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(await get(port, '/ok')).toBe(200);
  });

  it('survives clients that reset the connection mid-request, without an error line', async () => {
    const { port, log } = await start(echo);
    for (let i = 0; i < 20; i++) {
      const socket = await open(port);
      socket.on('error', () => {});
      socket.write('PATCH /v2/a/blobs/uploads/x HTTP/1.1\r\nHost: h\r\nContent-Length: 1000\r\n\r\npart');
      await new Promise((resolve) => setTimeout(resolve, 5));
      socket.resetAndDestroy();
    }
    expect(await get(port, '/v2/')).toBe(200);
    expect(log.lines.filter((line) => line.level === 'error')).toEqual([]);
  });
});

describe("createRegistryServer: answers made before the handler runs (Node's parser)", () => {
  it('answers a NUL, a DEL, a non-ASCII byte or a tab in the target with a 400 OCI error', async () => {
    const { port } = await start(echo);
    for (const target of [
      '/v2/x\u0000/tags/list',
      '/v2/x\u007f/tags/list',
      '/v2/x\u00c4/tags/list',
      '/v2/a\tb/',
    ]) {
      const answer = await exchange(port, `GET ${target} HTTP/1.1\r\nHost: h\r\n\r\n`);
      expectOciError(answer, 400, 'UNSUPPORTED');
    }
    const garbage = await exchange(port, 'HELLO THERE\r\n\r\n');
    expectOciError(garbage, 400, 'UNSUPPORTED');
  });

  it('answers headers over the size limit with a 431 OCI error', async () => {
    const { port } = await start(echo);
    const answer = await exchange(
      port,
      `GET /v2/ HTTP/1.1\r\nHost: h\r\nX-Big: ${'a'.repeat(64 * 1024)}\r\n\r\n`,
    );
    expectOciError(answer, 431, 'SIZE_INVALID');
  });

  it('answers an Expect other than 100-continue with a 417 OCI error, and honours 100-continue', async () => {
    const { port } = await start(echo);
    const odd = await exchange(port, 'PUT /v2/a/manifests/v1 HTTP/1.1\r\nHost: h\r\nExpect: 200-ok\r\n\r\n');
    expectOciError(odd, 417, 'UNSUPPORTED');
    const socket = await open(port);
    const answer = collect(socket);
    socket.write(
      'PUT /v2/a HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 2\r\nConnection: close\r\n\r\n',
    );
    await new Promise((resolve) => setTimeout(resolve, 20));
    socket.write('hi');
    const text = (await answer).text;
    expect(text.startsWith('HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 ')).toBe(true);
    expect(text).toContain('"body":"hi"');
  });

  it('answers CONNECT with a 405 OCI error instead of dropping the connection', async () => {
    const { port } = await start(echo);
    const answer = await exchange(port, 'CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n');
    expectOciError(answer, 405, 'UNSUPPORTED');
    expect(answer.headers.allow).toMatch(/GET/);
  });

  it('answers once, whatever else a refused connection sends', async () => {
    const { port } = await start(echo);
    const socket = await open(port);
    const answer = collect(socket);
    socket.write('GET /v2/\u0000 HTTP/1.1\r\nHost: h\r\n\r\n');
    for (let i = 0; i < 10; i++) {
      await new Promise((resolve) => setTimeout(resolve, 10));
      if (socket.writable) socket.write('more garbage\r\n');
    }
    socket.end();
    const result = await answer;
    expectOciError(result, 400, 'UNSUPPORTED');
    expect(result.text.match(/HTTP\/1\.1/g)).toHaveLength(1);
  });

  it('does not write a parser answer over a response already under way', async () => {
    const { port } = await start((request, response) => {
      response.writeHead(200, { 'content-type': 'text/plain', 'transfer-encoding': 'chunked' });
      response.write('started');
      request.resume();
    });
    const socket = await open(port);
    const answer = collect(socket);
    socket.write('PATCH /v2/a HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n');
    await new Promise<void>((resolve) => socket.once('data', () => resolve()));
    socket.write('zz-not-a-chunk-size\r\n');
    const result = await answer;
    expect(result.status).toBe(200);
    expect(result.text.match(/HTTP\/1\.1/g)).toHaveLength(1);
  });

  it('accepts absolute-form targets, passing the raw path and query on', async () => {
    const { port } = await start(echo);
    const absolute = await exchange(
      port,
      'GET http://registry.example/v2/?n=1 HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n',
    );
    expect(absolute.status).toBe(200);
    expect(JSON.parse(absolute.body)).toEqual({ url: '/v2/?n=1', body: '' });
    const bare = await exchange(
      port,
      'GET https://registry.example HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n',
    );
    expect(JSON.parse(bare.body).url).toBe('/');
    expect(originForm('http://h/v2/a/../b')).toBe('/v2/a/../b');
    expect(originForm('HTTP://h:5000?x')).toBe('/?x');
    expect(originForm('/v2/http://x')).toBe('/v2/http://x');
  });

  it('serves the registry API on an absolute-form request line', async () => {
    const handler = createRegistryHandler({ registry: createMemoryRegistry() });
    const server = createRegistryServer({ handler });
    servers.push(server);
    const port = await listen(server);
    const ping = await exchange(
      port,
      'GET http://127.0.0.1/v2/ HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n',
    );
    expect(ping.status).toBe(200);
    expect(ping.headers['docker-distribution-api-version']).toBe('registry/2.0');
    // the path stays raw: a dot segment is an invalid name, never resolved
    const traversal = await exchange(
      port,
      'GET http://127.0.0.1/v2/a/../b/tags/list HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n',
    );
    expect(traversal.status).toBe(400);
    expect(JSON.parse(traversal.body).errors[0].code).toBe('NAME_INVALID');
  });
});
