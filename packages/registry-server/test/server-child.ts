// The server in its own process for the crash test: serves the image store at
// argv[2] on argv[3] (0 = any port) and prints "port <n>" once listening.
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createImageStore } from '@stowage/image-store';
import { createRegistryHandler } from '../src/index.js';

const [root, port] = process.argv.slice(2) as [string, string];
const store = await createImageStore({ root });
const handler = createRegistryHandler({ registry: store });
const server = createServer((request, response) => void handler(request, response));
server.listen(Number(port), '127.0.0.1', () => {
  process.stdout.write(`port ${(server.address() as AddressInfo).port}\n`);
});
