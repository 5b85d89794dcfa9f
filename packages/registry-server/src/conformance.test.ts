// The shared conformance suite through @stowage/registry-client against the
// server, over the reference memory registry and over the image store.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createImageStore } from '@stowage/image-store';
import { createRegistryClient } from '@stowage/registry-client';
import { createMemoryRegistry, registryConformance } from '@stowage/testing';
import { serve } from '../test/serve.js';

function client(host: string) {
  // No client-side emulation: the server's referrers API is what gets tested.
  return createRegistryClient({
    registry: host,
    auth: { useConfigFiles: false },
    referrersTagFallback: false,
  });
}

registryConformance({
  name: 'registry-client → registry-server → memory registry',
  create: async () => {
    const served = await serve({ registry: createMemoryRegistry() });
    const registry = client(served.host);
    return {
      registry,
      cleanup: async () => {
        await registry.close();
        await served.close();
      },
    };
  },
});

registryConformance({
  name: 'registry-client → registry-server → image store',
  create: async () => {
    const root = await mkdtemp(join(tmpdir(), 'stowage-server-conformance-'));
    const store = await createImageStore({ root });
    const served = await serve({ registry: store });
    const registry = client(served.host);
    return {
      registry,
      cleanup: async () => {
        await registry.close();
        await served.close();
        await store.close();
        await rm(root, { recursive: true, force: true });
      },
    };
  },
});
