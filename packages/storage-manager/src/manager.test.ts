import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createImageStore, type ImageStore } from '@stowage/image-store';
import { type Clock, isStowageError, type Registry, RegistryError } from '@stowage/oci';
import { createRepoStagesStorage, type StageDesc, type StagesStorage } from '@stowage/stages-storage';
import { sha3_224Hash } from '@stowage/tags';
import { createMemoryRegistry, type MemoryRegistry, pushImage, randomImage } from '@stowage/testing';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { StorageManagerError } from './errors.js';
import { createHostLockManager, hostLockPath, type LockHandle, type LockManager } from './locks/index.js';
import { createStorageManager, type StorageManager } from './manager.js';
import type { StorageManagerOptions } from './options.js';

const PROJECT = 'myproj';
const digestOf = (name: string): string => sha3_224Hash(name);
const D1 = digestOf('stage one');
const D2 = digestOf('stage two');
const S1 = { digest: D1, creationTs: 1_700_000_000_001 };
const S1b = { digest: D1, creationTs: 1_700_000_000_002 };
const S2 = { digest: D2, creationTs: 1_700_000_000_003 };
const tagOf = (s: { digest: string; creationTs: number }) => `${s.digest}-${s.creationTs}`;

/** A fake clock: sleeps return at once and are recorded. */
function fakeClock(start = 1_700_000_100_000): Clock & { sleeps: number[]; t: number } {
  const clock = {
    t: start,
    sleeps: [] as number[],
    now: () => clock.t,
    sleep: async (ms: number) => {
      clock.sleeps.push(ms);
      clock.t += ms;
    },
  };
  return clock;
}

/** A registry whose every call fails with UNAVAILABLE (a cache repo that is down). */
function downRegistry(inner: Registry): Registry {
  return new Proxy(inner, {
    get(target, prop, receiver) {
      const value = Reflect.get(target, prop, receiver);
      if (typeof value !== 'function' || prop === 'capabilities') return value;
      return async () => {
        throw new RegistryError('UNAVAILABLE', 'cache registry is down', { retryable: true });
      };
    },
  });
}

/** Counts putManifest calls (copies) of a registry. */
function countingRegistry(inner: Registry): { registry: Registry; puts: string[] } {
  const puts: string[] = [];
  const registry = new Proxy(inner, {
    get(target, prop, receiver) {
      const value = Reflect.get(target, prop, receiver);
      if (prop === 'putManifest')
        return (repository: string, reference: string, options: unknown) => {
          puts.push(reference);
          return (value as Registry['putManifest']).call(target, repository, reference, options as never);
        };
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
  return { registry, puts };
}

class RecordingLocks implements LockManager {
  readonly description = 'recording';
  readonly taken: { name: string; shared: boolean }[] = [];
  held = new Set<string>();
  async acquire(name: string, options?: { shared?: boolean }): Promise<LockHandle> {
    const shared = options?.shared === true;
    this.taken.push({ name, shared });
    const key = `${name}#${this.taken.length}`;
    this.held.add(key);
    const release = async () => {
      this.held.delete(key);
    };
    return { name, shared, release, [Symbol.asyncDispose]: release };
  }
  async close(): Promise<void> {}
}

interface Warn {
  fields: Record<string, unknown>;
  message: string | undefined;
}

let dir: string;
let home: string;
let primaryRegistry: MemoryRegistry;
let cacheRegistry: MemoryRegistry;
let localStore: ImageStore;
let primary: StagesStorage;
let warnings: Warn[];
const managers: StorageManager[] = [];

const logger = {
  warn: (fields: object, message?: string) => warnings.push({ fields: fields as never, message }),
};

function storage(registry: Registry, address: string): StagesStorage {
  return createRepoStagesStorage({ registry, address, project: PROJECT });
}

function manager(options: Partial<StorageManagerOptions> = {}): StorageManager {
  const m = createStorageManager({
    project: PROJECT,
    primary,
    home,
    local: { registry: localStore },
    logger,
    clock: fakeClock(),
    ...options,
  });
  managers.push(m);
  return m;
}

async function pushStage(
  registry: Registry,
  address: string,
  stage: { digest: string; creationTs: number },
  seed = 1,
) {
  const image = randomImage({ seed, format: 'docker' });
  const repository = address.slice(address.indexOf('/') + 1);
  await pushImage(registry, repository, image, tagOf(stage));
  return image;
}

async function tagsOf(registry: Registry, repository: string): Promise<readonly string[]> {
  try {
    return (await registry.listTags(repository)).items;
  } catch (error) {
    if (isStowageError(error, 'NAME_UNKNOWN')) return [];
    throw error;
  }
}

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'stowage-manager-'));
  home = join(dir, 'werf-home');
  primaryRegistry = createMemoryRegistry();
  cacheRegistry = createMemoryRegistry();
  localStore = await createImageStore({ root: join(dir, 'local') });
  primary = storage(primaryRegistry, 'registry.example.com/group/project');
  warnings = [];
});

afterEach(async () => {
  for (const m of managers.splice(0)) await m.close();
  await localStore.close?.();
  await rm(dir, { recursive: true, force: true });
});

describe('options', () => {
  it('names the key that is wrong', () => {
    const codeAndKey = (fn: () => unknown) => {
      try {
        fn();
      } catch (error) {
        return isStowageError(error, 'OPTIONS_INVALID') ? error.details.key : `other: ${String(error)}`;
      }
      return 'no error';
    };
    expect(codeAndKey(() => createStorageManager({ project: PROJECT, primary: {} as never }))).toBe(
      'primary',
    );
    expect(codeAndKey(() => createStorageManager({ project: 'other', primary }))).toBe('project');
    expect(codeAndKey(() => createStorageManager({ project: PROJECT, primary, parallelTasksLimit: 0 }))).toBe(
      'parallelTasksLimit',
    );
    expect(codeAndKey(() => createStorageManager({ project: PROJECT, primary, cache: [{} as never] }))).toBe(
      'cache[0]',
    );
    expect(
      codeAndKey(() => createStorageManager({ project: PROJECT, primary, unexpectedStateRetries: -1 })),
    ).toBe('unexpectedStateRetries');
    expect(
      codeAndKey(() => createStorageManager({ project: PROJECT, primary, manifestCache: 'yes' as never })),
    ).toBe('manifestCache');
  });

  it('has werf defaults: one worker, manifest cache on for a repo and off for :local', () => {
    const m = manager();
    expect(m.maxWorkers).toBe(1);
    expect(m.manifestCache?.directory).toBe(join(home, 'local_cache/manifests/5'));
    expect(m.lruImages.directory).toBe(join(home, 'local_cache/lru_images/1'));
    const local = createRepoStagesStorage({ registry: primaryRegistry, address: ':local', project: PROJECT });
    expect(manager({ primary: local }).manifestCache).toBeUndefined();
    expect(manager({ parallelTasksLimit: 8 }).maxWorkers).toBe(8);
    expect(manager({ manifestCache: false }).manifestCache).toBeUndefined();
  });
});

describe('stage descriptions', () => {
  it('lists every stage of the primary, with and without the cached listing, and fills the manifest cache', async () => {
    await pushStage(primaryRegistry, primary.address, S1, 1);
    await pushStage(primaryRegistry, primary.address, S2, 2);
    const m = manager();
    const descs = await m.listStageDescs();
    expect(descs.map((d) => d.stageID.creationTs).sort()).toEqual([S1.creationTs, S2.creationTs]);
    const cached = await readFile(m.manifestCache!.path(primary.address, primary.stageImageName(S1)), 'utf8');
    expect(JSON.parse(cached).Info.name).toBe(primary.stageImageName(S1));

    // A stage pushed behind the storage's back: the cached listing does not see it, a fresh one does.
    await pushStage(primaryRegistry, primary.address, S1b, 3);
    expect((await m.listStageDescs({ cache: true })).length).toBe(2);
    expect((await m.listStageDescs()).length).toBe(3);
  });

  it('answers from the manifest cache without asking the registry', async () => {
    await pushStage(primaryRegistry, primary.address, S1, 1);
    const m = manager();
    const [first] = await m.getStagesByDigest(D1);
    // The stage's manifest goes away; the description still comes from the local cache (as werf's does).
    await primaryRegistry.deleteManifest('group/project', first!.info.repoDigest.split('@')[1] as never);
    await pushStage(primaryRegistry, primary.address, S1, 1);
    const again = await m.getStagesByDigest(D1);
    expect(again).toEqual([first]);
  });

  it('getStagesByDigest with cache falls back to a fresh listing when the cached one finds none', async () => {
    const m = manager();
    expect(await m.getStagesByDigest(D1, { cache: true })).toEqual([]);
    await pushStage(primaryRegistry, primary.address, S1, 1);
    // cached listing (empty for D1) → fresh listing finds the new stage
    const found = await m.getStagesByDigest(D1, { cache: true });
    expect(found.map((d) => d.stageID)).toEqual([{ ...S1, isMultiplatform: false }]);
    // now cached and non-empty: a stage pushed behind the back is not seen with cache, seen without
    await pushStage(primaryRegistry, primary.address, S1b, 2);
    expect((await m.getStagesByDigest(D1, { cache: true })).length).toBe(1);
    expect((await m.getStagesByDigest(D1)).length).toBe(2);
  });

  it('selects the newest stage by default, or with the selector given', async () => {
    await pushStage(primaryRegistry, primary.address, S1, 1);
    await pushStage(primaryRegistry, primary.address, S1b, 2);
    const m = manager();
    const stages = await m.getStagesByDigest(D1);
    expect((await m.selectSuitableStage(stages))?.stageID.creationTs).toBe(S1b.creationTs);
    const oldest = (list: readonly StageDesc[]) =>
      [...list].sort((a, b) => a.stageID.creationTs - b.stageID.creationTs)[0];
    expect((await m.selectSuitableStage(stages, oldest))?.stageID.creationTs).toBe(S1.creationTs);
    expect(await m.selectSuitableStage([])).toBeNull();
  });
});

describe('fetchStage', () => {
  it('fetches from a cache repo and refills the one that missed', async () => {
    const missing = storage(cacheRegistry, 'cache.example.com/missing');
    const holding = storage(cacheRegistry, 'cache.example.com/holding');
    await pushStage(primaryRegistry, primary.address, S1, 1);
    await pushStage(cacheRegistry, holding.address, S1, 1);
    const m = manager({ cache: [missing, holding] });

    const result = await m.fetchStage(S1);
    expect(result.from).toBe('cache');
    expect(result.storage).toBe(holding);
    expect(result.desc?.info.name).toBe(primary.stageImageName(S1));
    expect(result.desc?.info.repository).toBe(primary.address);
    // the one that missed now has it
    expect(await tagsOf(cacheRegistry, 'missing')).toContain(tagOf(S1));
    expect(await missing.getStageDesc(S1)).not.toBeNull();
    // the image is in the local store, under the cache's name and the primary's
    expect(await holding.shouldFetchImage(S1, { local: { registry: localStore } })).toBe(false);
    expect(await primary.shouldFetchImage(S1, { local: { registry: localStore } })).toBe(false);
    // the primary name got an LRU record and a manifest cache entry
    expect(await m.lruImages.lastAccess(primary.stageImageName(S1))).not.toBeNull();
    expect(await m.manifestCache!.get(primary.address, primary.stageImageName(S1))).not.toBeNull();
    expect(warnings).toEqual([]);
    expect((await m.fetchStage(S1)).from).toBe('local');
  });

  it('a cache repo that is down only warns: the stage comes from the primary', async () => {
    const down = storage(downRegistry(cacheRegistry), 'cache.example.com/down');
    await pushStage(primaryRegistry, primary.address, S1, 1);
    const m = manager({ cache: [down] });
    const result = await m.fetchStage(S1);
    expect(result.from).toBe('primary');
    expect(await primary.shouldFetchImage(S1, { local: { registry: localStore } })).toBe(false);
    const messages = warnings.map((w) => w.message);
    expect(messages).toContain('unable to fetch the stage from a cache storage');
    expect(messages).toContain('unable to copy the stage into a cache storage');
    expect(await m.lruImages.lastAccess(primary.stageImageName(S1))).not.toBeNull();
  });

  it('a stage image already local is not fetched again', async () => {
    await pushStage(primaryRegistry, primary.address, S1, 1);
    const m = manager();
    expect((await m.fetchStage(S1)).from).toBe('primary');
    expect((await m.fetchStage(S1)).from).toBe('local');
  });

  it('a broken stage gets a rejected record and UNEXPECTED_STORAGE_STATE', async () => {
    const image = await pushStage(primaryRegistry, primary.address, S1, 1);
    await primaryRegistry.deleteBlob('group/project', image.config.descriptor.digest);
    const m = manager();
    const error = await m.fetchStage(S1).catch((e: unknown) => e);
    expect(isStowageError(error, 'UNEXPECTED_STORAGE_STATE')).toBe(true);
    expect((error as { retryable: boolean }).retryable).toBe(true);
    expect(await tagsOf(primaryRegistry, 'group/project')).toContain(`${tagOf(S1)}-rejected`);
    // rejected: no longer offered by digest
    expect(await m.getStagesByDigest(D1)).toEqual([]);
  });

  it('a vanished stage is UNEXPECTED_STORAGE_STATE too', async () => {
    const m = manager();
    const error = await m.fetchStage(S1).catch((e: unknown) => e);
    expect(isStowageError(error, 'UNEXPECTED_STORAGE_STATE')).toBe(true);
  });

  it('takes a shared lock on the stage image, held until close', async () => {
    await pushStage(primaryRegistry, primary.address, S1, 1);
    const locks = new RecordingLocks();
    const m = manager({ locks });
    await m.fetchStage(S1);
    const imageLocks = locks.taken.filter((l) => l.name.startsWith('image.'));
    expect(imageLocks).toEqual([{ name: `image.${primary.stageImageName(S1)}`, shared: true }]);
    const stillHeld = [...locks.held].filter((k) => k.startsWith('image.'));
    expect(stillHeld.length).toBe(1);
    await m.close();
    expect([...locks.held]).toEqual([]);
  });

  it("with werf's host locks, an exclusive taker of the stage image waits until close", async () => {
    await pushStage(primaryRegistry, primary.address, S1, 1);
    const locks = createHostLockManager({ home });
    const other = createHostLockManager({ home });
    try {
      const m = manager({ locks });
      await m.fetchStage(S1);
      const name = `image.${primary.stageImageName(S1)}`;
      await expect(readFile(hostLockPath(home, name))).resolves.toBeDefined();
      const refused = await other.acquire(name, { timeoutMs: 50 }).catch((e: unknown) => e);
      expect(isStowageError(refused, 'LOCK_TIMEOUT')).toBe(true);
      // a shared taker is not kept out
      await (await other.acquire(name, { shared: true, timeoutMs: 1000 })).release();
      await m.close();
      await (await other.acquire(name, { timeoutMs: 1000 })).release();
    } finally {
      await other.close();
      await locks.close();
    }
  });

  it('needs the local image store', async () => {
    const m = createStorageManager({ project: PROJECT, primary, home });
    const error = await m.fetchStage(S1).catch((e: unknown) => e);
    expect(isStowageError(error, 'OPTIONS_INVALID')).toBe(true);
  });
});

describe('copies', () => {
  it('copying into the final repo twice does the work once', async () => {
    await pushStage(primaryRegistry, primary.address, S1, 1);
    const counted = countingRegistry(createMemoryRegistry());
    const finalStorage = storage(counted.registry, 'final.example.com/project');
    let copyCalls = 0;
    const final = new Proxy(finalStorage, {
      get(target, prop) {
        const value = Reflect.get(target, prop, target);
        if (prop === 'copyFromStorage') copyCalls++;
        return typeof value === 'function' ? value.bind(target) : value;
      },
    });
    const m = manager({ final });
    await m.initCache();
    const first = await m.copyStageIntoFinalStorage(S1);
    const putsAfterFirst = counted.puts.length;
    expect(putsAfterFirst).toBeGreaterThan(0);
    expect(first.info.name).toBe(final.stageImageName(S1));
    const second = await m.copyStageIntoFinalStorage(S1);
    expect(counted.puts.length).toBe(putsAfterFirst);
    expect(copyCalls).toBe(1);
    expect(second).toEqual(first);
    // a new manager learns it from the final repo's listing
    await manager({ final }).copyStageIntoFinalStorage(S1);
    expect(counted.puts.length).toBe(putsAfterFirst);
    expect(copyCalls).toBe(1);
    expect((await m.listFinalStageDescs()).map((d) => d.stageID.creationTs)).toEqual([S1.creationTs]);
  });

  it('refuses in should-be-built mode', async () => {
    await pushStage(primaryRegistry, primary.address, S1, 1);
    const final = storage(createMemoryRegistry(), 'final.example.com/project');
    const m = manager({ final });
    const error = await m.copyStageIntoFinalStorage(S1, { shouldBeBuilt: true }).catch((e: unknown) => e);
    expect(isStowageError(error, 'NOT_IN_FINAL_REPO')).toBe(true);
    expect(await final.listStageIDs()).toEqual([]);
  });

  it('copies into cache storages, warning about the one that is down', async () => {
    await pushStage(primaryRegistry, primary.address, S1, 1);
    const good = storage(cacheRegistry, 'cache.example.com/good');
    const down = storage(downRegistry(createMemoryRegistry()), 'cache.example.com/down');
    const m = manager({ cache: [down, good] });
    await m.copyStageIntoCacheStorages(S1);
    expect(await good.getStageDesc(S1)).not.toBeNull();
    expect(warnings.map((w) => w.message)).toEqual(['unable to copy the stage into a cache storage']);
    expect(await m.lruImages.lastAccess(good.stageImageName(S1))).not.toBeNull();
  });

  it('copies a suitable stage found in a secondary storage into the primary', async () => {
    const secondary = storage(cacheRegistry, 'secondary.example.com/project');
    await pushStage(cacheRegistry, secondary.address, S2, 5);
    const m = manager({ secondary: [secondary] });
    const [found] = await m.getStagesByDigest(D2, { storage: secondary });
    expect(found).toBeDefined();
    const copied = await m.copySuitableByDigestStage(found!, { source: secondary });
    expect(copied?.info.name).toBe(primary.stageImageName(S2));
    expect(copied?.info.id).toBe(found!.info.id);
    expect(await primary.getStageDesc(S2)).not.toBeNull();
  });
});

describe('deletes', () => {
  it('deletes from the cache storages first (failures only warned), then the primary', async () => {
    await pushStage(primaryRegistry, primary.address, S1, 1);
    const cache = storage(cacheRegistry, 'cache.example.com/c');
    await pushStage(cacheRegistry, cache.address, S1, 1);
    const down = storage(downRegistry(createMemoryRegistry()), 'cache.example.com/down');
    const m = manager({ cache: [down, cache] });
    const descs = await m.listStageDescs();
    expect(warnings.map((w) => w.message)).toEqual([
      'unable to get the stage description from a cache storage',
    ]);
    warnings = [];
    const seen: [string, unknown][] = [];
    await m.forEachDeleteStage(descs, (desc, error) => {
      seen.push([desc.info.name, error]);
    });
    expect(seen).toEqual([[primary.stageImageName(S1), undefined]]);
    expect(await primary.listStageIDs()).toEqual([]);
    expect(await cache.listStageIDs()).toEqual([]);
    expect(warnings.map((w) => w.message)).toEqual(['unable to delete the stage from a cache storage']);
  });

  it('deletes final stages and forgets them in the final list cache', async () => {
    await pushStage(primaryRegistry, primary.address, S1, 1);
    const final = storage(createMemoryRegistry(), 'final.example.com/project');
    const m = manager({ final });
    const desc = await m.copyStageIntoFinalStorage(S1);
    const errors: unknown[] = [];
    await m.forEachDeleteFinalStage([desc], (_d, error) => {
      errors.push(error);
    });
    expect(errors).toEqual([undefined]);
    expect(await m.listFinalStageDescs()).toEqual([]);
  });

  it('stops at the first callback that throws', async () => {
    await pushStage(primaryRegistry, primary.address, S1, 1);
    await pushStage(primaryRegistry, primary.address, S2, 2);
    const m = manager();
    const descs = (await m.listStageDescs()).sort((a, b) => a.stageID.creationTs - b.stageID.creationTs);
    const visited: number[] = [];
    const error = await m
      .forEachDeleteStage(descs, (desc) => {
        visited.push(desc.stageID.creationTs);
        throw new Error('stop');
      })
      .catch((e: unknown) => e);
    expect((error as Error).message).toBe('stop');
    expect(visited).toEqual([S1.creationTs]);
  });
});

describe('records through the for-each helpers', () => {
  it('removes managed images and image metadata, reads and removes import metadata', async () => {
    const m = manager({ parallelTasksLimit: 3 });
    await primary.addManagedImage('backend');
    await primary.addManagedImage('frontend/app');
    const removed: [string, unknown][] = [];
    await m.forEachRemoveManagedImage(['backend', 'frontend/app'], (name, error) => {
      removed.push([name, error]);
    });
    expect(removed.sort()).toEqual([
      ['backend', undefined],
      ['frontend/app', undefined],
    ]);
    expect(await primary.listManagedImages()).toEqual([]);

    const commit = '0123456789abcdef0123456789abcdef01234567';
    await primary.putImageMetadata({ imageName: 'backend', commit, stageId: tagOf(S1) });
    const metaSeen: unknown[] = [];
    await m.forEachRemoveImageMetadata('backend', { [tagOf(S1)]: [commit] }, (task, error) => {
      metaSeen.push([task, error]);
    });
    expect(metaSeen).toEqual([[{ commit, stageId: tagOf(S1) }, undefined]]);
    expect(await primary.imageMetadataExists({ imageName: 'backend', commit, stageId: tagOf(S1) })).toBe(
      false,
    );

    const id = 'a'.repeat(64);
    await primary.putImportMetadata({ importSourceId: id, sourceStageId: tagOf(S1), checksum: 'c' });
    const got: unknown[] = [];
    await m.forEachGetImportMetadata([id, 'b'.repeat(64)], (key, metadata, error) => {
      got.push([key, metadata?.checksum ?? null, error]);
    });
    expect(got.sort()).toEqual([
      [id, 'c', undefined],
      ['b'.repeat(64), null, undefined],
    ]);
    await m.forEachRemoveImportMetadata([id], () => {});
    expect(await primary.getImportMetadata(id)).toBeNull();
  });

  it('reads custom tag metadata and deletes custom tags with their metadata', async () => {
    await pushStage(primaryRegistry, primary.address, S1, 1);
    const m = manager();
    const [desc] = await m.listStageDescs();
    await primary.addCustomTag(desc!, 'main');
    await primary.registerCustomTag(desc!, 'main');
    const ids = await primary.listCustomTagMetadataIds();
    expect(ids).toEqual(['main']);
    const metadata: unknown[] = [];
    await m.forEachGetCustomTagMetadata(ids, (id, md, error) => {
      metadata.push([id, md, error]);
    });
    expect(metadata).toEqual([['main', { stageId: tagOf(S1), tag: 'main' }, undefined]]);
    const deleted: unknown[] = [];
    await m.forEachDeleteCustomTag(ids, (id, error) => {
      deleted.push([id, error]);
    });
    expect(deleted).toEqual([['main', undefined]]);
    expect(await primary.listCustomTagMetadataIds()).toEqual([]);
    expect(await tagsOf(primaryRegistry, 'group/project')).not.toContain('main');
    // the stage itself stays
    expect(await primary.getStageDesc(S1)).not.toBeNull();
  });
});

describe('retryOnUnexpectedStorageState', () => {
  const unexpected = () =>
    new StorageManagerError('UNEXPECTED_STORAGE_STATE', 'unexpected stages storage state');

  it('retries a bounded number of times with backoff on the fake clock, then throws', async () => {
    const clock = fakeClock();
    const m = manager({ clock, unexpectedStateRetries: 3, unexpectedStateBackoffMs: 100 });
    let calls = 0;
    const error = await m
      .retryOnUnexpectedStorageState(async () => {
        calls++;
        throw unexpected();
      })
      .catch((e: unknown) => e);
    expect(isStowageError(error, 'UNEXPECTED_STORAGE_STATE')).toBe(true);
    expect(calls).toBe(4);
    expect(clock.sleeps.length).toBe(3);
    clock.sleeps.forEach((ms, i) => {
      expect(ms).toBeGreaterThanOrEqual(0);
      expect(ms).toBeLessThan(100 * 2 ** i);
    });
  });

  it('returns once an attempt succeeds, and never retries another error', async () => {
    const clock = fakeClock();
    const m = manager({ clock });
    let calls = 0;
    const value = await m.retryOnUnexpectedStorageState(async (attempt) => {
      calls++;
      if (attempt < 3) throw unexpected();
      return 'built';
    });
    expect(value).toBe('built');
    expect(calls).toBe(3);

    calls = 0;
    const other = await m
      .retryOnUnexpectedStorageState(async () => {
        calls++;
        throw new RegistryError('UNAVAILABLE', 'down', { retryable: true });
      })
      .catch((e: unknown) => e);
    expect(isStowageError(other, 'UNAVAILABLE')).toBe(true);
    expect(calls).toBe(1);
  });

  it('a stage found broken while fetching is rejected, and the retry builds instead', async () => {
    const image = await pushStage(primaryRegistry, primary.address, S1, 1);
    const m = manager({ clock: fakeClock() });
    // described once (so the manifest cache offers it), then its config blob goes
    expect(await m.getStagesByDigest(D1)).toHaveLength(1);
    await primaryRegistry.deleteBlob('group/project', image.config.descriptor.digest);
    const outcomes: string[] = [];
    const result = await m.retryOnUnexpectedStorageState(async () => {
      const [stage] = await m.getStagesByDigest(D1, { cache: true });
      if (!stage) {
        outcomes.push('build');
        return 'built';
      }
      outcomes.push('fetch');
      await m.fetchStage(stage.stageID);
      return 'fetched';
    });
    expect(result).toBe('built');
    expect(outcomes).toEqual(['fetch', 'build']);
  });
});

describe('stage IDs', () => {
  it('two stage IDs made in the same millisecond differ, and createStage holds the ID while pushing', async () => {
    const clock = fakeClock();
    const m = manager({ clock });
    const a = await m.generateStageID(D1);
    const b = await m.generateStageID(D1);
    expect(a.digest).toBe(D1);
    expect(String(a.creationTs)).toHaveLength(13);
    expect(b.creationTs).not.toBe(a.creationTs);
    const pushed = await m.createStage({
      digest: D2,
      push: async (stage) => {
        await pushStage(primaryRegistry, primary.address, stage, 9);
        return stage;
      },
    });
    expect(await primary.getStageDesc(pushed)).not.toBeNull();
  });
});

describe('imageNames', () => {
  it('names the final repo image when there is a final repo, else the description', async () => {
    await pushStage(primaryRegistry, primary.address, S1, 1);
    const [desc] = await manager().getStagesByDigest(D1);
    expect(manager().imageNames('backend', desc!)).toEqual({
      werfImageName: 'backend',
      name: primary.stageImageName(S1),
      repository: primary.address,
      tag: tagOf(S1),
    });
    const final = storage(createMemoryRegistry(), 'final.example.com:5000/project');
    expect(manager({ final }).imageNames('backend', desc!)).toEqual({
      werfImageName: 'backend',
      name: `final.example.com:5000/project:${tagOf(S1)}`,
      repository: 'final.example.com:5000/project',
      tag: tagOf(S1),
    });
  });
});

describe('getImageInfo', () => {
  it('looks in the local store first, then the registry', async () => {
    const remote = createMemoryRegistry();
    const image = randomImage({ seed: 3, format: 'docker' });
    await pushImage(remote, 'library/base', image, '1.0');
    const m = manager();
    const ref = 'registry.example.com/library/base:1.0';
    const fromRegistry = await m.getImageInfo(ref, {
      registry: { registry: remote, repository: 'library/base' },
    });
    expect(fromRegistry?.id).toBe(image.config.descriptor.digest);
    expect(fromRegistry?.name).toBe(ref);

    // once local, the registry is not needed
    await pushImage(localStore, 'registry.example.com/library/base', image, '1.0');
    const fromLocal = await m.getImageInfo(ref, {
      registry: { registry: downRegistry(remote), repository: 'x' },
    });
    expect(fromLocal?.id).toBe(image.config.descriptor.digest);
    expect(await m.getImageInfo('registry.example.com/none:1', { resolver: async () => null })).toBeNull();
  });
});
