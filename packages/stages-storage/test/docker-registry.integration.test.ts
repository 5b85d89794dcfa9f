// The shared StagesStorage suite against docker-registry (distribution 2.8,
// delete enabled) through the registry client: the plain-registry profile,
// where a tag cannot be deleted on its own.
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { digestHex } from '@stowage/oci';
import { createRegistryClient, type RegistryClient } from '@stowage/registry-client';
import { type DockerRegistry, requirePeers, startDockerRegistry } from '@stowage/testing';
import { afterAll, beforeAll, describe } from 'vitest';
import { createRepoStagesStorage } from '../src/index.js';
import { stagesStorageSuite } from './suite.js';

describe('stages storage over docker-registry', () => {
  if (!requirePeers('docker-registry')) return;

  let docker: DockerRegistry;
  let client: RegistryClient;
  const run = Math.random().toString(36).slice(2, 8);
  let counter = 0;

  beforeAll(async () => {
    docker = await startDockerRegistry();
    client = createRegistryClient({ registry: docker.host, auth: { useConfigFiles: false } });
  });
  afterAll(async () => {
    await client?.close();
    await docker?.stop();
  });

  stagesStorageSuite({
    name: 'docker-registry 2.8 through the client',
    async create(options = {}) {
      const n = ++counter;
      const repository = `werf/stages-${run}-${n}`;
      const storage = createRepoStagesStorage({
        registry: options.wrap ? options.wrap(client) : client,
        address: `${docker.host}/${repository}`,
        project: `proj-${run}-${n}`,
      });
      return {
        storage,
        registry: client,
        repository,
        async breakBlob(digest) {
          const hex = digestHex(digest);
          await rm(join(docker.dataDir, 'docker/registry/v2/blobs/sha256', hex.slice(0, 2), hex, 'data'));
        },
        async cleanup() {},
      };
    },
  });
});
