import { createHash, randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { mkdir, readFile, rename, rm, stat, utimes, writeFile } from '@stowage/blob-store';
import { type LockOptions, RegistryError, type RegistryLock } from '@stowage/oci';

interface Owner {
  readonly pid: number;
  readonly host: string;
  readonly token: string;
  /** The holder's stale timeout: a waiter never judges a lock stale sooner. */
  readonly staleMs?: number;
}

/** Whether a process with this pid runs on this host. */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener(
      'abort',
      () => {
        clearTimeout(timer);
        reject(signal.reason);
      },
      { once: true },
    );
  });
}

async function readOwner(dir: string): Promise<Owner | undefined> {
  try {
    return JSON.parse(await readFile(join(dir, 'owner.json'), 'utf8')) as Owner;
  } catch {
    return undefined;
  }
}

/**
 * Named locks shared by every process that opens the same root.
 *
 * Across processes a lock is a directory renamed into place (atomic, and never
 * without its owner file), holding its owner's pid, host and a random token; the
 * holder touches it every `staleMs / 4`. A waiting process takes over a lock whose owner is a dead
 * process on this host at once, and any lock not touched for `staleMs` (a
 * frozen or remote owner): it renames the directory away (only one taker can)
 * and checks it moved the stale owner's lock, not a fresh one. A lock is never
 * judged silent sooner than its holder's own `staleMs`, so processes configured
 * differently do not take each other's live locks.
 *
 * Inside a process, shared holders share one cross-process acquisition and
 * exclusive holders wait for each other; across processes every holder is
 * exclusive. These locks do not interoperate with podman's fcntl locks.
 */
export class StoreLocks {
  readonly #dir: string;
  readonly #staleMs: number;
  readonly #local = new Map<
    string,
    { readers: number; writer: boolean; waiters: (() => void)[]; held?: Promise<() => Promise<void>> }
  >();

  constructor(dir: string, staleMs: number) {
    this.#dir = dir;
    this.#staleMs = staleMs;
  }

  async acquire(name: string, options: LockOptions = {}): Promise<RegistryLock> {
    const exclusive = (options.mode ?? 'exclusive') === 'exclusive';
    let state = this.#local.get(name);
    if (!state) {
      state = { readers: 0, writer: false, waiters: [] };
      this.#local.set(name, state);
    }
    const local = state;
    const free = () => (exclusive ? !local.writer && local.readers === 0 : !local.writer);
    while (!free()) {
      options.signal?.throwIfAborted();
      await new Promise<void>((resolve) => local.waiters.push(resolve));
    }
    if (exclusive) local.writer = true;
    else local.readers++;
    if (!local.held) local.held = this.#acquireFile(name, options.signal);
    let releaseFile: () => Promise<void>;
    try {
      releaseFile = await local.held;
    } catch (error) {
      local.held = undefined;
      if (exclusive) local.writer = false;
      else local.readers--;
      for (const wake of local.waiters.splice(0)) wake();
      throw error;
    }
    let released = false;
    const release = async () => {
      if (released) return;
      released = true;
      if (exclusive) local.writer = false;
      else local.readers--;
      if (!local.writer && local.readers === 0) {
        local.held = undefined;
        await releaseFile();
      }
      for (const wake of local.waiters.splice(0)) wake();
    };
    return { release, [Symbol.asyncDispose]: release };
  }

  async #acquireFile(name: string, signal: AbortSignal | undefined): Promise<() => Promise<void>> {
    await mkdir(this.#dir, { recursive: true });
    const path = join(this.#dir, createHash('sha256').update(name).digest('hex').slice(0, 40));
    const me: Owner = {
      pid: process.pid,
      host: hostname(),
      token: randomBytes(16).toString('hex'),
      staleMs: this.#staleMs,
    };
    const draft = `${path}.new-${me.token}`;
    // Short waits first: most holders (a record write) keep a lock for a millisecond or two.
    try {
      for (let attempt = 0; ; attempt++) {
        signal?.throwIfAborted();
        if (await this.#publish(draft, path, me)) break;
        await this.#breakIfStale(path);
        await sleep(Math.min(40, 2 ** Math.min(attempt, 6)) * (0.5 + Math.random()), signal);
      }
    } catch (error) {
      await rm(draft, { recursive: true, force: true });
      throw error;
    }
    const heartbeat = setInterval(
      () => {
        const now = new Date();
        utimes(path, now, now).catch(() => undefined);
      },
      Math.max(10, Math.floor(this.#staleMs / 4)),
    );
    heartbeat.unref();
    return async () => {
      clearInterval(heartbeat);
      const owner = await readOwner(path);
      if (owner?.token !== me.token) {
        throw new RegistryError(
          'DENIED',
          `lock ${name} was taken over while held (stale after ${this.#staleMs} ms)`,
        );
      }
      // Moved away first, so the lock directory never exists without its owner file.
      const trash = `${path}.released-${me.token}`;
      await rename(path, trash);
      await rm(trash, { recursive: true, force: true });
    };
  }

  /**
   * Creates the lock directory with its owner file already inside: the owner is
   * written into a private directory that is then renamed into place, which
   * fails when the lock exists. A holder killed at any point therefore leaves
   * either no lock or a lock that names it, and a dead owner is taken over at once.
   */
  async #publish(draft: string, path: string, me: Owner): Promise<boolean> {
    await mkdir(draft, { recursive: true });
    await writeFile(join(draft, 'owner.json'), JSON.stringify(me));
    try {
      await rename(draft, path);
      return true;
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code !== 'ENOTEMPTY' && code !== 'EEXIST') throw error;
      return false;
    }
  }

  async #breakIfStale(path: string): Promise<void> {
    const info = await stat(path).catch(() => undefined);
    if (!info) return;
    const owner = await readOwner(path);
    const dead = owner !== undefined && owner.host === hostname() && !processAlive(owner.pid);
    const silent = Date.now() - info.mtimeMs > Math.max(this.#staleMs, owner?.staleMs ?? 0);
    if (!dead && !silent) return;
    const trash = `${path}.stale-${randomBytes(6).toString('hex')}`;
    try {
      await rename(path, trash);
    } catch {
      return; // another process got there first
    }
    const moved = await readOwner(trash);
    if (owner !== undefined && moved?.token !== owner.token) {
      // A fresh lock replaced the stale one between the check and the rename: put it back.
      await rename(trash, path).catch(() => undefined);
      return;
    }
    await rm(trash, { recursive: true, force: true });
  }
}
