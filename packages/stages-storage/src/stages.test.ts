import { type Digest, isStowageError, MediaType, type Registry } from '@stowage/oci';
import { listStages, listStagesByDigest, sha3_224Hash } from '@stowage/tags';
import { createMemoryRegistry, pushImage, randomImage, spyRegistry } from '@stowage/testing';
import { describe, expect, it } from 'vitest';
import { RepoContext } from './context.js';
import {
  capabilities,
  deleteRepo,
  deleteStage,
  describeStage,
  getStageDesc,
  listStageIDs,
  listStageIDsByDigest,
  multiplatformStageID,
  postMultiplatformImage,
} from './stages.js';

const ADDRESS = 'registry.example.com/group/project';
const REPO = 'group/project';
const D1 = '7d391a82ee3f0e574361c594fe737dc6db627be9667a470ab7581da7';
const D2 = '6f093dd8c05f50597704d1fdde154733f47835782a027626fdccab01';

function context(registry: Registry): RepoContext {
  return new RepoContext({ registry, repository: REPO, address: ADDRESS, project: 'myproj' });
}

/** One image pushed under every tag given (a listing test needs tags, not distinct images). */
async function tagAll(registry: Registry, tags: readonly string[]): Promise<Digest> {
  const image = randomImage();
  for (const tag of tags) await pushImage(registry, REPO, image, tag);
  return image.manifest.digest;
}

describe('capabilities', () => {
  it('follows the registry: repo delete needs manifest deletes; records are kept', async () => {
    expect(await capabilities(context(createMemoryRegistry()))).toEqual({
      createRepo: 'implicit',
      deleteRepo: true,
      deleteTag: true,
      deleteManifest: true,
      records: true,
    });
    const plain = spyRegistry(createMemoryRegistry(), {
      capabilities: { deleteTag: false, deleteManifest: false },
    });
    expect(await capabilities(context(plain))).toMatchObject({
      deleteRepo: false,
      deleteTag: false,
      deleteManifest: false,
    });
  });
});

describe('listStageIDs', () => {
  it('keeps exactly what werf GetStagesIDs keeps, junk and records left out, quirks kept', async () => {
    const registry = createMemoryRegistry();
    const userTag56 = 'u'.repeat(56); // a 56-char user tag without '-' passes for a stage, as in werf
    const tags = [
      `${D1}-1700000000123`,
      `${D1}-1700000000456`,
      D2,
      userTag56,
      `${D1}-1700000000123-rejected`,
      `managed-image-${'m'.repeat(42)}`, // 56 chars, a record
      `meta-${'a'.repeat(51)}`, // 56 chars, a record
      `${D1.slice(0, 55)}-x-170000000012`, // 70 chars, two dashes
      `${D1}-17000000001x`, // 70 chars, not a number
      'latest',
      'custom-tag-meta-main',
    ];
    await tagAll(registry, tags);
    const stages = await listStageIDs(context(registry));
    const expected = [
      { digest: D1, creationTs: 1700000000123, isMultiplatform: false },
      { digest: D1, creationTs: 1700000000456, isMultiplatform: false },
      { digest: D2, creationTs: 0, isMultiplatform: true },
      { digest: userTag56, creationTs: 0, isMultiplatform: true },
    ];
    const order = (a: { digest: string; creationTs: number }, b: { digest: string; creationTs: number }) =>
      a.digest.localeCompare(b.digest) || a.creationTs - b.creationTs;
    expect([...stages].sort(order)).toEqual(expected.sort(order));
    expect(stages.map((s) => ({ digest: s.digest, creationTs: s.creationTs })).sort(order)).toEqual(
      listStages(tags).sort(order),
    );
  });

  it('is empty for a repository that does not exist', async () => {
    expect(await listStageIDs(context(createMemoryRegistry()))).toEqual([]);
  });
});

describe('listStageIDsByDigest', () => {
  const tags = [
    `${D1}-1700000000001`,
    `${D1}-1700000000002`,
    `${D1}-1700000000003`,
    `${D1}-1700000000002-rejected`,
    `${D1}-junk`,
    `${D1}-1700000000004-extra`,
    `${D2}-1700000000005`,
    `${D2}-1700000000001-rejected`,
  ];

  it('leaves out rejected stages and those older than the parent, as listStagesByDigest over the whole listing', async () => {
    const registry = createMemoryRegistry();
    await tagAll(registry, tags);
    const ctx = context(registry);
    const ts = async (digest: string, parentCreationTs?: number) =>
      (
        await listStageIDsByDigest(ctx, digest, parentCreationTs === undefined ? {} : { parentCreationTs })
      ).map((s) => s.creationTs);
    // D2's rejected record for 1700000000001 counts for D1 too: werf's quirk (spec A.5.6)
    expect(await ts(D1)).toEqual([1700000000003]);
    expect(await ts(D1, 1700000000004)).toEqual([]);
    expect(await ts(D2)).toEqual([1700000000005]);
    expect(await ts(D2, 1700000000005)).toEqual([1700000000005]);
    const stage = (await listStageIDsByDigest(ctx, D2))[0];
    expect(stage).toEqual({ digest: D2, creationTs: 1700000000005, isMultiplatform: false });
    // werf's own answer, over the whole listing
    for (const digest of [D1, D2, D1.slice(0, 10), sha3_224Hash('other')]) {
      for (const parentCreationTs of [undefined, 1700000000002]) {
        const options = parentCreationTs === undefined ? {} : { parentCreationTs };
        expect(await listStageIDsByDigest(ctx, digest, options)).toEqual(
          listStagesByDigest(tags, digest, options).map((s) => ({
            ...s,
            isMultiplatform: s.creationTs === 0,
          })),
        );
      }
    }
  });

  it('a cached listing keeps the rejected records current: one written or removed through the storage counts at once', async () => {
    const registry = createMemoryRegistry();
    await tagAll(registry, tags);
    const ctx = context(registry);
    const ts = async (digest: string) =>
      (await listStageIDsByDigest(ctx, digest, { cache: true })).map((s) => s.creationTs);
    expect(await ts(D2)).toEqual([1700000000005]);
    ctx.noteTag(`${D1}-1700000000005-rejected`, true); // another digest's record, same time
    expect(await ts(D2)).toEqual([]);
    ctx.noteTag(`${D1}-1700000000005-rejected`, false);
    expect(await ts(D2)).toEqual([1700000000005]);
    ctx.noteTag(`${D2}-1700000000001-rejected`, false);
    expect(await ts(D1)).toEqual([1700000000001, 1700000000003]);
  });

  it('a batch with cache lists the repository once, and sees writes made through the context', async () => {
    const store = createMemoryRegistry();
    await tagAll(store, tags);
    const registry = spyRegistry(store);
    const ctx = context(registry);
    const digests = Array.from({ length: 100 }, (_, i) => sha3_224Hash(String(i)));
    digests.push(D1, D2);
    for (const digest of digests) await listStageIDsByDigest(ctx, digest, { cache: true });
    expect(registry.count('listTags')).toBe(1);
    ctx.noteTag(`${D2}-1700000000009`, true);
    expect((await listStageIDsByDigest(ctx, D2, { cache: true })).map((s) => s.creationTs).sort()).toEqual([
      1700000000005, 1700000000009,
    ]);
    await listStageIDsByDigest(ctx, D2);
    expect(registry.count('listTags')).toBe(2);
  });
});

describe('getStageDesc', () => {
  it('describes a stage; absent and rejected are null; rejected is read from a cached listing without a HEAD', async () => {
    const store = createMemoryRegistry();
    const image = randomImage({ format: 'docker' });
    await pushImage(store, REPO, image, `${D1}-1700000000001`);
    await pushImage(store, REPO, image, `${D1}-1700000000002`);
    await tagAll(store, [`${D1}-1700000000002-rejected`]);
    const registry = spyRegistry(store);
    const ctx = context(registry);

    const desc = await getStageDesc(ctx, { digest: D1, creationTs: 1700000000001 });
    expect(desc?.stageID).toEqual({ digest: D1, creationTs: 1700000000001, isMultiplatform: false });
    expect(desc?.info).toMatchObject({
      name: `${ADDRESS}:${D1}-1700000000001`,
      tag: `${D1}-1700000000001`,
      repoDigest: `${ADDRESS}@${image.manifest.digest}`,
      id: image.config.descriptor.digest,
    });
    expect(await getStageDesc(ctx, { digest: D1, creationTs: 1700000000009 })).toBeNull();
    expect(await getStageDesc(ctx, { digest: D1, creationTs: 1700000000002 })).toBeNull();
    expect(registry.count('listTags')).toBe(0);

    const heads = registry.count('headManifest');
    expect(await getStageDesc(ctx, { digest: D1, creationTs: 1700000000002 }, { cache: true })).toBeNull();
    expect(
      await getStageDesc(ctx, { digest: D1, creationTs: 1700000000001 }, { cache: true }),
    ).not.toBeNull();
    expect(registry.count('listTags')).toBe(1);
    expect(registry.count('headManifest')).toBe(heads);
  });

  it('a stage whose config blob is gone is BROKEN_IMAGE', async () => {
    const registry = createMemoryRegistry();
    const image = randomImage();
    await pushImage(registry, REPO, image, `${D1}-1700000000001`);
    await registry.deleteBlob(REPO, image.config.descriptor.digest);
    const error = await getStageDesc(context(registry), { digest: D1, creationTs: 1700000000001 }).catch(
      (e: unknown) => e,
    );
    expect(isStowageError(error, 'BROKEN_IMAGE')).toBe(true);
  });
});

describe('deleteStage', () => {
  it('removes the stage image and its rejected record, and keeps the cached listing current', async () => {
    const registry = createMemoryRegistry();
    const stage = { digest: D1, creationTs: 1700000000001 };
    await pushImage(registry, REPO, randomImage(), `${D1}-1700000000001`);
    await tagAll(registry, [`${D1}-1700000000001-rejected`]);
    await tagAll(registry, [`${D1}-1700000000002`]);
    const ctx = context(registry);
    const desc = await getStageDesc(ctx, stage);
    expect(desc).toBeNull(); // rejected
    const listed = await ctx.tags({ cache: true });
    expect(listed.has(`${D1}-1700000000001`)).toBe(true);
    const found = await describeStage(ctx, stage);
    if (!found) throw new Error('stage expected');
    await deleteStage(ctx, found);
    expect(await registry.headManifest(REPO, `${D1}-1700000000001`)).toBeUndefined();
    expect(await registry.headManifest(REPO, `${D1}-1700000000001-rejected`)).toBeUndefined();
    expect(await registry.headManifest(REPO, `${D1}-1700000000002`)).toBeDefined();
    expect(ctx.cached()?.has(`${D1}-1700000000001`)).toBe(false);
    expect(ctx.cached()?.has(`${D1}-1700000000001-rejected`)).toBe(false);
    // absent is success
    await deleteStage(ctx, found);
  });
});

describe('deleteRepo', () => {
  it('deletes every manifest the tags point at', async () => {
    const registry = createMemoryRegistry();
    await tagAll(registry, [`${D1}-1700000000001`, 'latest']);
    await pushImage(registry, REPO, randomImage(), `${D2}-1700000000001`);
    await deleteRepo(context(registry));
    const page = await registry.listTags(REPO).catch(() => ({ items: [] }));
    expect(page.items).toEqual([]);
  });

  it('is UNSUPPORTED naming the registry when it cannot delete manifests, and removes nothing', async () => {
    const store = createMemoryRegistry();
    await tagAll(store, [`${D1}-1700000000001`]);
    const registry = spyRegistry(store, { capabilities: { deleteManifest: false } });
    const error = await deleteRepo(context(registry)).catch((e: unknown) => e);
    expect(isStowageError(error, 'UNSUPPORTED')).toBe(true);
    expect((error as Error).message).toContain(store.origin);
    expect(registry.count('deleteManifest')).toBe(0);
    expect(await store.headManifest(REPO, `${D1}-1700000000001`)).toBeDefined();
  });
});

describe('multiplatform stages', () => {
  // spec A.13 example 2
  const amd64 = {
    digest: '9e86ff69557ca95f405f081269685b38e3a819b309ee942f482b6a8b',
    creationTs: 1700000000001,
  };
  const arm64 = {
    digest: '8ec94b5ae7bae885e5b1fdeaa6fc2ca2af27febfdb7cdfaa6745fd52',
    creationTs: 1700000000002,
  };
  const TAG = '1bd30981b9640a88428f82aee3ff4f45099ba3ef12aa9ca42c19b8f0';

  it('multiplatformStageID hashes the stage IDs in platform order (spec A.13 example 2)', () => {
    const expected = { digest: TAG, creationTs: 0, isMultiplatform: true };
    expect(
      multiplatformStageID([
        { platform: 'linux/arm64', stageID: arm64 },
        { platform: 'linux/amd64', stageID: amd64 },
      ]),
    ).toEqual(expected);
    expect(
      multiplatformStageID([
        { platform: 'linux/amd64', stageID: amd64 },
        { platform: 'linux/arm64', stageID: arm64 },
      ]),
    ).toEqual(expected);
  });

  it('postMultiplatformImage pushes a Docker manifest list over the stages, in the order given, with their platforms', async () => {
    const registry = createMemoryRegistry();
    const amdImage = randomImage({ format: 'docker', platform: 'linux/amd64' });
    const armImage = randomImage({ format: 'oci', platform: 'linux/arm/v7' });
    await pushImage(registry, REPO, amdImage, `${amd64.digest}-${amd64.creationTs}`);
    await pushImage(registry, REPO, armImage, `${arm64.digest}-${arm64.creationTs}`);
    const ctx = context(registry);
    const arm = await describeStage(ctx, arm64);
    const amd = await describeStage(ctx, amd64);
    if (!arm || !amd) throw new Error('stages expected');
    const tag = multiplatformStageID([
      { platform: 'linux/amd64', stageID: amd64 },
      { platform: 'linux/arm64', stageID: arm64 },
    ]).digest;
    const desc = await postMultiplatformImage(ctx, { tag, images: [arm, amd] });
    expect(desc.stageID).toEqual({ digest: TAG, creationTs: 0, isMultiplatform: true });
    expect(desc.info).toMatchObject({ name: `${ADDRESS}:${TAG}`, isIndex: true });
    expect(desc.info.index?.map((child) => child.id)).toEqual([
      armImage.config.descriptor.digest,
      amdImage.config.descriptor.digest,
    ]);
    const list = await registry.getManifest(REPO, TAG);
    expect(list.mediaType).toBe(MediaType.DockerManifestList);
    expect(JSON.parse(Buffer.from(list.bytes).toString())).toEqual({
      schemaVersion: 2,
      mediaType: MediaType.DockerManifestList,
      manifests: [
        {
          mediaType: MediaType.OciManifest,
          size: armImage.manifest.size,
          digest: armImage.manifest.digest,
          platform: { architecture: 'arm', os: 'linux', variant: 'v7' },
        },
        {
          mediaType: MediaType.DockerManifest,
          size: amdImage.manifest.size,
          digest: amdImage.manifest.digest,
          platform: { architecture: 'amd64', os: 'linux' },
        },
      ],
    });
    expect((await listStageIDs(ctx)).some((s) => s.digest === TAG && s.isMultiplatform)).toBe(true);
  });
});
