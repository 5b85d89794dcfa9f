// One request and its answer, and the few ways a route handler reads the one and writes the other.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Principal } from '../auth/types.js';
import type { HttpError } from '../errors.js';

export const API_VERSION = 'registry/2.0';

export interface Exchange {
  readonly request: IncomingMessage;
  readonly response: ServerResponse;
  readonly url: URL;
  readonly signal: AbortSignal;
  bytesIn: number;
  bytesOut: number;
  principal?: Principal;
  /** Set when the request body went idle for too long: the answer is then a 408, whatever the store made of it. */
  bodyTimeout?: HttpError;
  /** Set when the client closed the connection before the answer was complete. */
  clientGone: boolean;
  /** Set when the handler itself cut the connection (a failure after the headers went out). */
  cutHere: boolean;
}

/** Sends a whole answer: `payload` (with its length) or nothing; a `HEAD` gets the headers only. */
export function send(
  exchange: Exchange,
  status: number,
  headers: Record<string, string | number | undefined>,
  payload?: string | Uint8Array,
): void {
  const response = exchange.response;
  for (const [key, value] of Object.entries(headers)) if (value !== undefined) response.setHeader(key, value);
  if (payload !== undefined) {
    const bytes = typeof payload === 'string' ? Buffer.from(payload) : payload;
    response.setHeader('content-length', bytes.byteLength);
    if (exchange.request.method === 'HEAD') {
      response.writeHead(status).end();
    } else {
      exchange.bytesOut += bytes.byteLength;
      response.writeHead(status).end(bytes);
    }
  } else {
    if (!response.hasHeader('content-length')) response.setHeader('content-length', 0);
    response.writeHead(status).end();
  }
}

export function json(
  exchange: Exchange,
  status: number,
  value: unknown,
  headers: Record<string, string | undefined> = {},
): void {
  send(exchange, status, { 'content-type': 'application/json', ...headers }, JSON.stringify(value));
}

/** Drains what is left of a body we do not read, so the connection can be reused. */
export function discard(exchange: Exchange): void {
  if (!exchange.request.complete) exchange.request.resume();
}

/** Resolves once the response has gone out in full, or its connection closed. */
export function settled(response: ServerResponse): Promise<void> {
  if (response.writableFinished || response.destroyed) return Promise.resolve();
  return new Promise<void>((resolve) => {
    const done = () => {
      response.off('finish', done);
      response.off('close', done);
      resolve();
    };
    response.on('finish', done);
    response.on('close', done);
  });
}

/** Whether the client went away before the answer was complete. */
export function clientWentAway(exchange: Exchange): boolean {
  const { request, response } = exchange;
  if (exchange.clientGone) return true;
  if (exchange.cutHere || response.writableFinished) return false;
  return response.destroyed || request.socket?.destroyed === true;
}

/** A repository name as a URL path: each component percent-encoded, the slashes kept. */
export function encodeName(name: string): string {
  return name
    .split('/')
    .map((part) => encodeURIComponent(part))
    .join('/');
}
