// The shared StagesStorage suite with the image store as the registry, called
// directly (no wire): every capability of a full store.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createImageStore, type ImageStore } from '@stowage/image-store';
import { afterAll, beforeAll, describe } from 'vitest';
import { createRepoStagesStorage } from '../src/index.js';
import { breakImageStoreBlob } from './break-blob.js';
import { stagesStorageSuite } from './suite.js';

describe('stages storage over the image store', () => {
  let root: string;
  let store: ImageStore;
  let counter = 0;

  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), 'stowage-stages-image-store-'));
    store = await createImageStore({ root });
  });
  afterAll(async () => {
    await store?.close();
    if (root) await rm(root, { recursive: true, force: true });
  });

  stagesStorageSuite({
    name: 'image store',
    async create(options = {}) {
      const n = ++counter;
      const repository = `werf/stages-${n}`;
      return {
        storage: createRepoStagesStorage({
          registry: options.wrap ? options.wrap(store) : store,
          address: `registry.example.com/${repository}`,
          project: `proj-${n}`,
        }),
        registry: store,
        repository,
        breakBlob: async (digest) => void (await breakImageStoreBlob(root, digest)),
        async cleanup() {},
      };
    },
  });
});
