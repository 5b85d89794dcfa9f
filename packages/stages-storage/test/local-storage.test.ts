// The shared StagesStorage suite against werf's local storage (spec A.11) on
// an image store: stages under the project's repository, address `:local`,
// records kept nowhere (`capabilities().records === false`), so the record
// cases are reported not applicable and one case checks the no-ops.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createImageStore, type ImageStore } from '@stowage/image-store';
import { afterAll, beforeAll, describe } from 'vitest';
import { createLocalStagesStorage } from '../src/index.js';
import { breakImageStoreBlob } from './break-blob.js';
import { stagesStorageSuite } from './suite.js';

describe('the local stages storage over the image store', () => {
  let root: string;
  let store: ImageStore;
  let counter = 0;

  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), 'stowage-stages-local-'));
    store = await createImageStore({ root });
  });
  afterAll(async () => {
    await store?.close();
    if (root) await rm(root, { recursive: true, force: true });
  });

  stagesStorageSuite({
    name: 'local storage (image store)',
    async create(options = {}) {
      const project = `proj-${++counter}`;
      return {
        storage: createLocalStagesStorage({ registry: options.wrap ? options.wrap(store) : store, project }),
        registry: store,
        repository: project,
        breakBlob: async (digest) => void (await breakImageStoreBlob(root, digest)),
        async cleanup() {},
      };
    },
  });
});
