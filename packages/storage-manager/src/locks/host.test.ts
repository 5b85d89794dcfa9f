import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Clock, isStowageError } from '@stowage/oci';
import { afterEach, describe, expect, it } from 'vitest';
import {
  createHostLockManager,
  createHostLockManagerWith,
  hostLockPath,
  loadFlockBinding,
  werfHome,
} from './host.js';
import type { LockManager } from './types.js';

/** A clock whose sleeps pass at once (after a turn of the event loop), moving `now` on. */
function fakeClock(start = 1_700_000_000_000): Clock & { slept: number[] } {
  let now = start;
  const slept: number[] = [];
  return {
    slept,
    now: () => now,
    sleep: (ms, signal) =>
      new Promise((resolve, reject) => {
        signal?.throwIfAborted();
        setImmediate(() => {
          if (signal?.aborted) return reject(signal.reason);
          slept.push(ms);
          now += ms;
          resolve();
        });
      }),
  };
}

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function setup(options: { clock?: Clock } = {}): Promise<{ home: string; locks: LockManager }> {
  const home = await mkdtemp(join(tmpdir(), 'stowage-host-locks-'));
  const locks = createHostLockManager({ home, pollMs: 5, maxPollMs: 40, ...options });
  cleanups.push(async () => {
    await locks.close();
    await rm(home, { recursive: true, force: true });
  });
  return { home, locks };
}

async function isBusy(locks: LockManager, name: string, shared = false): Promise<boolean> {
  try {
    const handle = await locks.acquire(name, { shared, timeoutMs: 0 });
    await handle.release();
    return false;
  } catch (error) {
    if (isStowageError(error, 'LOCK_TIMEOUT')) return true;
    throw error;
  }
}

describe('host locks', () => {
  it('lock files are werf’s: <home>/service/locks/<murmur3-32 hex of the name>', async () => {
    const { home, locks } = await setup();
    expect(hostLockPath(home, 'backend')).toBe(join(home, 'service', 'locks', '27dba8ed'));
    expect(hostLockPath(home, '')).toBe(join(home, 'service', 'locks', '0'));
    const handle = await locks.acquire('backend');
    expect(existsSync(join(home, 'service', 'locks', '27dba8ed'))).toBe(true);
    expect(locks.description).toBe(`host:${join(home, 'service', 'locks')}`);
    await handle.release();
  });

  it('makes the lock directory again when it was removed', async () => {
    const { home, locks } = await setup();
    await (await locks.acquire('n')).release();
    await rm(join(home, 'service'), { recursive: true });
    const handle = await locks.acquire('n');
    expect(existsSync(hostLockPath(home, 'n'))).toBe(true);
    await handle.release();
  });

  it('home defaults to $WERF_HOME, else ~/.werf', () => {
    const saved = process.env.WERF_HOME;
    try {
      process.env.WERF_HOME = '/somewhere/werf-home';
      expect(werfHome()).toBe('/somewhere/werf-home');
      delete process.env.WERF_HOME;
      expect(werfHome()).toMatch(/\/\.werf$/);
    } finally {
      if (saved === undefined) delete process.env.WERF_HOME;
      else process.env.WERF_HOME = saved;
    }
  });

  it('two exclusive handles of one name in one process exclude each other', async () => {
    const { locks } = await setup();
    const first = await locks.acquire('stage-id.repo.x');
    expect(await isBusy(locks, 'stage-id.repo.x')).toBe(true);
    expect(await isBusy(locks, 'stage-id.repo.x', true)).toBe(true);
    expect(await isBusy(locks, 'another')).toBe(false);
    await first.release();
    expect(await isBusy(locks, 'stage-id.repo.x')).toBe(false);
  });

  it('shared handles coexist and keep out an exclusive one until the last is released', async () => {
    const { locks } = await setup();
    const a = await locks.acquire('image', { shared: true });
    const b = await locks.acquire('image', { shared: true });
    expect(a.shared).toBe(true);
    expect(await isBusy(locks, 'image')).toBe(true);
    await a.release();
    expect(await isBusy(locks, 'image')).toBe(true);
    await b.release();
    expect(await isBusy(locks, 'image')).toBe(false);
  });

  it('a waiting acquire gets the lock once it is released, polling with a growing backoff', async () => {
    const clock = fakeClock();
    const { locks } = await setup({ clock });
    const first = await locks.acquire('n');
    let got = false;
    const waiting = locks.acquire('n').then((handle) => {
      got = true;
      return handle;
    });
    while (clock.slept.length < 6) await new Promise((resolve) => setImmediate(resolve));
    expect(got).toBe(false);
    expect(clock.slept.slice(0, 5)).toEqual([5, 10, 20, 40, 40]);
    await first.release();
    const second = await waiting;
    expect(second.name).toBe('n');
    await second.release();
  });

  it('timeoutMs gives LOCK_TIMEOUT after a last try at the deadline', async () => {
    const clock = fakeClock();
    const { locks } = await setup({ clock });
    const held = await locks.acquire('n');
    const error = await locks.acquire('n', { timeoutMs: 100 }).catch((e: unknown) => e);
    expect(isStowageError(error, 'LOCK_TIMEOUT')).toBe(true);
    expect(clock.slept).toEqual([5, 10, 20, 40, 25]);
    expect((error as { retryable: boolean }).retryable).toBe(true);
    await held.release();
  });

  it('an aborted signal stops the wait with its reason and leaves no handle behind', async () => {
    const { locks } = await setup();
    const held = await locks.acquire('n');
    const controller = new AbortController();
    const waiting = locks.acquire('n', { signal: controller.signal });
    const reason = new Error('stop waiting');
    controller.abort(reason);
    await expect(waiting).rejects.toBe(reason);
    await expect(locks.acquire('x', { signal: controller.signal })).rejects.toBe(reason);
    await held.release();
    expect(await isBusy(locks, 'n')).toBe(false);
  });

  it('release is idempotent and await using releases', async () => {
    const { locks } = await setup();
    {
      await using handle = await locks.acquire('n');
      expect(await isBusy(locks, 'n')).toBe(true);
      await handle.release();
      await handle.release();
      expect(await isBusy(locks, 'n')).toBe(false);
      const again = await locks.acquire('n');
      await handle.release(); // a second release of the old handle leaves the new holder alone
      expect(await isBusy(locks, 'n')).toBe(true);
      await again.release();
    }
    {
      await using _held = await locks.acquire('m');
      expect(await isBusy(locks, 'm')).toBe(true);
    }
    expect(await isBusy(locks, 'm')).toBe(false);
  });

  it('close() releases every lock, fails waiting acquires and refuses new ones with UNAVAILABLE', async () => {
    const home = await mkdtemp(join(tmpdir(), 'stowage-host-locks-'));
    cleanups.push(() => rm(home, { recursive: true, force: true }));
    const locks = createHostLockManager({ home, pollMs: 5 });
    const other = createHostLockManager({ home, pollMs: 5 });
    cleanups.push(() => other.close());
    await locks.acquire('a');
    await locks.acquire('b', { shared: true });
    const waiting = locks.acquire('a').catch((e: unknown) => e);
    await locks.close();
    await locks.close();
    expect(isStowageError(await waiting, 'UNAVAILABLE')).toBe(true);
    expect(await isBusy(other, 'a')).toBe(false);
    expect(await isBusy(other, 'b')).toBe(false);
    const refused = await locks.acquire('c').catch((e: unknown) => e);
    expect(isStowageError(refused, 'UNAVAILABLE')).toBe(true);
  });

  it('without fs-ext, acquire fails with LOCK_UNAVAILABLE pointing at build tools or PostgreSQL', async () => {
    const home = await mkdtemp(join(tmpdir(), 'stowage-host-locks-'));
    cleanups.push(() => rm(home, { recursive: true, force: true }));
    const missing = Object.assign(new Error("Cannot find module 'fs-ext'"), { code: 'MODULE_NOT_FOUND' });
    const locks = createHostLockManagerWith({ home }, () =>
      loadFlockBinding(() => {
        throw missing;
      }),
    );
    const error = await locks.acquire('n').catch((e: unknown) => e);
    expect(isStowageError(error, 'LOCK_UNAVAILABLE')).toBe(true);
    expect((error as Error).cause).toBe(missing);
    expect((error as Error).message).toContain('createPostgresLockManager');
    expect(existsSync(join(home, 'service'))).toBe(false);
    await locks.close();
  });

  it('the real fs-ext loads here', () => {
    expect(typeof loadFlockBinding().flockSync).toBe('function');
  });

  it('refuses bad options and names', async () => {
    expect(() => createHostLockManager({ pollMs: 0 })).toThrow(
      expect.objectContaining({ code: 'OPTIONS_INVALID' }),
    );
    expect(() => createHostLockManager({ pollMs: 50, maxPollMs: 10 })).toThrow(
      expect.objectContaining({ code: 'OPTIONS_INVALID' }),
    );
    const { locks } = await setup();
    await expect(locks.acquire('')).rejects.toMatchObject({ code: 'OPTIONS_INVALID' });
    await expect(locks.acquire('n', { timeoutMs: -1 })).rejects.toMatchObject({ code: 'OPTIONS_INVALID' });
  });
});
