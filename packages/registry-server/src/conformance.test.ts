// The shared conformance suite through @stowage/registry-client against the
// server, over the reference memory registry, over the image store, and over a
// store without upload sessions of its own. The suite takes the capabilities
// from the client, which reads the server's `Stowage-Capabilities`: what the
// server declares is what it is held to, both ways (a capability it leaves out
// must be refused for real).
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createImageStore } from '@stowage/image-store';
import { createRegistryClient } from '@stowage/registry-client';
import { createMemoryRegistry, registryConformance } from '@stowage/testing';
import { serve } from '../test/serve.js';
import { withoutSessions } from '../test/without-sessions.js';
import { createRulesAuthorizer } from './auth/anonymous.js';

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

registryConformance({
  name: 'registry-client → registry-server → store without upload sessions (shared ones, file staging)',
  create: async () => {
    const served = await serve({ registry: withoutSessions() });
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
  // access control (so no mount without `from`) and deletes off: capabilities the server leaves out
  name: 'registry-client → registry-server with rules and deletes off → memory registry',
  create: async () => {
    const served = await serve({
      registry: createMemoryRegistry(),
      auth: createRulesAuthorizer([]),
      allowDelete: false,
    });
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
