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
import type { RegistryHandlerOptions } from './handler.js';

/** The suite through a client against a server of `options`; `cleanup` is the backend's own. */
function throughServer(
  name: string,
  backend: () => Promise<{ options: RegistryHandlerOptions; cleanup?: () => Promise<void> }>,
): void {
  registryConformance({
    name: `registry-client → registry-server ${name}`,
    create: async () => {
      const { options, cleanup } = await backend();
      const served = await serve(options);
      // No client-side emulation: the server's referrers API is what gets tested.
      const registry = createRegistryClient({
        registry: served.host,
        auth: { useConfigFiles: false },
        referrersTagFallback: false,
      });
      return {
        registry,
        cleanup: async () => {
          await registry.close();
          await served.close();
          await cleanup?.();
        },
      };
    },
  });
}

throughServer('→ memory registry', async () => ({ options: { registry: createMemoryRegistry() } }));

throughServer('→ image store', async () => {
  const root = await mkdtemp(join(tmpdir(), 'stowage-server-conformance-'));
  const store = await createImageStore({ root });
  return {
    options: { registry: store },
    cleanup: async () => {
      await store.close();
      await rm(root, { recursive: true, force: true });
    },
  };
});

throughServer('→ store without upload sessions (shared ones, file staging)', async () => ({
  options: { registry: withoutSessions() },
}));

// access control (so no mount without `from`) and deletes off: capabilities the server leaves out
throughServer('with rules and deletes off → memory registry', async () => ({
  options: { registry: createMemoryRegistry(), auth: createRulesAuthorizer([]), allowDelete: false },
}));
