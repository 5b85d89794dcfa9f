// Starts the handler on a loopback port for tests.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createRegistryHandler, type RegistryHandler, type RegistryHandlerOptions } from '../src/index.js';

export interface Served {
  readonly url: string;
  readonly host: string;
  readonly server: Server;
  readonly handler: RegistryHandler;
  close(): Promise<void>;
}

export async function serve(options: RegistryHandlerOptions): Promise<Served> {
  const handler = createRegistryHandler(options);
  const server = createServer((request, response) => void handler(request, response));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    host: `127.0.0.1:${port}`,
    server,
    handler,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
