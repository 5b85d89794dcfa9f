import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createImageStore, type ImageStore } from '@stowage/image-store';
import { isStowageError, isValidRepositoryName } from '@stowage/oci';
import { createMemoryRegistry, pushImage, randomImage, spyRegistry } from '@stowage/testing';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createRepoStagesStorage } from './repo-storage.js';
import { localRepositoryOf } from './transfer.js';

const ADDRESS = '127.0.0.1:5000/werf/stages';
const REPO = 'werf/stages';
const D = '7d391a82ee3f0e574361c594fe737dc6db627be9667a470ab7581da7';
const STAGE = { digest: D, creationTs: 1700000000123 };
const TAG = `${D}-1700000000123`;

describe('localRepositoryOf', () => {
  it('makes a valid repository name of any address', () => {
    expect(localRepositoryOf('127.0.0.1:5000/stages')).toBe('127.0.0.1-5000/stages');
    expect(localRepositoryOf('Registry.Example.com/Group/Project')).toBe(
      'registry.example.com/group/project',
    );
    expect(localRepositoryOf('host:5000//a__b..c/-x-/')).toBe('host-5000/a-b-c/x');
    expect(localRepositoryOf('ы:/:')).toBe('stages');
    for (const address of [
      '127.0.0.1:5000/stages',
      'localhost:5000/a/b',
      'host:5000//a__b..c/-x-/',
      'A B+C@d/e~f',
      '[::1]:5000/x',
      ':local',
    ]) {
      expect(isValidRepositoryName(localRepositoryOf(address)), address).toBe(true);
    }
  });
});

describe('fetch, store and should-fetch with the local image store', () => {
  let root: string;
  let local: ImageStore;

  beforeEach(async () => {
    root = await mkdtemp(join(tmpdir(), 'stowage-transfer-'));
    local = await createImageStore({ root });
  });
  afterEach(async () => {
    await local.close();
    await rm(root, { recursive: true, force: true });
  });

  it('fetches a stage into the store under the stage tag, after which it need not be fetched', async () => {
    const registry = createMemoryRegistry();
    const image = randomImage({ layers: 2 });
    await pushImage(registry, REPO, image, TAG);
    const storage = createRepoStagesStorage({ registry, address: ADDRESS, project: 'myproj' });
    const options = { local: { registry: local } };
    expect(await storage.shouldFetchImage(STAGE, options)).toBe(true);
    await storage.fetchImage(STAGE, options);
    expect((await local.headManifest('127.0.0.1-5000/werf/stages', TAG))?.digest).toBe(image.manifest.digest);
    expect(await storage.shouldFetchImage(STAGE, options)).toBe(false);
    // an explicit repository wins
    const elsewhere = { local: { registry: local, repository: 'mine' } };
    expect(await storage.shouldFetchImage(STAGE, elsewhere)).toBe(true);
    await storage.fetchImage(STAGE, elsewhere);
    expect(await storage.shouldFetchImage(STAGE, elsewhere)).toBe(false);
  });

  it('a layer gone at the repository is BROKEN_IMAGE; a stage that is not there is STAGE_NOT_FOUND', async () => {
    const registry = createMemoryRegistry();
    const image = randomImage({ layers: 1 });
    await pushImage(registry, REPO, image, TAG);
    await registry.deleteBlob(REPO, image.layers[0]?.descriptor.digest ?? 'sha256:x');
    const storage = createRepoStagesStorage({ registry, address: ADDRESS, project: 'myproj' });
    const options = { local: { registry: local } };
    const broken = await storage.fetchImage(STAGE, options).catch((e: unknown) => e);
    expect(isStowageError(broken, 'BROKEN_IMAGE')).toBe(true);
    expect((broken as Error).message).toContain(`${ADDRESS}:${TAG}`);
    expect(await storage.shouldFetchImage(STAGE, options)).toBe(true);
    const absent = await storage.fetchImage({ digest: D, creationTs: 1 }, options).catch((e: unknown) => e);
    expect(isStowageError(absent, 'STAGE_NOT_FOUND')).toBe(true);
  });

  it('stores a local stage into the repository, and the cached listing sees it', async () => {
    const image = randomImage();
    await pushImage(local, '127.0.0.1-5000/werf/stages', image, TAG);
    const registry = createMemoryRegistry();
    const storage = createRepoStagesStorage({ registry, address: ADDRESS, project: 'myproj' });
    expect(await storage.listStageIDs({ cache: true })).toEqual([]);
    await storage.storeImage(STAGE, { local: { registry: local } });
    expect((await registry.headManifest(REPO, TAG))?.digest).toBe(image.manifest.digest);
    expect(await storage.listStageIDs({ cache: true })).toEqual([{ ...STAGE, isMultiplatform: false }]);
    const missing = await storage
      .storeImage({ digest: D, creationTs: 2 }, { local: { registry: local } })
      .catch((e: unknown) => e);
    expect(isStowageError(missing, 'STAGE_NOT_FOUND')).toBe(true);
  });
});

describe('copyFromStorage', () => {
  it('copies a stage that is not here, and answers the one here without copying again', async () => {
    const source = createRepoStagesStorage({
      registry: createMemoryRegistry(),
      address: 'source.example.com/stages',
      project: 'myproj',
    });
    const image = randomImage({ layers: 2 });
    await pushImage(source.location.registry, source.location.repository, image, TAG);
    const registry = spyRegistry(createMemoryRegistry());
    const target = createRepoStagesStorage({
      registry,
      address: 'target.example.com/stages',
      project: 'myproj',
    });
    const desc = await target.copyFromStorage(source, STAGE);
    expect(desc?.info).toMatchObject({
      name: `target.example.com/stages:${TAG}`,
      repoDigest: `target.example.com/stages@${image.manifest.digest}`,
    });
    const pushes = registry.count('putManifest');
    expect(pushes).toBe(1);
    expect((await target.copyFromStorage(source, STAGE))?.info.repoDigest).toBe(desc?.info.repoDigest);
    expect(registry.count('putManifest')).toBe(pushes);
    const absent = await target
      .copyFromStorage(source, { digest: D, creationTs: 5 })
      .catch((e: unknown) => e);
    expect(isStowageError(absent, 'STAGE_NOT_FOUND')).toBe(true);
  });
});
