import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isStowageError } from '@stowage/oci';
import { createRepoStagesStorage, type StageID } from '@stowage/stages-storage';
import { createMemoryRegistry, pushImage, randomImage } from '@stowage/testing';
import { afterEach, describe, expect, it } from 'vitest';
import { createHostLockManager } from './locks/host.js';
import type { AcquireOptions, LockHandle, LockManager } from './locks/types.js';
import { stageIdLockName, withNewStageID } from './stage-id.js';

const T = 1_700_000_000_123;
let digestSeq = 0;
/** A digest no other test used (the process remembers what it issued per digest). */
const freshDigest = (): string => (++digestSeq).toString(16).padStart(56, 'a');

/**
 * A storage whose stage listing is an array the test controls: `initial` are stages of
 * `digest`; `push` adds the stages it is given. `listed` counts the listings.
 */
function fakeStorage(initial: number[] = [], address = 'registry.example.com/group/project', digest = '') {
  const stages: StageID[] = initial.map((creationTs) => ({ digest, creationTs, isMultiplatform: false }));
  const listed: string[] = [];
  return {
    address,
    stages,
    listed,
    async listStageIDs(): Promise<StageID[]> {
      listed.push('all');
      return [...stages];
    },
    push: async (stage: StageID) => {
      stages.push(stage);
      return stage.creationTs;
    },
  };
}

/** Records what was locked around what. */
function recordingLocks(events: string[]): LockManager {
  return {
    description: 'test',
    async acquire(name: string, options?: AcquireOptions): Promise<LockHandle> {
      events.push(`acquire ${name} shared=${options?.shared ?? false}`);
      const release = async () => {
        events.push(`release ${name}`);
      };
      return { name, shared: false, release, [Symbol.asyncDispose]: release };
    },
    async close() {},
  };
}

const homes: string[] = [];
afterEach(async () => {
  for (const home of homes.splice(0)) await rm(home, { recursive: true, force: true });
});

describe('withNewStageID', () => {
  it('uses now when the digest has no stages, and gives 13 digits', async () => {
    const storage = fakeStorage();
    const digest = freshDigest();
    const stage = await withNewStageID({ storage, digest, clock: { now: () => T } }, async (s) => s);
    expect(stage).toEqual({ digest, creationTs: T, isMultiplatform: false });
    expect(String(stage.creationTs)).toHaveLength(13);
    expect(storage.listed).toEqual(['all']);
  });

  it('in one millisecond, one process never issues a creationTs twice (sequential and concurrent)', async () => {
    const storage = fakeStorage();
    const digest = freshDigest();
    const clock = { now: () => T };
    const sequential: number[] = [];
    for (let i = 0; i < 3; i++)
      sequential.push(await withNewStageID({ storage, digest, clock }, storage.push));
    expect(sequential).toEqual([T, T + 1, T + 2]);
    // concurrent calls list the same state, and still differ
    const concurrent = await Promise.all(
      Array.from({ length: 5 }, () =>
        withNewStageID({ storage: fakeStorage(), digest, clock }, async (s) => s.creationTs),
      ),
    );
    expect(new Set(concurrent).size).toBe(5);
    expect(Math.min(...concurrent)).toBe(T + 3);
  });

  it('goes past the newest stage of the digest in the storage, even one made "later" by another clock', async () => {
    const digest = freshDigest();
    const storage = fakeStorage([T - 5, T + 40, T + 7], undefined, digest);
    expect(await withNewStageID({ storage, digest, clock: { now: () => T } }, storage.push)).toBe(T + 41);
    // a later clock wins over the listing
    expect(await withNewStageID({ storage, digest, clock: { now: () => T + 1000 } }, storage.push)).toBe(
      T + 1000,
    );
  });

  it('ignores listed stages outside the 13-digit range (a multiplatform 0, a junk 14-digit tag)', async () => {
    const digest = freshDigest();
    const storage = fakeStorage([0, 99_999_999_999_999], undefined, digest);
    expect(await withNewStageID({ storage, digest, clock: { now: () => T } }, storage.push)).toBe(T);
  });

  it('keeps the per-digest memory per storage address and digest', async () => {
    const digest = freshDigest();
    const other = freshDigest();
    const clock = { now: () => T };
    expect(await withNewStageID({ storage: fakeStorage(), digest, clock }, async (s) => s.creationTs)).toBe(
      T,
    );
    expect(
      await withNewStageID({ storage: fakeStorage(), digest: other, clock }, async (s) => s.creationTs),
    ).toBe(T);
    expect(
      await withNewStageID(
        { storage: fakeStorage([], 'elsewhere/repo'), digest, clock },
        async (s) => s.creationTs,
      ),
    ).toBe(T);
    expect(await withNewStageID({ storage: fakeStorage(), digest, clock }, async (s) => s.creationTs)).toBe(
      T + 1,
    );
  });

  it('with locks: takes the exclusive stage-id lock, lists and pushes inside it, releases after the push settles', async () => {
    const events: string[] = [];
    const digest = freshDigest();
    const storage = fakeStorage();
    const listing = storage.listStageIDs.bind(storage);
    storage.listStageIDs = async () => {
      events.push('list');
      return await listing();
    };
    const failure = new Error('push failed');
    await expect(
      withNewStageID(
        { storage, digest, clock: { now: () => T }, locks: recordingLocks(events) },
        async () => {
          events.push('push');
          throw failure;
        },
      ),
    ).rejects.toBe(failure);
    const name = stageIdLockName(storage.address, digest);
    expect(name).toBe(`stage-id.registry.example.com/group/project.${digest}`);
    expect(events).toEqual([`acquire ${name} shared=false`, 'list', 'push', `release ${name}`]);
  });

  it('with host locks, concurrent calls in one process serialize on the lock file', async () => {
    const home = await mkdtemp(join(tmpdir(), 'stowage-stage-id-'));
    homes.push(home);
    const locks = createHostLockManager({ home, pollMs: 1, maxPollMs: 5 });
    const digest = freshDigest();
    const storage = fakeStorage();
    let inside = 0;
    let most = 0;
    const results = await Promise.all(
      Array.from({ length: 4 }, () =>
        withNewStageID({ storage, digest, clock: { now: () => T }, locks }, async (stage) => {
          inside++;
          most = Math.max(most, inside);
          await new Promise((resolve) => setImmediate(resolve));
          inside--;
          return await storage.push(stage);
        }),
      ),
    );
    expect(most).toBe(1);
    expect([...results].sort()).toEqual([T, T + 1, T + 2, T + 3]);
    await locks.close();
  });

  it('refuses a clock outside 2001–2286 and a malformed digest with OPTIONS_INVALID, before pushing', async () => {
    const storage = fakeStorage();
    let pushed = false;
    const push = async () => {
      pushed = true;
    };
    for (const now of [999_999_999_999, 10_000_000_000_000, Number.NaN]) {
      const error = await withNewStageID(
        { storage, digest: freshDigest(), clock: { now: () => now } },
        push,
      ).catch((e: unknown) => e);
      expect(isStowageError(error, 'OPTIONS_INVALID')).toBe(true);
    }
    for (const digest of ['', 'ABC', `${'a'.repeat(56)}-1`, 'a'.repeat(55)]) {
      const error = await withNewStageID({ storage, digest, clock: { now: () => T } }, push).catch(
        (e: unknown) => e,
      );
      expect(isStowageError(error, 'OPTIONS_INVALID')).toBe(true);
    }
    // the range ends at 9999999999999: a stage there leaves nothing
    const fullDigest = freshDigest();
    const full = fakeStorage([9_999_999_999_999], undefined, fullDigest);
    const error = await withNewStageID(
      { storage: full, digest: fullDigest, clock: { now: () => T } },
      push,
    ).catch((e: unknown) => e);
    expect(isStowageError(error, 'OPTIONS_INVALID')).toBe(true);
    expect(pushed).toBe(false);
  });

  it('never reuses the timestamp of a rejected stage (it would inherit the rejected record)', async () => {
    const registry = createMemoryRegistry();
    const storage = createRepoStagesStorage({
      registry,
      address: 'registry.example.com/werf/rejected',
      project: 'p',
    });
    const digest = freshDigest();
    await pushImage(registry, 'werf/rejected', randomImage({ layers: 1, layerSize: 16 }), `${digest}-${T}`);
    await storage.rejectStage({ digest, creationTs: T });
    expect(await storage.listStageIDsByDigest(digest)).toEqual([]);
    const made = await withNewStageID(
      { storage, digest, clock: { now: () => T } },
      async (s) => s.creationTs,
    );
    expect(made).toBe(T + 1);
  });

  it('an aborted signal stops before anything is listed', async () => {
    const storage = fakeStorage();
    const controller = new AbortController();
    controller.abort(new Error('stop'));
    await expect(
      withNewStageID({ storage, digest: freshDigest(), signal: controller.signal }, async (s) => s),
    ).rejects.toThrow('stop');
    expect(storage.listed).toEqual([]);
  });
});
