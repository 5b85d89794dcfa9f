import { createHash, randomBytes } from 'node:crypto';
import { rmdir } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { link, mkdir, readFile, rename, rm, stat, utimes, writeFile } from '@stowage/blob-store';
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

/** The owner a lock names: the lock file itself, or `owner.json` inside a lock directory an earlier version made. */
async function readOwner(path: string): Promise<Owner | undefined> {
  try {
    return JSON.parse(await readFile(path, 'utf8')) as Owner;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EISDIR') return undefined;
  }
  try {
    return JSON.parse(await readFile(join(path, 'owner.json'), 'utf8')) as Owner;
  } catch {
    return undefined;
  }
}

/**
 * Named locks shared by every process that opens the same root.
 *
 * Across processes a lock is a file hard-linked into place (atomic, fails when
 * the lock exists, and never without its contents), holding its owner's pid,
 * host and a random token; the holder touches it every `staleMs / 4`. One inode
 * per acquisition: creating inodes is what costs on ext4, and a tag write takes
 * a lock. A waiting process takes over a lock whose owner is a dead
 * process on this host at once, and any lock not touched for `staleMs` (a
 * frozen or remote owner): it renames the lock away (only one taker can)
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

  readonly #fileName: (name: string) => string;

  /** `fileName` names a lock's file in `dir` (default: 40 hex digits of the name's sha256). */
  constructor(dir: string, staleMs: number, options: { readonly fileName?: (name: string) => string } = {}) {
    this.#dir = dir;
    this.#staleMs = staleMs;
    this.#fileName =
      options.fileName ?? ((name) => createHash('sha256').update(name).digest('hex').slice(0, 40));
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
    const path = join(this.#dir, this.#fileName(name));
    const me: Owner = {
      pid: process.pid,
      host: hostname(),
      token: randomBytes(16).toString('hex'),
      staleMs: this.#staleMs,
    };
    const draft = `${path}.new-${me.token}`;
    await writeFile(draft, JSON.stringify(me), { flag: 'wx' });
    // Short waits first: most holders (a record write) keep a lock for a millisecond or two.
    try {
      for (let attempt = 0; ; attempt++) {
        signal?.throwIfAborted();
        if (await this.#publish(draft, path)) break;
        await this.#breakIfStale(path);
        await sleep(Math.min(40, 2 ** Math.min(attempt, 6)) * (0.5 + Math.random()), signal);
      }
    } finally {
      await rm(draft, { force: true });
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
      // Moved away first, as a breaker does: whoever renames a lock is the one who removes it.
      const trash = `${path}.released-${me.token}`;
      await rename(path, trash);
      await rm(trash, { recursive: true, force: true });
    };
  }

  /**
   * Links the owner file written beside the lock into place, which fails when
   * the lock exists (as a file, or as the directory of an earlier version). A
   * holder killed at any point therefore leaves either no lock or a lock that
   * names it, and a dead owner is taken over at once.
   */
  async #publish(draft: string, path: string): Promise<boolean> {
    try {
      await link(draft, path);
      return true;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      return false;
    }
  }

  async #breakIfStale(path: string): Promise<void> {
    const info = await stat(path).catch(() => undefined);
    if (!info) return;
    const owner = await readOwner(path);
    if (owner === undefined && info.isDirectory()) {
      // An empty lock directory: an earlier version killed between its mkdir and its owner file.
      // rmdir removes it only while it is still empty.
      await rmdir(path).catch(() => undefined);
      return;
    }
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
      // A fresh lock replaced the stale one between the check and the rename: put it back
      // (linked, so a lock taken meanwhile is never overwritten).
      await link(trash, path).catch(() => undefined);
      await rm(trash, { recursive: true, force: true });
      return;
    }
    await rm(trash, { recursive: true, force: true });
  }
}
