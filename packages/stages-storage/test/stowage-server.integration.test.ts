// The shared StagesStorage suite against our own server (over an image store)
// through the registry client, as the copy matrix starts it.
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createImageStore, type ImageStore } from '@stowage/image-store';
import { createRegistryClient, type RegistryClient } from '@stowage/registry-client';
import { createRegistryHandler } from '@stowage/registry-server';
import { afterAll, beforeAll, describe } from 'vitest';
import { createRepoStagesStorage } from '../src/index.js';
import { breakImageStoreBlob } from './break-blob.js';
import { stagesStorageSuite } from './suite.js';

describe('stages storage over stowage-server', () => {
  let root: string;
  let store: ImageStore;
  let server: Server;
  let client: RegistryClient;
  let host: string;
  let counter = 0;

  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), 'stowage-stages-server-'));
    store = await createImageStore({ root });
    const handler = createRegistryHandler({ registry: store });
    server = createServer((request, response) => void handler(request, response));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    host = `127.0.0.1:${(server.address() as AddressInfo).port}`;
    client = createRegistryClient({ registry: host, auth: { useConfigFiles: false } });
  });
  afterAll(async () => {
    await client?.close();
    if (server) {
      await new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      });
    }
    await store?.close();
    if (root) await rm(root, { recursive: true, force: true });
  });

  stagesStorageSuite({
    name: 'stowage-server over the image store, through the client',
    async create(options = {}) {
      const n = ++counter;
      const repository = `werf/stages-${n}`;
      return {
        storage: createRepoStagesStorage({
          registry: options.wrap ? options.wrap(client) : client,
          address: `${host}/${repository}`,
          project: `proj-${n}`,
        }),
        registry: client,
        repository,
        breakBlob: async (digest) => void (await breakImageStoreBlob(root, digest)),
        async cleanup() {},
      };
    },
  });
});
