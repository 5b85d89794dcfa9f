import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { type Clock, isStowageError } from '@stowage/oci';
import { findExecutable, requirePeers } from '@stowage/testing';
import { afterEach, describe, expect, it } from 'vitest';
import { createHostLockManager, hostLockPath } from './host.js';
import type { LockManager } from './types.js';

const repoRoot = join(import.meta.dirname, '../../../..');

/** Sleeps pass at once: a timeout is reached without waiting for it. */
const instantClock = (): Clock => {
  let now = 0;
  return {
    now: () => now,
    sleep: (ms) =>
      new Promise((resolve) =>
        setImmediate(() => {
          now += ms;
          resolve();
        }),
      ),
  };
};

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function tempHome(): Promise<string> {
  const home = await mkdtemp(join(tmpdir(), 'stowage-host-locks-'));
  await mkdir(join(home, 'service', 'locks'), { recursive: true });
  cleanups.push(() => rm(home, { recursive: true, force: true }));
  return home;
}

function manager(home: string, clock?: Clock): LockManager {
  const locks = createHostLockManager({ home, pollMs: 2, maxPollMs: 20, ...(clock ? { clock } : {}) });
  cleanups.push(() => locks.close());
  return locks;
}

/** Whether util-linux flock(1) gets the lock file at once (`-n`), shared with `-s`. */
function flockFree(file: string, shared = false): boolean {
  const result = spawnSync('flock', ['-n', ...(shared ? ['-s'] : []), file, '-c', 'true']);
  if (result.status !== 0 && result.status !== 1) throw new Error(`flock(1) failed: ${result.stderr}`);
  return result.status === 0;
}

interface Child {
  readonly process: ChildProcess;
  /** Resolves with the next line the child prints. */
  line(): Promise<string>;
  readonly exited: Promise<number | null>;
}

function start(command: string, args: readonly string[], options: { detached?: boolean } = {}): Child {
  const child = spawn(command, args, {
    cwd: repoRoot,
    stdio: ['pipe', 'pipe', 'inherit'],
    detached: options.detached ?? false,
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const lines = createInterface({ input: child.stdout! })[Symbol.asyncIterator]();
  cleanups.push(() => {
    if (child.exitCode === null && child.signalCode === null) {
      if (options.detached && child.pid) process.kill(-child.pid, 'SIGKILL');
      else child.kill('SIGKILL');
    }
  });
  return {
    process: child,
    exited,
    async line() {
      const next = await lines.next();
      if (next.done) throw new Error(`${command} ended before printing a line`);
      return next.value;
    },
  };
}

/** A Node process holding a host lock through this package (src/locks/fixtures/lock-holder.ts). */
function nodeHolder(home: string, name: string, shared = false): Child {
  return start(process.execPath, [
    '--conditions=@stowage/source',
    '--import',
    'tsx',
    join(import.meta.dirname, 'fixtures/lock-holder.ts'),
    home,
    name,
    ...(shared ? ['shared'] : []),
  ]);
}

describe('host locks against flock(1) and other processes', () => {
  if (
    !requirePeers({
      name: 'flock',
      available: findExecutable('flock') !== undefined,
      reason: 'flock(1) (util-linux) is not installed',
    })
  )
    return;

  it('flock(1) cannot take a lock we hold exclusively, and can once it is released', async () => {
    const home = await tempHome();
    const locks = manager(home);
    const file = hostLockPath(home, 'stage-id.repo.digest');
    const handle = await locks.acquire('stage-id.repo.digest');
    expect(flockFree(file)).toBe(false);
    expect(flockFree(file, true)).toBe(false);
    await handle.release();
    expect(flockFree(file)).toBe(true);
  });

  it('a shared lock of ours lets flock(1) share it but not take it exclusively', async () => {
    const home = await tempHome();
    const locks = manager(home);
    const file = hostLockPath(home, 'image.x');
    const handle = await locks.acquire('image.x', { shared: true });
    expect(flockFree(file, true)).toBe(true);
    expect(flockFree(file)).toBe(false);
    await handle.release();
    expect(flockFree(file)).toBe(true);
  });

  it('while flock(1) holds the file we time out; a shared flock(1) holder admits our shared lock only', async () => {
    const home = await tempHome();
    const locks = manager(home, instantClock());
    const file = hostLockPath(home, 'held-by-flock');
    const holder = start('flock', [file, 'sh', '-c', 'echo held; exec sleep 600'], { detached: true });
    expect(await holder.line()).toBe('held');
    for (const shared of [false, true]) {
      const error = await locks.acquire('held-by-flock', { shared, timeoutMs: 200 }).catch((e: unknown) => e);
      expect(isStowageError(error, 'LOCK_TIMEOUT')).toBe(true);
    }
    process.kill(-holder.process.pid!, 'SIGKILL');
    await holder.exited;

    const sharedHolder = start('flock', ['-s', file, 'sh', '-c', 'echo held; exec sleep 600'], {
      detached: true,
    });
    expect(await sharedHolder.line()).toBe('held');
    const ours = await locks.acquire('held-by-flock', { shared: true, timeoutMs: 200 });
    await ours.release();
    const error = await locks.acquire('held-by-flock', { timeoutMs: 200 }).catch((e: unknown) => e);
    expect(isStowageError(error, 'LOCK_TIMEOUT')).toBe(true);
    process.kill(-sharedHolder.process.pid!, 'SIGKILL');
    await sharedHolder.exited;
    // the kernel frees the lock with the last descriptor: wait (without a timeout) until it is ours
    const after = await manager(home).acquire('held-by-flock');
    await after.release();
  });

  it('a lock held by another Node process blocks us until it releases', async () => {
    const home = await tempHome();
    const locks = manager(home);
    const holder = nodeHolder(home, 'scenario.release');
    expect(await holder.line()).toBe('held');
    const refused = await locks.acquire('scenario.release', { timeoutMs: 0 }).catch((e: unknown) => e);
    expect(isStowageError(refused, 'LOCK_TIMEOUT')).toBe(true);
    let settled = false;
    const waiting = locks.acquire('scenario.release').finally(() => {
      settled = true;
    });
    // the holder keeps it until told: nothing can have settled the wait yet
    expect(settled).toBe(false);
    holder.process.stdin!.write('release\n');
    expect(await holder.line()).toBe('released');
    const handle = await waiting;
    expect(flockFree(hostLockPath(home, 'scenario.release'))).toBe(false);
    await handle.release();
    expect(await holder.exited).toBe(0);
  });

  it('killing the holder with SIGKILL frees the lock', async () => {
    const home = await tempHome();
    const locks = manager(home);
    const holder = nodeHolder(home, 'scenario.kill');
    expect(await holder.line()).toBe('held');
    expect(flockFree(hostLockPath(home, 'scenario.kill'))).toBe(false);
    let settled = false;
    const waiting = locks.acquire('scenario.kill').finally(() => {
      settled = true;
    });
    const refused = await locks.acquire('scenario.kill', { timeoutMs: 0 }).catch((e: unknown) => e);
    expect(isStowageError(refused, 'LOCK_TIMEOUT')).toBe(true);
    expect(settled).toBe(false);
    holder.process.kill('SIGKILL');
    await holder.exited;
    const handle = await waiting;
    expect(handle.name).toBe('scenario.kill');
    await handle.release();
  });

  it('a shared lock in another process admits our shared lock and keeps out our exclusive one', async () => {
    const home = await tempHome();
    const locks = manager(home);
    const holder = nodeHolder(home, 'scenario.shared', true);
    expect(await holder.line()).toBe('held');
    const shared = await locks.acquire('scenario.shared', { shared: true, timeoutMs: 0 });
    await shared.release();
    const refused = await locks.acquire('scenario.shared', { timeoutMs: 0 }).catch((e: unknown) => e);
    expect(isStowageError(refused, 'LOCK_TIMEOUT')).toBe(true);
    holder.process.stdin!.write('release\n');
    expect(await holder.line()).toBe('released');
    const exclusive = await locks.acquire('scenario.shared');
    await exclusive.release();
  });
});
