import { isStowageError, type Registry, RegistryError } from '@stowage/oci';
import { createMemoryRegistry, pushImage, randomImage } from '@stowage/testing';
import { describe, expect, it } from 'vitest';
import { faulty, withoutTagDelete } from '../test/faulty-registry.js';
import { RepoContext } from './context.js';
import { RETIRED_TAG_LABEL, removeImage } from './delete.js';
import { buildRecordImage, pushRecord, readRecordLabels } from './record-image.js';

const REPO = 'group/project';
const ADDRESS = 'registry.example.com/group/project';
const STAGE = `${'7d391a82ee3f0e574361c594fe737dc6db627be9667a470ab7581da7'}-1700000000123`;
const OTHER_STAGE = `${'6f093dd8c05f50597704d1fdde154733f47835782a027626fdccab01'}-1700000000124`;

function context(registry: Registry) {
  return new RepoContext({ registry, repository: REPO, address: ADDRESS, project: 'myproj' });
}

async function setup() {
  const memory = createMemoryRegistry();
  const image = randomImage({ format: 'docker' });
  const digest = await pushImage(memory, REPO, image, STAGE);
  return { memory, image, digest };
}

async function tagsOf(registry: Registry): Promise<string[]> {
  return [...(await registry.listTags(REPO)).items];
}

describe('removeImage on a store that deletes tags', () => {
  it('deletes a record: the tag, then the manifest', async () => {
    const memory = createMemoryRegistry();
    const ctx = context(memory);
    const digest = await pushRecord(ctx, 'managed-image-backend', { werf: 'myproj' });
    await removeImage(ctx, { tag: 'managed-image-backend', what: 'managed-image record' });
    expect(await memory.headManifest(REPO, 'managed-image-backend')).toBeUndefined();
    expect(await memory.headManifest(REPO, digest)).toBeUndefined();
  });

  it('deletes a stage manifest nobody else needs', async () => {
    const { memory, digest } = await setup();
    await removeImage(context(memory), { tag: STAGE, digest, what: 'stage' });
    expect(await memory.headManifest(REPO, digest)).toBeUndefined();
    expect(await tagsOf(memory)).toEqual([]);
  });

  it('never deletes a digest a custom tag still needs', async () => {
    const { memory, image, digest } = await setup();
    await pushImage(memory, REPO, image, 'v1.2.3');
    await removeImage(context(memory), { tag: STAGE, what: 'stage' });
    expect(await tagsOf(memory)).toEqual(['v1.2.3']);
    expect((await memory.headManifest(REPO, 'v1.2.3'))?.digest).toBe(digest);
  });

  it('deletes the stage when the custom tags point elsewhere', async () => {
    const { memory, digest } = await setup();
    await pushImage(memory, REPO, randomImage(), 'latest');
    await removeImage(context(memory), { tag: STAGE, what: 'stage' });
    expect(await memory.headManifest(REPO, digest)).toBeUndefined();
    expect(await tagsOf(memory)).toEqual(['latest']);
  });

  it('keepManifest removes only the tag', async () => {
    const { memory, image, digest } = await setup();
    await pushImage(memory, REPO, image, 'main');
    await removeImage(context(memory), { tag: 'main', keepManifest: true, what: 'custom tag' });
    expect(await tagsOf(memory)).toEqual([STAGE]);
    expect((await memory.headManifest(REPO, STAGE))?.digest).toBe(digest);
  });

  it('asks the cached listing for custom tags: a batch of deletes lists once', async () => {
    const memory = createMemoryRegistry();
    await pushImage(memory, REPO, randomImage(), STAGE);
    await pushImage(memory, REPO, randomImage(), OTHER_STAGE);
    const ctx = context(memory);
    await removeImage(ctx, { tag: STAGE, what: 'stage' });
    await removeImage(ctx, { tag: OTHER_STAGE, what: 'stage' });
    expect(ctx.listings).toBe(1);
    expect(ctx.cached()?.all()).toEqual([]);
  });
});

describe('removeImage in a batch', () => {
  const stageTag = (i: number) => `${'ab'.repeat(28)}-${1700000000000 + i}`;

  it('HEADs each user tag once for a batch of stage deletes, not once per stage', async () => {
    const memory = createMemoryRegistry();
    for (let i = 0; i < 5; i++) await pushImage(memory, REPO, randomImage({ seed: i }), stageTag(i));
    for (const user of ['latest', 'main', 'v1']) await pushImage(memory, REPO, randomImage(), user);
    const heads: string[] = [];
    const counting = faulty(memory, {
      headManifest: async (repository, reference, options) => {
        heads.push(reference);
        return await memory.headManifest(repository, reference, options);
      },
    });
    const ctx = context(counting);
    for (let i = 0; i < 5; i++) await removeImage(ctx, { tag: stageTag(i), what: 'stage' });
    // one HEAD per stage (its digest) and one per user tag for the whole batch
    expect(heads.filter((r) => ['latest', 'main', 'v1'].includes(r)).sort()).toEqual([
      'latest',
      'main',
      'v1',
    ]);
    expect(await tagsOf(memory)).toEqual(['latest', 'main', 'v1']);
  });

  it('a user tag written through the storage after the HEADs is asked again', async () => {
    const memory = createMemoryRegistry();
    const kept = randomImage({ seed: 1 });
    await pushImage(memory, REPO, kept, stageTag(1));
    await pushImage(memory, REPO, randomImage({ seed: 2 }), stageTag(2));
    await pushImage(memory, REPO, randomImage({ seed: 3 }), 'main');
    const ctx = context(memory);
    await removeImage(ctx, { tag: stageTag(2), what: 'stage' }); // 'main' HEADed: elsewhere
    // 'main' moves to the first stage's manifest, and the storage hears of it
    const manifest = await memory.getManifest(REPO, stageTag(1));
    await memory.putManifest(REPO, 'main', { bytes: manifest.bytes, mediaType: manifest.mediaType });
    ctx.noteTag('main', true);
    await removeImage(ctx, { tag: stageTag(1), what: 'stage' });
    expect((await memory.headManifest(REPO, 'main'))?.digest).toBe(kept.manifest.digest);
  });
});

describe('removeImage on a store that cannot delete tags (docker-registry 2.8)', () => {
  it('deletes a stage nobody else needs by its manifest', async () => {
    const { memory, digest } = await setup();
    await removeImage(context(withoutTagDelete(memory)), { tag: STAGE, what: 'stage' });
    expect(await memory.headManifest(REPO, digest)).toBeUndefined();
    expect(await tagsOf(memory)).toEqual([]);
  });

  it('retires a stage tag whose digest a custom tag needs, keeping the manifest', async () => {
    const { memory, image, digest } = await setup();
    await pushImage(memory, REPO, image, 'v1.2.3');
    const ctx = context(withoutTagDelete(memory));
    await removeImage(ctx, { tag: STAGE, what: 'stage' });
    expect(await tagsOf(memory)).toEqual(['v1.2.3']);
    expect((await memory.headManifest(REPO, 'v1.2.3'))?.digest).toBe(digest);
    expect(ctx.cached()?.has(STAGE)).toBe(false);
  });

  it('keepManifest retires the tag through a throwaway manifest that is then deleted', async () => {
    const { memory, image, digest } = await setup();
    await pushImage(memory, REPO, image, 'main');
    const deleted: string[] = [];
    const proxy = withoutTagDelete(memory);
    const spying = faulty(proxy, {
      capabilities: proxy.capabilities,
      deleteTag: proxy.deleteTag,
      deleteManifest: async (repository, target, options) => {
        deleted.push(target);
        await memory.deleteManifest(repository, target, options);
      },
    });
    await removeImage(context(spying), { tag: 'main', keepManifest: true, what: 'custom tag' });
    expect(await tagsOf(memory)).toEqual([STAGE]);
    expect((await memory.headManifest(REPO, STAGE))?.digest).toBe(digest);
    expect(deleted).toHaveLength(1);
    expect(deleted[0]).not.toBe(digest);
    expect(await memory.headManifest(REPO, deleted[0] as string)).toBeUndefined();
  });

  it('the throwaway is a record image naming the tag it retires', async () => {
    const { memory, image } = await setup();
    await pushImage(memory, REPO, image, 'main');
    let seen: Record<string, string> | null = null;
    const proxy = withoutTagDelete(memory);
    const ctx = context(
      faulty(proxy, {
        capabilities: proxy.capabilities,
        deleteTag: proxy.deleteTag,
        deleteManifest: async (repository, target, options) => {
          seen = await readRecordLabels(ctx, 'main');
          await memory.deleteManifest(repository, target, options);
        },
      }),
    );
    await removeImage(ctx, { tag: 'main', keepManifest: true, what: 'custom tag' });
    expect(seen).toEqual({ werf: 'myproj', [RETIRED_TAG_LABEL]: 'main' });
  });

  it('falls back to retiring when a store that claims tag deletes refuses them', async () => {
    const { memory, image, digest } = await setup();
    await pushImage(memory, REPO, image, 'main');
    const lying = faulty(memory, {
      deleteTag: async () => {
        throw new RegistryError('UNSUPPORTED', 'no');
      },
    });
    await removeImage(context(lying), { tag: 'main', keepManifest: true, what: 'custom tag' });
    expect(await tagsOf(memory)).toEqual([STAGE]);
    expect((await memory.headManifest(REPO, STAGE))?.digest).toBe(digest);
  });
});

describe('removeImage: records that share one manifest (written without a precise push time)', () => {
  async function pushShared(registry: Registry, tags: readonly string[]) {
    const shared = buildRecordImage({
      labels: { werf: 'myproj' },
      created: new Date('2024-01-01T00:00:00Z'),
    });
    for (const blob of [shared.layer, shared.config]) {
      await registry.putBlob(REPO, blob.bytes, { digest: blob.digest });
    }
    for (const tag of tags) {
      await registry.putManifest(REPO, tag, {
        bytes: shared.manifest.bytes,
        mediaType: shared.manifest.mediaType,
      });
    }
    return shared.manifest.digest;
  }

  for (const [name, wrap] of [
    ['with tag deletes', (r: Registry) => r],
    ['without tag deletes', withoutTagDelete],
  ] as const) {
    it(`removing one keeps the others (${name})`, async () => {
      const memory = createMemoryRegistry();
      const digest = await pushShared(memory, [
        'managed-image-first',
        'managed-image-second',
        `${STAGE}-rejected`,
      ]);
      await removeImage(context(wrap(memory)), { tag: 'managed-image-first', what: 'managed-image record' });
      expect(await tagsOf(memory)).toEqual([`${STAGE}-rejected`, 'managed-image-second']);
      expect((await memory.headManifest(REPO, 'managed-image-second'))?.digest).toBe(digest);
      await removeImage(context(wrap(memory)), { tag: 'managed-image-second', what: 'managed-image record' });
      await removeImage(context(wrap(memory)), { tag: `${STAGE}-rejected`, what: 'rejected record' });
      expect(await tagsOf(memory)).toEqual([]);
      expect(await memory.headManifest(REPO, digest)).toBeUndefined();
    });
  }

  it('a record with a precise push time is deleted without asking about other tags', async () => {
    const memory = createMemoryRegistry();
    const heads: string[] = [];
    const counting = faulty(memory, {
      headManifest: async (repository, reference, options) => {
        heads.push(reference);
        return await memory.headManifest(repository, reference, options);
      },
    });
    const ctx = context(counting);
    for (const name of ['a', 'b', 'c']) await pushRecord(ctx, `managed-image-${name}`, { werf: 'myproj' });
    await removeImage(ctx, { tag: 'managed-image-a', what: 'managed-image record' });
    expect(heads).toEqual(['managed-image-a']);
    expect(await tagsOf(memory)).toEqual(['managed-image-b', 'managed-image-c']);
  });
});

describe('removeImage: not found is success', () => {
  it('an absent tag, an absent repository, a digest already gone', async () => {
    const memory = createMemoryRegistry();
    const ctx = context(memory);
    await removeImage(ctx, { tag: 'managed-image-x', what: 'managed-image record' });
    const { memory: other, digest } = await setup();
    await other.deleteManifest(REPO, digest);
    await removeImage(context(other), { tag: STAGE, digest, what: 'stage' });
    await removeImage(context(withoutTagDelete(other)), { tag: STAGE, digest, what: 'stage' });
  });

  it('a tag that vanishes between the HEAD and the delete', async () => {
    const { memory, digest } = await setup();
    const racing = faulty(memory, {
      deleteTag: async (repository, tag, options) => {
        await memory.deleteManifest(repository, digest, options);
        await memory.deleteTag(repository, tag, options);
      },
    });
    await removeImage(context(racing), { tag: STAGE, what: 'stage' });
    expect(await tagsOf(memory)).toEqual([]);
  });
});

describe('removeImage: refusals', () => {
  const denied = async () => {
    throw new RegistryError('DENIED', 'requested access to the resource is denied');
  };

  it('DELETE_REFUSED names the registry and the record, with the cause', async () => {
    const memory = createMemoryRegistry();
    const ctx = context(faulty(memory, { deleteTag: denied, deleteManifest: denied }));
    await pushRecord(ctx, 'managed-image-backend', { werf: 'myproj' });
    const error = await removeImage(ctx, { tag: 'managed-image-backend', what: 'managed-image record' }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(isStowageError(error, 'DELETE_REFUSED')).toBe(true);
    const message = (error as Error).message;
    expect(message).toContain(ADDRESS);
    expect(message).toContain('managed-image record managed-image-backend');
    expect(isStowageError((error as Error).cause, 'DENIED')).toBe(true);
    expect(ctx.cached()).toBeUndefined();
    expect((await memory.listTags(REPO)).items).toEqual(['managed-image-backend']);
  });

  it('a refused tag delete is only noted when the manifest goes anyway (werf)', async () => {
    const { memory, digest } = await setup();
    await removeImage(context(faulty(memory, { deleteTag: denied })), { tag: STAGE, what: 'stage' });
    expect(await memory.headManifest(REPO, digest)).toBeUndefined();
    expect(await tagsOf(memory)).toEqual([]);
  });

  it('a store that deletes neither tags nor manifests refuses before moving the tag', async () => {
    const { memory, image, digest } = await setup();
    await pushImage(memory, REPO, image, 'main');
    const none = faulty(memory, {
      capabilities: async () => ({
        ...(await memory.capabilities()),
        deleteTag: false,
        deleteManifest: false,
      }),
    });
    const error = await removeImage(context(none), {
      tag: 'main',
      keepManifest: true,
      what: 'custom tag',
    }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(isStowageError(error, 'DELETE_REFUSED')).toBe(true);
    expect((error as Error).message).toContain('custom tag main');
    expect((await memory.headManifest(REPO, 'main'))?.digest).toBe(digest);
  });

  it('other errors pass through unchanged', async () => {
    const { memory } = await setup();
    const down = faulty(memory, {
      deleteTag: async () => {
        throw new RegistryError('UNAVAILABLE', 'down');
      },
    });
    const error = await removeImage(context(down), { tag: STAGE, what: 'stage' }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(isStowageError(error, 'UNAVAILABLE')).toBe(true);
  });
});
