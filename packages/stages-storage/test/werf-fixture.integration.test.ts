// Acceptance check 1 of issue 13: a docker-registry repository populated the
// way werf v2 populates it (test/werf-fixture.ts, written from the spec, not
// with the package's writers) reads correctly through every list and get
// operation of createRepoStagesStorage. Expected values are spelled out here
// from spec A.13's worked examples, not computed by the code under test.
import { MediaType, type Registry } from '@stowage/oci';
import { createRegistryClient, type RegistryClient } from '@stowage/registry-client';
import { type DockerRegistry, requirePeers, startDockerRegistry } from '@stowage/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRepoStagesStorage } from '../src/index.js';
import type { ImageInfo, StageID, StagesStorage } from '../src/types.js';
import { expectedStageInfo } from './images.js';
import { counted } from './suite.js';
import {
  CLIENT_ID,
  CLIENT_ID_2,
  COMMIT,
  COMMIT_2,
  DIGEST_AMD64,
  DIGEST_ARM64,
  IMPORT_ID,
  IMPORT_ID_OLD,
  MP_DIGEST,
  QUIRK_MP_TAG,
  STAGE,
  type WerfFixture,
  writeWerfFixture,
} from './werf-fixture.js';

const id = (digest: string, creationTs: number): StageID => ({
  digest,
  creationTs,
  isMultiplatform: creationTs === 0,
});
const sortIds = (ids: readonly StageID[]) =>
  [...ids].sort((a, b) => (a.digest < b.digest ? -1 : a.digest > b.digest ? 1 : a.creationTs - b.creationTs));

describe('a werf v2 repository on docker-registry reads correctly', () => {
  if (!requirePeers('docker-registry')) return;

  const project = 'myproj';
  const repository = 'group/project';
  let docker: DockerRegistry;
  let client: RegistryClient;
  let fixture: WerfFixture;
  let address: string;
  let storage: StagesStorage;

  beforeAll(async () => {
    docker = await startDockerRegistry();
    client = createRegistryClient({ registry: docker.host, auth: { useConfigFiles: false } });
    fixture = await writeWerfFixture({ registry: client, repository, project });
    address = `${docker.host}/${repository}`;
    storage = createRepoStagesStorage({ registry: client, address, project });
  });
  afterAll(async () => {
    await client?.close();
    await docker?.stop();
  });

  it('capabilities: the plain-registry profile (no tag deletes), records kept', async () => {
    expect(await storage.capabilities()).toEqual({
      createRepo: 'implicit',
      deleteRepo: true,
      deleteTag: false,
      deleteManifest: true,
      records: true,
    });
  });

  it('listStageIDs: stages and the multiplatform list; records, rejected and junk skipped', async () => {
    expect(sortIds(await storage.listStageIDs())).toEqual(
      sortIds([
        id(DIGEST_AMD64, 1700000000123),
        id(DIGEST_AMD64, 1700000000456),
        id(DIGEST_ARM64, 1700000000789),
        id(DIGEST_ARM64, 1700000000123),
        id('9e86ff69557ca95f405f081269685b38e3a819b309ee942f482b6a8b', 1700000000001),
        id('8ec94b5ae7bae885e5b1fdeaa6fc2ca2af27febfdb7cdfaa6745fd52', 1700000000002),
        id(MP_DIGEST, 0),
        // werf's listing takes any 56-char tag without a dash (spec A.4.3)
        id(QUIRK_MP_TAG, 0),
      ]),
    );
  });

  it('listStageIDsByDigest: rejected left out, parentCreationTs honoured, werf’s rejected-record quirk kept', async () => {
    expect(await storage.listStageIDsByDigest(DIGEST_AMD64)).toEqual([id(DIGEST_AMD64, 1700000000456)]);
    expect(await storage.listStageIDsByDigest(DIGEST_AMD64, { parentCreationTs: 1700000000456 })).toEqual([
      id(DIGEST_AMD64, 1700000000456),
    ]);
    expect(await storage.listStageIDsByDigest(DIGEST_AMD64, { parentCreationTs: 1700000000457 })).toEqual([]);
    // the rejected record 7d39…-1700000000123-rejected counts for every queried digest (spec A.5.6)
    expect(await storage.listStageIDsByDigest(DIGEST_ARM64)).toEqual([id(DIGEST_ARM64, 1700000000789)]);
    expect(await storage.listStageIDsByDigest(MP_DIGEST)).toEqual([id(MP_DIGEST, 0)]);
    expect(
      await storage.listStageIDsByDigest('9e86ff69557ca95f405f081269685b38e3a819b309ee942f482b6a8b'),
    ).toEqual([id('9e86ff69557ca95f405f081269685b38e3a819b309ee942f482b6a8b', 1700000000001)]);
    expect(await storage.listStageIDsByDigest('0'.repeat(56))).toEqual([]);
  });

  it('getStageDesc: a stage with pre-v2.34.1 labels, every field', async () => {
    const desc = await storage.getStageDesc({ digest: DIGEST_AMD64, creationTs: 1700000000456 });
    const image = fixture.stages.old;
    const expected: ImageInfo = {
      name: `${address}:${DIGEST_AMD64}-1700000000456`,
      repository: address,
      tag: `${DIGEST_AMD64}-1700000000456`,
      repoDigest: `${address}@${image.manifest.digest}`,
      onBuild: ['RUN echo hi'],
      env: ['PATH=/usr/bin:/bin', 'HOME=/root'],
      id: image.config.digest,
      parentId: `sha256:${'b'.repeat(64)}`,
      labels: {
        werf: 'myproj',
        'werf-version': 'v2.30.0',
        'werf-stage-content-digest': `${DIGEST_AMD64.slice(0, 40)}${'1'.repeat(16)}`,
        'werf-cache-version': '1.2',
        'werf-image': 'false',
        'werf-stage-digest': DIGEST_AMD64,
        'werf.io/parent-stage-id': `${'9'.repeat(56)}-1699999999999`,
        'werf.io/base-image-id': `sha256:${'b'.repeat(64)}`,
      },
      size: image.layers[0]!.size + image.layers[1]!.size,
      createdAtUnixNano: 1700000000 * 1e9,
      volumes: { '/var/lib/data': {} },
      isIndex: false,
      index: null,
    };
    expect(desc).toEqual({ stageID: id(DIGEST_AMD64, 1700000000456), info: expected });
  });

  it('getStageDesc: an OCI stage whose config.Image is the parent', async () => {
    const desc = await storage.getStageDesc({ digest: DIGEST_ARM64, creationTs: 1700000000789 });
    expect(desc?.info).toEqual(expectedStageInfo(fixture.stages.arm, address, STAGE.arm));
    expect(desc?.info.parentId).toBe(`sha256:${'d'.repeat(64)}`);
    expect(desc?.info.createdAtUnixNano).toBe(1700000000 * 1e9);
    // the quirk stage is not rejected itself (only its exact rejected tag would)
    expect(await storage.getStageDesc({ digest: DIGEST_ARM64, creationTs: 1700000000123 })).not.toBeNull();
  });

  it('getStageDesc: rejected and missing stages are null', async () => {
    expect(await storage.getStageDesc({ digest: DIGEST_AMD64, creationTs: 1700000000123 })).toBeNull();
    expect(await storage.getStageDesc({ digest: DIGEST_AMD64, creationTs: 1700000000124 })).toBeNull();
    expect(await storage.getStageDesc({ digest: '0'.repeat(56), creationTs: 0 })).toBeNull();
  });

  it('getStageDesc: the multiplatform manifest list', async () => {
    const desc = await storage.getStageDesc({ digest: MP_DIGEST, creationTs: 0 });
    const list = fixture.multiplatform;
    const [amd, arm] = list.images as [(typeof list.images)[0], (typeof list.images)[0]];
    const size = (i: typeof amd) => i.layers.reduce((sum, l) => sum + l.size, 0);
    expect(desc?.stageID).toEqual(id(MP_DIGEST, 0));
    expect(desc?.info).toMatchObject({
      name: `${address}:${MP_DIGEST}`,
      repository: address,
      tag: MP_DIGEST,
      repoDigest: `${address}@${list.manifest.digest}`,
      id: list.manifest.digest,
      isIndex: true,
      size: size(amd) + size(arm),
    });
    expect(desc?.info.index?.map((child) => [child.id, child.isIndex, child.size, child.labels])).toEqual([
      [amd.config.digest, false, size(amd), (amd.configJson.config as { Labels: unknown }).Labels],
      [arm.config.digest, false, size(arm), (arm.configJson.config as { Labels: unknown }).Labels],
    ]);
    expect(desc?.info.index?.map((child) => child.repoDigest)).toEqual([
      `${address}@${amd.manifest.digest}`,
      `${address}@${arm.manifest.digest}`,
    ]);
    expect(list.manifest.mediaType).toBe(MediaType.DockerManifestList);
  });

  it('custom tags: metadata IDs, metadata by tag or ID, user tags checked against their stage', async () => {
    expect([...(await storage.listCustomTagMetadataIds())].sort()).toEqual([
      'main',
      'postgres-feature-31981-change-delivery--852739dc',
      'v1-2-3-cce060b5',
    ]);
    expect(await storage.getCustomTagMetadata('v1.2.3')).toEqual({ stageId: STAGE.old, tag: 'v1.2.3' });
    expect(await storage.getCustomTagMetadata('v1-2-3-cce060b5')).toEqual({
      stageId: STAGE.old,
      tag: 'v1.2.3',
    });
    expect(await storage.getCustomTagMetadata('main')).toEqual({ stageId: STAGE.old, tag: 'main' });
    // stored with the zero-byte blob layer
    expect(
      await storage.getCustomTagMetadata('postgres-feature-31981-change-delivery-date-del-result'),
    ).toEqual({
      stageId: STAGE.arm,
      tag: 'postgres-feature-31981-change-delivery-date-del-result',
    });
    expect(await storage.getCustomTagMetadata('release')).toBeNull();
    const desc = await storage.getStageDesc({ digest: DIGEST_AMD64, creationTs: 1700000000456 });
    if (!desc) throw new Error('stage missing');
    await storage.checkCustomTag(desc, 'main');
    await storage.checkCustomTag(desc, 'v1.2.3');
    const arm = await storage.getStageDesc({ digest: DIGEST_ARM64, creationTs: 1700000000789 });
    if (!arm) throw new Error('stage missing');
    await expect(storage.checkCustomTag(arm, 'main')).rejects.toMatchObject({ code: 'CUSTOM_TAG_MISMATCH' });
    await expect(storage.checkCustomTag(desc, 'release')).rejects.toMatchObject({
      code: 'CUSTOM_TAG_NOT_FOUND',
    });
  });

  it('managed images: listed unslugged, existence by name', async () => {
    expect([...(await storage.listManagedImages())].sort()).toEqual(
      [
        'backend',
        'frontend/app',
        'my image+x',
        '',
        'Backend.v2',
        'y-85e9f398',
        `${'a'.repeat(105)}-c47af090`,
      ].sort(),
    );
    for (const name of ['backend', 'frontend/app', 'my image+x', '', 'Backend.v2', 'ы', 'a'.repeat(130)]) {
      expect(await storage.managedImageExists(name), `managedImageExists(${JSON.stringify(name)})`).toBe(
        true,
      );
    }
    expect(await storage.managedImageExists('never')).toBe(false);
    expect(await storage.managedImageExists('backend/x')).toBe(false);
  });

  it('image metadata: exists, grouped by image name with the not-managed group', async () => {
    expect(
      await storage.imageMetadataExists({ imageName: 'backend', commit: COMMIT, stageId: STAGE.old }),
    ).toBe(true);
    expect(
      await storage.imageMetadataExists({ imageName: 'backend', commit: COMMIT_2, stageId: STAGE.old }),
    ).toBe(true);
    expect(
      await storage.imageMetadataExists({ imageName: 'frontend/app', commit: COMMIT, stageId: MP_DIGEST }),
    ).toBe(true);
    expect(await storage.imageMetadataExists({ imageName: '', commit: COMMIT, stageId: STAGE.arm })).toBe(
      true,
    );
    expect(
      await storage.imageMetadataExists({ imageName: 'backend', commit: COMMIT, stageId: STAGE.arm }),
    ).toBe(false);
    const listing = await storage.listImageMetadata(['backend', 'frontend/app', '']);
    expect(listing.managed).toEqual(
      new Map([
        ['backend', new Map([[STAGE.old, [COMMIT, COMMIT_2]]])],
        ['frontend/app', new Map([[MP_DIGEST, [COMMIT]]])],
        ['', new Map([[STAGE.arm, [COMMIT]]])],
      ]),
    );
    // `my image+x` (338c72b4) was not asked for: kept under its raw metadata ID; meta-bad, meta-x_y, meta-a_b_c_d skipped
    expect(listing.notManaged).toEqual(new Map([['338c72b4', new Map([[STAGE.arm, [COMMIT]]])]]));
  });

  it('import metadata: the current and the pre-v2.23 label', async () => {
    expect([...(await storage.listImportMetadataIds())].sort()).toEqual([IMPORT_ID, IMPORT_ID_OLD].sort());
    expect(await storage.getImportMetadata(IMPORT_ID)).toEqual({
      importSourceId: IMPORT_ID,
      sourceStageId: STAGE.old,
      checksum: 'f00dfeed',
    });
    expect(await storage.getImportMetadata(IMPORT_ID_OLD)).toEqual({
      importSourceId: IMPORT_ID_OLD,
      sourceStageId: STAGE.arm,
      checksum: '',
    });
    expect(await storage.getImportMetadata('9'.repeat(64))).toBeNull();
  });

  it('client IDs (UUIDs with dashes), sync server, cleanup', async () => {
    const clients = [...(await storage.listClientIdRecords())].sort(
      (a, b) => a.timestampMillisec - b.timestampMillisec,
    );
    expect(clients).toEqual([
      { clientId: CLIENT_ID_2, timestampMillisec: 3400000000100 },
      { clientId: CLIENT_ID, timestampMillisec: 3400000000246 },
    ]);
    expect(await storage.getSyncServerRecord()).toEqual({
      server: 'https://sync.example.com/werf',
      timestampMillisec: 3400000000500,
    });
    expect(await storage.getCleanupRecord()).toEqual({ timestampMillisec: 1700000000999 });
  });

  it('every read of the fixture with cache set lists the repository once', async () => {
    const count = counted(client);
    const cached = createRepoStagesStorage({ registry: count.registry as Registry, address, project });
    const o = { cache: true } as const;
    const results = await Promise.all([
      cached.listStageIDs(o),
      cached.listStageIDsByDigest(DIGEST_AMD64, o),
      cached.listStageIDsByDigest(DIGEST_ARM64, o),
      cached.listStageIDsByDigest(MP_DIGEST, o),
      cached.getStageDesc({ digest: DIGEST_AMD64, creationTs: 1700000000456 }, o),
      cached.getStageDesc({ digest: DIGEST_AMD64, creationTs: 1700000000123 }, o),
      cached.listCustomTagMetadataIds(o),
      cached.listManagedImages(o),
      cached.managedImageExists('backend', o),
      cached.imageMetadataExists({ imageName: 'backend', commit: COMMIT, stageId: STAGE.old }, o),
      cached.listImageMetadata(['backend'], o),
      cached.listImportMetadataIds(o),
      cached.listClientIdRecords(o),
      cached.getSyncServerRecord(o),
      cached.getCleanupRecord(o),
    ]);
    expect(count.count('listTags')).toBe(1);
    expect(results[1]).toEqual([id(DIGEST_AMD64, 1700000000456)]);
    expect(results[5]).toBeNull();
    expect(results[8]).toBe(true);
    expect(results[9]).toBe(true);
    expect(results[14]).toEqual({ timestampMillisec: 1700000000999 });
  });

  it('the fixture holds every tag it wrote (nothing was lost on the way in)', async () => {
    const listed = new Set<string>();
    let last: string | undefined;
    for (;;) {
      const page = await client.listTags(repository, last === undefined ? {} : { last });
      for (const tag of page.items) listed.add(tag);
      if (page.next === undefined || page.items.length === 0) break;
      last = page.next;
    }
    for (const tag of fixture.tags) expect(listed.has(tag), tag).toBe(true);
  });
});
