import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createImageStore, type ImageStore } from '@stowage/image-store';
import { isStowageError } from '@stowage/oci';
import { classifyTag } from '@stowage/tags';
import { createMemoryRegistry, pushImage, randomImage } from '@stowage/testing';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { RepoContext } from './context.js';
import { createLocalStagesStorage } from './local-storage.js';
import { readRecordLabels } from './record-image.js';
import { createRepoStagesStorage } from './repo-storage.js';

const D1 = '7d391a82ee3f0e574361c594fe737dc6db627be9667a470ab7581da7';
const D2 = '6f093dd8c05f50597704d1fdde154733f47835782a027626fdccab01';
const PROJECT = 'myproject';

describe('createLocalStagesStorage', () => {
  let root: string;
  let store: ImageStore;

  beforeEach(async () => {
    root = await mkdtemp(join(tmpdir(), 'stowage-local-stages-'));
    store = await createImageStore({ root });
  });
  afterEach(async () => {
    await store.close();
    await rm(root, { recursive: true, force: true });
  });

  const create = () => createLocalStagesStorage({ registry: store, project: PROJECT });

  it('names stages <project>:<digest>-<ts> (or <project>:<digest>) at address :local', async () => {
    const storage = create();
    expect(storage.address).toBe(':local');
    expect(storage.project).toBe(PROJECT);
    expect(storage.location).toEqual({ registry: store, repository: PROJECT });
    expect(storage.stageImageName({ digest: D1, creationTs: 1700000000123 })).toBe(
      `${PROJECT}:${D1}-1700000000123`,
    );
    expect(storage.stageImageName({ digest: D1, creationTs: 0 })).toBe(`${PROJECT}:${D1}`);
    expect(storage.stageTag({ digest: D1, creationTs: 1700000000123 })).toBe(`${D1}-1700000000123`);
    expect(await storage.capabilities()).toMatchObject({ records: false, createRepo: 'implicit' });
    expect(() => createLocalStagesStorage({ registry: store, project: '' })).toThrow();
  });

  it('lists only 70-character tags with one dash; by digest also by prefix and parent time', async () => {
    const image = randomImage();
    for (const tag of [
      `${D1}-1700000000001`,
      `${D1}-1700000000002`,
      `${D2}-1700000000003`,
      D1, // a multiplatform tag is not a local stage
      `${D1}-1700000000002-rejected`,
      `${D1}-170000000000x`,
      'latest',
    ]) {
      await pushImage(store, PROJECT, image, tag);
    }
    const storage = create();
    const all = await storage.listStageIDs();
    expect(all.map((s) => `${s.digest}-${s.creationTs}`).sort()).toEqual(
      [`${D1}-1700000000001`, `${D1}-1700000000002`, `${D2}-1700000000003`].sort(),
    );
    expect(all.every((s) => !s.isMultiplatform)).toBe(true);
    const byDigest = await storage.listStageIDsByDigest(D1, { cache: true });
    expect(byDigest.map((s) => s.creationTs).sort()).toEqual([1700000000001, 1700000000002]);
    expect(
      (await storage.listStageIDsByDigest(D1, { cache: true, parentCreationTs: 1700000000002 })).map(
        (s) => s.creationTs,
      ),
    ).toEqual([1700000000002]);
  });

  it('describes, keeps (rejects are not kept locally) and deletes a stage', async () => {
    const image = randomImage();
    const stage = { digest: D1, creationTs: 1700000000001 };
    await pushImage(store, PROJECT, image, `${D1}-1700000000001`);
    const storage = create();
    const desc = await storage.getStageDesc(stage);
    expect(desc?.info).toMatchObject({
      name: `${PROJECT}:${D1}-1700000000001`,
      repository: PROJECT,
      repoDigest: `${PROJECT}@${image.manifest.digest}`,
      id: image.config.descriptor.digest,
    });
    await storage.rejectStage(stage);
    expect(await store.headManifest(PROJECT, `${D1}-1700000000001-rejected`)).toBeUndefined();
    expect(await storage.getStageDesc(stage)).not.toBeNull();
    if (!desc) throw new Error('stage expected');
    await storage.deleteStage(desc);
    expect(await storage.getStageDesc(stage)).toBeNull();
    expect(await storage.listStageIDs()).toEqual([]);
  });

  it('keeps import metadata as images werf-import-metadata/<project>:<id>', async () => {
    const storage = create();
    const id = '3eb93ace11926614557246024803002ff4e7aea519969acaa7572ef30ed5fd35';
    const metadata = { importSourceId: id, sourceStageId: `${D1}-1700000000001`, checksum: 'sum' };
    expect(await storage.getImportMetadata(id)).toBeNull();
    expect(await storage.listImportMetadataIds()).toEqual([]);
    await storage.putImportMetadata(metadata);
    expect(await storage.getImportMetadata(id)).toEqual(metadata);
    expect(await storage.listImportMetadataIds()).toEqual([id]);
    const records = new RepoContext({
      registry: store,
      repository: `werf-import-metadata/${PROJECT}`,
      address: `werf-import-metadata/${PROJECT}`,
      project: PROJECT,
    });
    expect(await readRecordLabels(records, id)).toEqual({
      werf: PROJECT,
      'import-source-id': id,
      'source-stage-id': `${D1}-1700000000001`,
      checksum: 'sum',
    });
    // present: skipped unless forced
    await storage.putImportMetadata({ ...metadata, checksum: 'other' });
    expect((await storage.getImportMetadata(id))?.checksum).toBe('sum');
    await storage.putImportMetadata({ ...metadata, checksum: 'other' }, { force: true });
    expect((await storage.getImportMetadata(id))?.checksum).toBe('other');
    await storage.removeImportMetadata(id);
    expect(await storage.getImportMetadata(id)).toBeNull();
    await storage.removeImportMetadata(id);
    expect(await storage.listStageIDs()).toEqual([]);
    await storage.putImportMetadata(metadata);
    await pushImage(store, PROJECT, randomImage(), `${D1}-1700000000001`);
    await storage.deleteRepo();
    expect(await storage.listImportMetadataIds()).toEqual([]);
    expect(await storage.listStageIDs()).toEqual([]);
  });

  it('writes no other record and reads none; fetch and store have nothing to do', async () => {
    const storage = create();
    const stage = { digest: D1, creationTs: 1700000000001 };
    await pushImage(store, PROJECT, randomImage(), `${D1}-1700000000001`);
    const desc = await storage.getStageDesc(stage);
    if (!desc) throw new Error('stage expected');
    await storage.addManagedImage('backend');
    await storage.putImageMetadata({ imageName: 'backend', commit: 'c'.repeat(40), stageId: `${D1}-1` });
    await storage.postClientIdRecord({ clientId: 'x', timestampMillisec: 1 });
    await storage.postSyncServerRecord({ server: 'http://s', timestampMillisec: 1 });
    await storage.postCleanupRecord({ timestampMillisec: 1 });
    await storage.registerCustomTag(desc, 'main');
    await storage.addCustomTag(desc, 'main');
    expect(await storage.listManagedImages()).toEqual([]);
    expect(await storage.managedImageExists('backend')).toBe(false);
    expect(
      await storage.imageMetadataExists({ imageName: 'backend', commit: 'c'.repeat(40), stageId: `${D1}-1` }),
    ).toBe(false);
    expect(await storage.listImageMetadata(['backend'])).toEqual({
      managed: new Map(),
      notManaged: new Map(),
    });
    expect(await storage.listClientIdRecords()).toEqual([]);
    expect(await storage.getSyncServerRecord()).toBeNull();
    expect(await storage.getCleanupRecord()).toBeNull();
    expect(await storage.getCustomTagMetadata('main')).toBeNull();
    expect(await storage.listCustomTagMetadataIds()).toEqual([]);
    const tags = (await store.listTags(PROJECT)).items;
    expect(tags).toEqual([`${D1}-1700000000001`]);
    expect(classifyTag(tags[0] ?? '').kind).toBe('stage');

    const local = { local: { registry: store } };
    expect(await storage.shouldFetchImage(stage, local)).toBe(false);
    await storage.fetchImage(stage, local);
    await storage.storeImage(stage, local);
    expect((await store.listRepositories()).items).toEqual([PROJECT]);
  });

  it('copies a stage in from another storage', async () => {
    const registry = createMemoryRegistry();
    const image = randomImage();
    await pushImage(registry, 'stages', image, `${D2}-1700000000003`);
    const source = createRepoStagesStorage({ registry, address: 'example.com/stages', project: PROJECT });
    const storage = create();
    const desc = await storage.copyFromStorage(source, { digest: D2, creationTs: 1700000000003 });
    expect(desc?.info.name).toBe(`${PROJECT}:${D2}-1700000000003`);
    expect((await store.headManifest(PROJECT, `${D2}-1700000000003`))?.digest).toBe(image.manifest.digest);
    const missing = await storage
      .copyFromStorage(source, { digest: D2, creationTs: 9 })
      .catch((e: unknown) => e);
    expect(isStowageError(missing, 'STAGE_NOT_FOUND')).toBe(true);
  });
});
