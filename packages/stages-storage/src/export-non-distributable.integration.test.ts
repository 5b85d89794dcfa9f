// distribution 2.8 holds a non-distributable layer without urls like any other layer:
// it refuses a manifest naming one it lacks, so an export must bring the stage's along.
import { createRegistryClient } from '@stowage/registry-client';
import { createMemoryRegistry, requirePeers, startDockerRegistry } from '@stowage/testing';
import { describe, expect, it } from 'vitest';
import { pushNonDistributableStage } from '../test/non-distributable.js';
import { exportStage } from './export.js';

describe('exportStage of a stage with a non-distributable layer to docker-registry', () => {
  if (!requirePeers('docker-registry')) return;

  it('is accepted: the layer the stage holds goes along', async () => {
    const docker = await startDockerRegistry();
    const client = createRegistryClient({ registry: docker.host, auth: { useConfigFiles: false } });
    try {
      const { ctx, desc, foreign } = await pushNonDistributableStage(createMemoryRegistry(), {
        withForeign: true,
      });
      const result = await exportStage(ctx, desc, {
        destination: { registry: client, repository: 'app', tag: 'v1' },
      });
      expect((await client.headManifest('app', 'v1'))?.digest).toBe(result.digest);
      expect((await client.headBlob('app', foreign.digest))?.size).toBe(foreign.size);
    } finally {
      await client.close();
      await docker.stop();
    }
  });
});
