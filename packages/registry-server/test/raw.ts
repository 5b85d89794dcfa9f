// Raw HTTP over a plain socket, for answers no HTTP client would let a test see.
import type { Server } from 'node:http';
import { type AddressInfo, connect, type Socket } from 'node:net';

export interface RawAnswer {
  /** Everything the server sent before it closed the connection. */
  readonly text: string;
  readonly status: number;
  /** Header names in lower case (of the first answer). */
  readonly headers: Record<string, string>;
  readonly body: string;
  /** Whether the connection closed by a reset (ECONNRESET) rather than an orderly end. */
  readonly reset: boolean;
}

/** Parses the first answer of `text`. */
export function parseAnswer(text: string, reset = false): RawAnswer {
  const end = text.indexOf('\r\n\r\n');
  const head = end < 0 ? text : text.slice(0, end);
  const [statusLine = '', ...lines] = head.split('\r\n');
  const headers: Record<string, string> = {};
  for (const line of lines) {
    const colon = line.indexOf(':');
    if (colon > 0) headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
  }
  const length = Number(headers['content-length'] ?? Number.NaN);
  const rest = end < 0 ? '' : text.slice(end + 4);
  return {
    text,
    status: Number(/^HTTP\/1\.[01] (\d{3})/.exec(statusLine)?.[1] ?? 0),
    headers,
    body: Number.isFinite(length) ? rest.slice(0, length) : rest,
    reset,
  };
}

export async function listen(server: Server): Promise<number> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return (server.address() as AddressInfo).port;
}

export function close(server: Server): Promise<void> {
  return new Promise((resolve) => {
    server.closeAllConnections();
    server.close(() => resolve());
  });
}

export function open(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect({ port, host: '127.0.0.1', allowHalfOpen: true });
    socket.once('connect', () => resolve(socket));
    socket.once('error', reject);
  });
}

/** Collects what `socket` receives until it closes (a reset counts as a close). */
export function collect(socket: Socket, limitMs = 20_000): Promise<RawAnswer> {
  return new Promise((resolve, reject) => {
    let text = '';
    let reset = false;
    const timer = setTimeout(() => {
      socket.destroy();
      reject(
        new Error(`the server did not close the connection within ${limitMs} ms; got ${text.slice(0, 200)}`),
      );
    }, limitMs);
    socket.setEncoding('latin1');
    socket.on('data', (chunk: string) => {
      text += chunk;
    });
    socket.on('error', (error: NodeJS.ErrnoException) => {
      if (error.code === 'ECONNRESET' || error.code === 'EPIPE') reset = true;
      else reject(error);
    });
    socket.on('end', () => socket.end());
    socket.once('close', () => {
      clearTimeout(timer);
      resolve(parseAnswer(text, reset));
    });
  });
}

/** Sends `data` on a fresh connection and returns what comes back until the server closes it. */
export async function exchange(port: number, data: string | Uint8Array): Promise<RawAnswer> {
  const socket = await open(port);
  const answer = collect(socket);
  socket.write(typeof data === 'string' ? Buffer.from(data, 'latin1') : data);
  return answer;
}

/**
 * Writes one request byte for byte on a fresh connection and resolves with the raw
 * text of what came back once the connection closes. Our side is ended as soon as
 * one whole answer (headers and `content-length` body) is in, and not before: Node
 * ends a half-closed connection before a slow answer could go out. A reset counts
 * as a close (a reset with nothing sent resolves `''`, for the caller to judge);
 * any other socket error rejects.
 */
export function request(port: number, data: string | Uint8Array): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    let text = '';
    socket.setEncoding('latin1');
    socket.on('data', (chunk: string) => {
      text += chunk;
      const split = text.indexOf('\r\n\r\n');
      const length = /\r\ncontent-length: (\d+)/i.exec(text.slice(0, split))?.[1];
      if (split >= 0 && length !== undefined && text.length >= split + 4 + Number(length)) socket.end();
    });
    socket.on('error', (error: NodeJS.ErrnoException) => {
      if (error.code !== 'ECONNRESET' && error.code !== 'EPIPE') reject(error);
    });
    socket.on('close', () => resolve(text));
    socket.write(typeof data === 'string' ? Buffer.from(data, 'latin1') : data);
  });
}
