// `stowage:registry-server:request`: one event per finished request, only while someone listens.
import diagnosticsChannel from 'node:diagnostics_channel';
import { createMemoryRegistry } from '@stowage/testing';
import { afterEach, describe, expect, it } from 'vitest';
import { type Served, serve } from '../test/serve.js';
import { publishRequest, REQUEST_CHANNEL, type RequestEvent } from './diagnostics.js';
import { REQUEST_CHANNEL as EXPORTED } from './index.js';

let served: Served | undefined;
afterEach(async () => {
  await served?.close();
  served = undefined;
});

describe('the request channel', () => {
  it('publishes method, route, status, duration and aborted once per finished request', async () => {
    expect(EXPORTED).toBe('stowage:registry-server:request');
    served = await serve({ registry: createMemoryRegistry() });
    const events: RequestEvent[] = [];
    const listener = (message: unknown) => events.push(message as RequestEvent);
    diagnosticsChannel.subscribe(REQUEST_CHANNEL, listener);
    try {
      await (await fetch(`${served.url}/v2/`)).arrayBuffer();
      await (
        await fetch(`${served.url}/v2/app/tags/list`, { headers: { 'x-request-id': 'abc-1' } })
      ).arrayBuffer();
      await (await fetch(`${served.url}/nowhere`)).arrayBuffer();
      // the event follows the answer: wait until the three are in
      for (let i = 0; events.length < 3 && i < 100; i++)
        await new Promise((resolve) => setTimeout(resolve, 10));
    } finally {
      diagnosticsChannel.unsubscribe(REQUEST_CHANNEL, listener);
    }
    expect(events).toHaveLength(3);
    expect(events[0]).toMatchObject({ method: 'GET', route: 'ping', status: 200, aborted: false });
    expect(events[1]).toMatchObject({
      id: 'abc-1',
      method: 'GET',
      route: 'tags',
      status: 404,
      aborted: false,
      repository: 'app',
    });
    expect(events[2]).toMatchObject({ route: 'unknown', status: 404 });
    for (const event of events) expect(event.durationMs).toBeGreaterThanOrEqual(0);
    // nothing once the listener is gone
    await (await fetch(`${served.url}/v2/`)).arrayBuffer();
    expect(events).toHaveLength(3);
  });

  it('builds no event without subscribers', () => {
    let built = 0;
    const event = (): RequestEvent => {
      built++;
      return { id: 'x', method: 'GET', route: 'ping', status: 200, durationMs: 0, aborted: false };
    };
    publishRequest(event);
    expect(built).toBe(0);
    const listener = () => {};
    diagnosticsChannel.subscribe(REQUEST_CHANNEL, listener);
    try {
      publishRequest(event);
    } finally {
      diagnosticsChannel.unsubscribe(REQUEST_CHANNEL, listener);
    }
    expect(built).toBe(1);
  });
});
