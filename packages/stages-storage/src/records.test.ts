import { type Digest, isStowageError, MediaType, type Registry, RegistryError } from '@stowage/oci';
import { classifyTag, encodeStageTag, type TagKind } from '@stowage/tags';
import { createMemoryRegistry, pushImage, type RandomImage, randomImage } from '@stowage/testing';
import { describe, expect, it } from 'vitest';
import { faulty, withoutTagDelete } from '../test/faulty-registry.js';
import { RepoContext } from './context.js';
import { buildRecordImage, pushRecord, readRecordLabels } from './record-image.js';
import * as records from './records.js';
import type { ImageInfo, StageDesc } from './types.js';

const REPO = 'group/project';
const ADDRESS = 'registry.example.com/group/project';
const DIGEST = '7d391a82ee3f0e574361c594fe737dc6db627be9667a470ab7581da7';
const STAGE = { digest: DIGEST, creationTs: 1700000000123 };
const STAGE_TAG = encodeStageTag(STAGE);
const COMMIT = '0123456789abcdef0123456789abcdef01234567';

function setup(wrap: (registry: Registry) => Registry = (r) => r) {
  const memory = createMemoryRegistry();
  const warnings: object[] = [];
  const ctx = new RepoContext({
    registry: wrap(memory),
    repository: REPO,
    address: ADDRESS,
    project: 'myproj',
    logger: { warn: (fields) => warnings.push(fields) },
  });
  return { memory, ctx, warnings };
}

async function tagsOf(registry: Registry): Promise<string[]> {
  return [...(await registry.listTags(REPO)).items];
}

async function rejects(promise: Promise<unknown>): Promise<unknown> {
  return await promise.then(
    () => {
      throw new Error('expected a rejection');
    },
    (error: unknown) => error,
  );
}

/** A stage image in the repository and the description werf would have of it. */
async function pushStage(memory: Registry, image: RandomImage = randomImage({ format: 'docker' })) {
  const digest = await pushImage(memory, REPO, image, STAGE_TAG);
  const info: ImageInfo = {
    name: `${ADDRESS}:${STAGE_TAG}`,
    repository: ADDRESS,
    tag: STAGE_TAG,
    repoDigest: `${ADDRESS}@${digest}`,
    onBuild: null,
    env: null,
    id: image.config.descriptor.digest,
    parentId: '',
    labels: { werf: 'myproj' },
    size: image.layers.reduce((sum, layer) => sum + layer.descriptor.size, 0),
    createdAtUnixNano: 0,
    volumes: null,
    isIndex: false,
    index: null,
  };
  const desc: StageDesc = { stageID: { ...STAGE, isMultiplatform: false }, info };
  return { digest, desc, image };
}

describe('rejectStage', () => {
  it('writes <digest>-<ts>-rejected labelled with the project', async () => {
    const { memory, ctx } = setup();
    await records.rejectStage(ctx, STAGE);
    const tag = `${STAGE_TAG}-rejected`;
    expect(await tagsOf(memory)).toEqual([tag]);
    expect(await readRecordLabels(ctx, tag)).toEqual({ werf: 'myproj' });
    expect(classifyTag(tag)).toEqual({ kind: 'rejected', ...STAGE });
  });
});

describe('custom tags', () => {
  it('addCustomTag pushes the stage manifest again: same bytes, same digest', async () => {
    const { memory, ctx } = setup();
    const { digest } = await pushStage(memory);
    const { desc } = await pushStage(memory);
    const stageDigest = (await memory.headManifest(REPO, STAGE_TAG))?.digest;
    await records.addCustomTag(ctx, desc, 'v1.2.3');
    expect((await memory.headManifest(REPO, 'v1.2.3'))?.digest).toBe(stageDigest);
    expect(stageDigest).not.toBe(digest);
    expect(classifyTag('v1.2.3').kind).toBe('other');
  });

  it('addCustomTag of a stage that is gone is STAGE_NOT_FOUND', async () => {
    const { memory, ctx } = setup();
    const { desc, digest } = await pushStage(memory);
    await memory.deleteManifest(REPO, digest);
    expect(isStowageError(await rejects(records.addCustomTag(ctx, desc, 'main')), 'STAGE_NOT_FOUND')).toBe(
      true,
    );
  });

  it('checkCustomTag: absent, the same manifest, the same config, another image', async () => {
    const { memory, ctx } = setup();
    const { desc, image } = await pushStage(memory);
    expect(
      isStowageError(await rejects(records.checkCustomTag(ctx, desc, 'main')), 'CUSTOM_TAG_NOT_FOUND'),
    ).toBe(true);
    await records.addCustomTag(ctx, desc, 'main');
    await records.checkCustomTag(ctx, desc, 'main');

    // Another manifest (OCI, other bytes) over the same config: the same image to werf.
    const oci = new TextEncoder().encode(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: MediaType.OciManifest,
        config: { ...image.config.descriptor, mediaType: MediaType.OciConfig },
        layers: image.layers.map((layer) => ({ ...layer.descriptor, mediaType: MediaType.OciLayer })),
      }),
    );
    await memory.putManifest(REPO, 'same-config', { bytes: oci, mediaType: MediaType.OciManifest });
    await records.checkCustomTag(ctx, desc, 'same-config');

    await pushImage(memory, REPO, randomImage(), 'other');
    const error = await rejects(records.checkCustomTag(ctx, desc, 'other'));
    expect(isStowageError(error, 'CUSTOM_TAG_MISMATCH')).toBe(true);
  });

  it('deleteCustomTag removes the tag and keeps the stage; absent is success', async () => {
    for (const wrap of [(r: Registry) => r, withoutTagDelete]) {
      const { memory, ctx } = setup(wrap);
      const { desc, digest } = await pushStage(memory);
      await records.addCustomTag(ctx, desc, 'main');
      await records.deleteCustomTag(ctx, 'main');
      await records.deleteCustomTag(ctx, 'never-there');
      expect(await tagsOf(memory)).toEqual([STAGE_TAG]);
      expect((await memory.headManifest(REPO, STAGE_TAG))?.digest).toBe(digest);
    }
  });

  it('register, get by tag or ID, list IDs, unregister (absent is success)', async () => {
    const { memory, ctx } = setup();
    const { desc } = await pushStage(memory);
    await records.registerCustomTag(ctx, desc, 'v1.2.3');
    await records.registerCustomTag(ctx, desc, 'main');
    const tag = 'custom-tag-meta-v1-2-3-cce060b5';
    expect(await readRecordLabels(ctx, tag)).toEqual({
      werf: 'myproj',
      'stage-id': STAGE_TAG,
      tag: 'v1.2.3',
    });
    expect(classifyTag(tag)).toEqual({ kind: 'custom-tag-meta', id: 'v1-2-3-cce060b5' });
    const expected = { stageId: STAGE_TAG, tag: 'v1.2.3' };
    expect(await records.getCustomTagMetadata(ctx, 'v1.2.3')).toEqual(expected);
    expect(await records.getCustomTagMetadata(ctx, 'v1-2-3-cce060b5')).toEqual(expected);
    expect(await records.getCustomTagMetadata(ctx, 'nothing')).toBeNull();
    expect((await records.listCustomTagMetadataIds(ctx)).sort()).toEqual(['main', 'v1-2-3-cce060b5']);
    await records.unregisterCustomTag(ctx, 'v1-2-3-cce060b5');
    await records.unregisterCustomTag(ctx, 'nothing');
    expect(await records.listCustomTagMetadataIds(ctx)).toEqual(['main']);
    expect(await records.getCustomTagMetadata(ctx, 'v1.2.3')).toBeNull();
  });
});

describe('managed images', () => {
  const names = ['backend', 'frontend/app', 'my image+x', '', 'Backend.v2', 'ы'];

  it('add, list unslugged, exists with and without the cache, remove (absent is success)', async () => {
    const { memory, ctx } = setup();
    for (const name of names) await records.addManagedImage(ctx, name);
    const tags = await tagsOf(memory);
    expect(tags).toContain('managed-image-frontend__slash__app');
    expect(tags).toContain('managed-image-__nameless__');
    expect(tags).toContain('managed-image-y-85e9f398');
    for (const tag of tags) expect(classifyTag(tag).kind).toBe('managed-image');
    expect((await records.listManagedImages(ctx)).sort()).toEqual(
      ['backend', 'frontend/app', 'my image+x', '', 'Backend.v2', 'y-85e9f398'].sort(),
    );
    expect(await records.managedImageExists(ctx, 'frontend/app')).toBe(true);
    expect(await records.managedImageExists(ctx, 'frontend/app', { cache: true })).toBe(true);
    expect(await records.managedImageExists(ctx, 'nope')).toBe(false);
    expect(await records.managedImageExists(ctx, 'nope', { cache: true })).toBe(false);

    await records.removeManagedImage(ctx, 'frontend/app');
    await records.removeManagedImage(ctx, 'never-added');
    expect(await records.managedImageExists(ctx, 'frontend/app', { cache: true })).toBe(false);
    expect(await records.managedImageExists(ctx, 'frontend/app')).toBe(false);
    expect(await records.listManagedImages(ctx)).not.toContain('frontend/app');
  });

  it('each record is a distinct image, so deleting one never takes another', async () => {
    const { memory, ctx } = setup(withoutTagDelete);
    await records.addManagedImage(ctx, 'a');
    await records.addManagedImage(ctx, 'b');
    await records.removeManagedImage(ctx, 'a');
    expect(await tagsOf(memory)).toEqual(['managed-image-b']);
  });
});

describe('image metadata by commit', () => {
  const stageId = STAGE_TAG;

  it('put, exists, list grouped by managed name and raw ID, junk skipped', async () => {
    const { memory, ctx } = setup();
    await records.putImageMetadata(ctx, { imageName: 'backend', commit: COMMIT, stageId });
    await records.putImageMetadata(ctx, { imageName: 'backend', commit: 'c2', stageId });
    await records.putImageMetadata(ctx, { imageName: 'frontend/app', commit: COMMIT, stageId: DIGEST });
    await records.putImageMetadata(ctx, { imageName: 'gone', commit: COMMIT, stageId });
    await pushRecord(ctx, 'meta-x_y', { werf: 'myproj' });
    await pushRecord(ctx, 'meta-a_b_c_d', { werf: 'myproj' });
    const tag = `meta-27dba8ed_${COMMIT}_${stageId}`;
    expect(await tagsOf(memory)).toContain(tag);
    expect(classifyTag(tag)).toEqual({ kind: 'meta', imageMetadataId: '27dba8ed', commit: COMMIT, stageId });
    expect(classifyTag('meta-x_y').kind).toBe('other');

    expect(await records.imageMetadataExists(ctx, { imageName: 'backend', commit: COMMIT, stageId })).toBe(
      true,
    );
    expect(
      await records.imageMetadataExists(
        ctx,
        { imageName: 'backend', commit: 'c3', stageId },
        { cache: true },
      ),
    ).toBe(false);

    const listing = await records.listImageMetadata(ctx, ['backend', 'frontend/app', 'unused']);
    expect(listing.managed).toEqual(
      new Map([
        ['backend', new Map([[stageId, [COMMIT, 'c2'].sort()]])],
        ['frontend/app', new Map([[DIGEST, [COMMIT]]])],
      ]),
    );
    const goneId = (await tagsOf(memory))
      .map(classifyTag)
      .filter((k): k is Extract<TagKind, { kind: 'meta' }> => k.kind === 'meta')
      .find((k) => !['27dba8ed', 'a5320b24'].includes(k.imageMetadataId))?.imageMetadataId as string;
    expect(listing.notManaged).toEqual(new Map([[goneId, new Map([[stageId, [COMMIT]]])]]));
  });

  it('remove by name, then by raw metadata ID; absent is success', async () => {
    const { memory, ctx } = setup();
    await records.putImageMetadata(ctx, { imageName: 'backend', commit: COMMIT, stageId });
    await records.putImageMetadata(ctx, { imageName: 'frontend', commit: COMMIT, stageId });
    await records.removeImageMetadata(ctx, { imageName: 'backend', commit: COMMIT, stageId });
    expect(await records.imageMetadataExists(ctx, { imageName: 'backend', commit: COMMIT, stageId })).toBe(
      false,
    );

    const { notManaged } = await records.listImageMetadata(ctx, []);
    const [frontendId] = [...notManaged.keys()] as [string];
    await records.removeImageMetadata(ctx, { imageName: frontendId, commit: COMMIT, stageId });
    expect(await tagsOf(memory)).toEqual([]);
    await records.removeImageMetadata(ctx, { imageName: 'never', commit: COMMIT, stageId });
    await records.removeImageMetadata(ctx, { imageName: 'not a/valid id', commit: COMMIT, stageId });
  });

  it('a DENIED push only warns, as werf on a 403', async () => {
    const { memory, ctx, warnings } = setup((r) =>
      faulty(r, {
        putManifest: async () => {
          throw new RegistryError('DENIED', 'denied');
        },
      }),
    );
    await records.putImageMetadata(ctx, { imageName: 'backend', commit: COMMIT, stageId });
    expect(warnings).toHaveLength(1);
    expect(await memory.listTags(REPO).catch(() => ({ items: [] }))).toEqual({ items: [] });
  });

  it('other push failures pass through', async () => {
    const { ctx } = setup((r) =>
      faulty(r, {
        putManifest: async () => {
          throw new RegistryError('UNAVAILABLE', 'down');
        },
      }),
    );
    const error = await rejects(records.putImageMetadata(ctx, { imageName: 'b', commit: COMMIT, stageId }));
    expect(isStowageError(error, 'UNAVAILABLE')).toBe(true);
  });
});

describe('import metadata', () => {
  const id = '3eb93ace11926614557246024803002ff4e7aea519969acaa7572ef30ed5fd35';
  const metadata = { importSourceId: id, sourceStageId: STAGE_TAG, checksum: 'sum1' };

  it('put, get, list IDs, remove (absent is success)', async () => {
    const { memory, ctx } = setup();
    expect(await records.getImportMetadata(ctx, id)).toBeNull();
    await records.putImportMetadata(ctx, metadata);
    const tag = `import-metadata-${id}`;
    expect(tag).toHaveLength(80);
    expect(classifyTag(tag)).toEqual({ kind: 'import-metadata', importSourceId: id });
    expect(await readRecordLabels(ctx, tag)).toEqual({
      werf: 'myproj',
      'import-source-id': id,
      'source-stage-id': STAGE_TAG,
      checksum: 'sum1',
    });
    expect(await records.getImportMetadata(ctx, id)).toEqual(metadata);
    expect(await records.listImportMetadataIds(ctx)).toEqual([id]);
    await records.removeImportMetadata(ctx, id);
    await records.removeImportMetadata(ctx, id);
    expect(await tagsOf(memory)).toEqual([]);
  });

  it('put skips an existing record unless forced', async () => {
    const { memory, ctx } = setup();
    await records.putImportMetadata(ctx, metadata);
    const first = (await memory.headManifest(REPO, `import-metadata-${id}`))?.digest;
    await records.putImportMetadata(ctx, { ...metadata, checksum: 'sum2' });
    expect((await memory.headManifest(REPO, `import-metadata-${id}`))?.digest).toBe(first);
    expect((await records.getImportMetadata(ctx, id))?.checksum).toBe('sum1');
    await records.putImportMetadata(ctx, { ...metadata, checksum: 'sum2' }, { force: true });
    expect((await records.getImportMetadata(ctx, id))?.checksum).toBe('sum2');
  });

  it('reads the label werf < v2.23 wrote (source-image-id)', async () => {
    const { ctx } = setup();
    await pushRecord(ctx, `import-metadata-${id}`, {
      werf: 'myproj',
      'import-source-id': id,
      'source-image-id': 'old-stage',
      checksum: 'c',
    });
    expect(await records.getImportMetadata(ctx, id)).toEqual({
      importSourceId: id,
      sourceStageId: 'old-stage',
      checksum: 'c',
    });
  });

  it('a DENIED push only warns', async () => {
    const { ctx, warnings } = setup((r) =>
      faulty(r, {
        putManifest: async () => {
          throw new RegistryError('DENIED', 'denied');
        },
      }),
    );
    await records.putImportMetadata(ctx, metadata);
    expect(warnings).toHaveLength(1);
  });
});

describe('client IDs', () => {
  it('post and list, skipping junk tags as werf does', async () => {
    const { memory, ctx } = setup();
    const clientId = '6f1c2a4e-1b7d-4c1e-9a51-0d7f3d1e2b9a';
    await records.postClientIdRecord(ctx, { clientId, timestampMillisec: 3400000000246 });
    await records.postClientIdRecord(ctx, { clientId: 'second', timestampMillisec: 3400000000300 });
    await pushRecord(ctx, 'client-id-nodash', { werf: 'myproj' });
    await pushRecord(ctx, 'client-id-abc-notanumber', { werf: 'myproj' });
    const tag = `client-id-${clientId}-3400000000246`;
    expect(await tagsOf(memory)).toContain(tag);
    expect(classifyTag(tag)).toEqual({ kind: 'client-id', clientId, timestampMs: 3400000000246 });
    expect(classifyTag('client-id-nodash').kind).toBe('other');
    const listed = await records.listClientIdRecords(ctx);
    expect(listed).toHaveLength(2);
    expect(listed).toContainEqual({ clientId, timestampMillisec: 3400000000246 });
    expect(listed).toContainEqual({ clientId: 'second', timestampMillisec: 3400000000300 });
  });
});

describe('sync-server and cleanup records', () => {
  it('sync-server: post, get the first tag with both labels', async () => {
    const { ctx } = setup();
    expect(await records.getSyncServerRecord(ctx)).toBeNull();
    await pushRecord(ctx, 'sync-server-a', { werf: 'myproj' });
    await records.postSyncServerRecord(ctx, {
      server: 'https://sync.example',
      timestampMillisec: 3400000000000,
    });
    expect(classifyTag('sync-server').kind).toBe('sync-server');
    expect(await readRecordLabels(ctx, 'sync-server')).toEqual({
      werf: 'myproj',
      syncserver: 'https://sync.example',
      syncservertimestamp: '3400000000000',
    });
    expect(await records.getSyncServerRecord(ctx)).toEqual({
      server: 'https://sync.example',
      timestampMillisec: 3400000000000,
    });
  });

  it('cleanup: post, get the first tag with the label', async () => {
    const { ctx } = setup();
    expect(await records.getCleanupRecord(ctx)).toBeNull();
    await pushRecord(ctx, 'cleanup-a', { werf: 'myproj', lastcleanuptimestamp: 'not a number' });
    await pushRecord(ctx, 'cleanup-b', { werf: 'myproj', lastcleanuptimestamp: '5' });
    expect(await records.getCleanupRecord(ctx)).toEqual({ timestampMillisec: 5 });
    await records.postCleanupRecord(ctx, { timestampMillisec: 1700000000000 });
    expect(classifyTag('cleanup').kind).toBe('cleanup');
    expect(await readRecordLabels(ctx, 'cleanup')).toEqual({
      werf: 'myproj',
      lastcleanuptimestamp: '1700000000000',
    });
    expect(await records.getCleanupRecord(ctx)).toEqual({ timestampMillisec: 1700000000000 });
  });
});

describe('listing reads honour the cache', () => {
  it('a batch of reads with cache lists the repository once; without, once each', async () => {
    const { ctx } = setup();
    await records.addManagedImage(ctx, 'backend');
    await records.putImageMetadata(ctx, { imageName: 'backend', commit: COMMIT, stageId: STAGE_TAG });
    const before = ctx.listings;
    const cache = { cache: true };
    await records.listManagedImages(ctx, cache);
    await records.listImageMetadata(ctx, ['backend'], cache);
    await records.listImportMetadataIds(ctx, cache);
    await records.listCustomTagMetadataIds(ctx, cache);
    await records.listClientIdRecords(ctx, cache);
    await records.managedImageExists(ctx, 'backend', cache);
    await records.getSyncServerRecord(ctx, cache);
    await records.getCleanupRecord(ctx, cache);
    expect(ctx.listings - before).toBe(1);
    await records.listManagedImages(ctx);
    await records.listManagedImages(ctx);
    expect(ctx.listings - before).toBe(3);
  });

  it('writes through the storage keep the cached listing current', async () => {
    const { ctx } = setup();
    await ctx.tags();
    await records.addManagedImage(ctx, 'backend');
    expect(await records.listManagedImages(ctx, { cache: true })).toEqual(['backend']);
    await records.removeManagedImage(ctx, 'backend');
    expect(await records.listManagedImages(ctx, { cache: true })).toEqual([]);
  });
});

describe('every tag written is classified as the intended kind', () => {
  it('stage records, custom tags and fixed records', async () => {
    const { memory, ctx } = setup();
    const { desc } = await pushStage(memory);
    await records.rejectStage(ctx, STAGE);
    await records.addCustomTag(ctx, desc, 'release-2024-01-01');
    await records.registerCustomTag(ctx, desc, 'release-2024-01-01');
    await records.addManagedImage(ctx, 'frontend/app');
    await records.putImageMetadata(ctx, { imageName: 'frontend/app', commit: COMMIT, stageId: STAGE_TAG });
    await records.putImportMetadata(ctx, {
      importSourceId: 'a'.repeat(64),
      sourceStageId: STAGE_TAG,
      checksum: '',
    });
    await records.postClientIdRecord(ctx, { clientId: 'c-1', timestampMillisec: 2 });
    await records.postSyncServerRecord(ctx, { server: 's', timestampMillisec: 3 });
    await records.postCleanupRecord(ctx, { timestampMillisec: 4 });
    const kinds = Object.fromEntries((await tagsOf(memory)).map((tag) => [tag, classifyTag(tag).kind]));
    expect(kinds).toEqual({
      [STAGE_TAG]: 'stage',
      [`${STAGE_TAG}-rejected`]: 'rejected',
      'release-2024-01-01': 'other',
      'custom-tag-meta-release-2024-01-01': 'custom-tag-meta',
      'managed-image-frontend__slash__app': 'managed-image',
      [`meta-a5320b24_${COMMIT}_${STAGE_TAG}`]: 'meta',
      [`import-metadata-${'a'.repeat(64)}`]: 'import-metadata',
      'client-id-c-1-2': 'client-id',
      'sync-server': 'sync-server',
      cleanup: 'cleanup',
    });
  });

  it('records have spec A.6 shape when read raw', async () => {
    const { memory, ctx } = setup();
    await records.addManagedImage(ctx, 'backend');
    const manifest = await memory.getManifest(REPO, 'managed-image-backend');
    expect(manifest.mediaType).toBe(MediaType.DockerManifest);
    const parsed = JSON.parse(new TextDecoder().decode(manifest.bytes));
    expect(Object.keys(parsed)).toEqual(['schemaVersion', 'mediaType', 'config', 'layers']);
    expect(parsed.layers).toHaveLength(1);
    expect(parsed.layers[0].digest).toBe(buildRecordImage({ labels: {} }).layer.digest);
    const config = await memory.getBlob(REPO, parsed.config.digest as Digest);
    const chunks: Buffer[] = [];
    for await (const chunk of config.stream) chunks.push(chunk as Buffer);
    const value = JSON.parse(Buffer.concat(chunks).toString('utf8'));
    expect(Object.keys(value)).toEqual(['architecture', 'created', 'history', 'os', 'rootfs', 'config']);
    expect(value.config).toEqual({ Labels: { werf: 'myproj' } });
  });
});
