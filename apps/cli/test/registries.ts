// The two registries the binary tests talk to: a real docker-registry and a
// stowage-server (the registry handler over an image store, in this process),
// both under one scratch directory that `stop()` removes.
import { mkdtemp, rm } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createImageStore } from '@stowage/image-store';
import { createRegistryHandler, createRegistryServer } from '@stowage/registry-server';
import { type DockerRegistry, startDockerRegistry } from '@stowage/testing';

export interface TestRegistries {
  /** The scratch directory (the registries' data live in it too). */
  readonly work: string;
  readonly upstream: DockerRegistry;
  /** `127.0.0.1:<port>` of the stowage-server. */
  readonly ours: string;
  stop(): Promise<void>;
}

export async function startRegistries(prefix: string): Promise<TestRegistries> {
  const work = await mkdtemp(join(tmpdir(), `stowage-cli-${prefix}-`));
  const upstream = await startDockerRegistry({ dataDir: join(work, 'upstream') });
  const store = await createImageStore({ root: join(work, 'server') });
  const server = createRegistryServer({ handler: createRegistryHandler({ registry: store }) });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    work,
    upstream,
    ours: `127.0.0.1:${(server.address() as AddressInfo).port}`,
    async stop() {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
      await store.close();
      await upstream.stop();
      await rm(work, { recursive: true, force: true });
    },
  };
}
