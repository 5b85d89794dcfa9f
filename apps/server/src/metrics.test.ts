// The metrics of requests a client abandoned: their own counter and status 499,
// never a 500. Through the real handler and a socket the client drops mid-body.
import { createServer } from 'node:http';
import { type AddressInfo, connect } from 'node:net';
import type { RequestRecord } from '@stowage/registry-server';
import { createRegistryHandler } from '@stowage/registry-server';
import { createMemoryRegistry } from '@stowage/testing';
import { describe, expect, it } from 'vitest';
import { ServerMetrics } from './metrics.js';

describe('server metrics', () => {
  it('count a request whose client went away mid-body as aborted (499), not as a 500', async () => {
    const metrics = new ServerMetrics();
    let recorded: (record: RequestRecord) => void = () => {};
    const handler = createRegistryHandler({
      registry: createMemoryRegistry(),
      onRequest: (record) => {
        metrics.record(record);
        recorded(record);
      },
    });
    const server = createServer((request, response) => void handler(request, response));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as AddressInfo;
    const next = () =>
      new Promise<RequestRecord>((resolve) => {
        recorded = resolve;
      });
    try {
      const session = await fetch(`http://127.0.0.1:${port}/v2/app/blobs/uploads/`, { method: 'POST' });
      const location = session.headers.get('location') as string;
      for (const head of [
        `PATCH ${location} HTTP/1.1`,
        `POST /v2/app/blobs/uploads/?digest=sha256:${'0'.repeat(64)} HTTP/1.1`,
      ]) {
        const record = next();
        const handling = new Promise((resolve) => server.once('request', resolve));
        const socket = connect(port, '127.0.0.1');
        socket.on('error', () => {});
        socket.write(`${head}\r\nHost: x\r\nContent-Length: 100000\r\n\r\n${'x'.repeat(1000)}`);
        await handling;
        socket.destroy();
        expect(await record, head).toMatchObject({ aborted: true, status: 499 });
      }
      const text = metrics.render();
      expect(text).toContain('# TYPE stowage_http_requests_aborted_total counter');
      expect(text).toContain('stowage_http_requests_aborted_total{route="upload",method="PATCH"} 1');
      expect(text).toContain('stowage_http_requests_aborted_total{route="uploads",method="POST"} 1');
      expect(text).toContain('stowage_http_requests_total{route="upload",method="PATCH",status="499"} 1');
      expect(text).toContain('stowage_http_requests_total{route="uploads",method="POST",status="202"} 1');
      expect(text).not.toMatch(/status="5\d\d"/);
    } finally {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    }
  });

  it('count an aborted record under 499 whatever status it carries', () => {
    const metrics = new ServerMetrics();
    const base = { id: 'x', method: 'GET', route: 'blob', durationMs: 1, bytesIn: 0, bytesOut: 10 };
    metrics.record({ ...base, status: 500, aborted: true });
    metrics.record({ ...base, status: 200, aborted: false });
    const text = metrics.render();
    expect(text).toContain('stowage_http_requests_total{route="blob",method="GET",status="499"} 1');
    expect(text).toContain('stowage_http_requests_total{route="blob",method="GET",status="200"} 1');
    expect(text).toContain('stowage_http_requests_aborted_total{route="blob",method="GET"} 1');
    expect(text).not.toContain('status="500"');
  });
});
