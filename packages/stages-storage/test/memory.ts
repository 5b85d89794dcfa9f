import type { Registry } from '@stowage/oci';
import { createMemoryRegistry } from '@stowage/testing';
import { createRepoStagesStorage } from '../src/index.js';
import type { CreateSubjectOptions, StagesStorageSubject } from './suite.js';

/**
 * A suite backend over one memory registry (fresh repository per call):
 * `wrapStorage` lets the sensitivity fixtures break the storage on purpose.
 */
export function memoryBackend(
  wrapStorage: (subject: StagesStorageSubject) => StagesStorageSubject = (s) => s,
): (options?: CreateSubjectOptions) => Promise<StagesStorageSubject> {
  const registry: Registry = createMemoryRegistry();
  let counter = 0;
  return async (options = {}) => {
    const n = ++counter;
    const repository = `werf/stages-${n}`;
    return wrapStorage({
      storage: createRepoStagesStorage({
        registry: options.wrap ? options.wrap(registry) : registry,
        address: `registry.example.com/${repository}`,
        project: `proj-${n}`,
      }),
      registry,
      repository,
      breakBlob: async (digest) => await registry.deleteBlob(repository, digest),
      async cleanup() {},
    });
  };
}
