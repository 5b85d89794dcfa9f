import { constants } from 'node:fs';
import { type FileHandle, open } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { homedir } from 'node:os';
import { join } from 'node:path';
// Our own mkdir -p: Node 20's recursive mkdir loops for ever where a parent refuses the entry (/proc).
import { mkdir } from '@stowage/blob-store';
import { type Clock, type Logger, resolveLogger } from '@stowage/oci';
import { legacyMurmurHash } from '@stowage/tags';
import { LockError } from './errors.js';
import { closedError, pollUntil, resolvePollSettings } from './poll.js';
import type { AcquireOptions, LockHandle, LockManager } from './types.js';

export interface HostLockManagerOptions {
  /** werf's home: default `$WERF_HOME`, else `~/.werf`. Lock files go to `<home>/service/locks`. */
  readonly home?: string;
  /** First wait between two tries of a busy lock (doubling up to `maxPollMs`). Default 20. */
  readonly pollMs?: number;
  /** Longest wait between two tries. Default 500. */
  readonly maxPollMs?: number;
  /** Time for the polling and `timeoutMs`; tests pass a fake one. */
  readonly clock?: Clock;
  readonly logger?: Logger;
}

/** A host lock: the flock(2) on one open file description of its lock file. */
export interface HostLockHandle extends LockHandle {
  /** `<home>/service/locks/<murmur3 hex of the name>`. */
  readonly path: string;
}

/** The part of fs-ext this module uses. */
export interface FlockBinding {
  flockSync(fd: number, flags: number): unknown;
  readonly constants: {
    readonly LOCK_SH: number;
    readonly LOCK_EX: number;
    readonly LOCK_NB: number;
    readonly LOCK_UN: number;
  };
}

/** werf's home directory: `$WERF_HOME`, else `~/.werf` (spec A.12). */
export function werfHome(): string {
  const fromEnv = process.env.WERF_HOME;
  return fromEnv ? fromEnv : join(homedir(), '.werf');
}

/** The lock file werf's lockgate uses for a lock name (legacy hash: murmur3-32, unpadded hex). */
export function hostLockPath(home: string, name: string): string {
  return join(home, 'service', 'locks', legacyMurmurHash(name));
}

let loaded: FlockBinding | undefined;

const requireFsExt = (): unknown => createRequire(import.meta.url)('fs-ext');

/**
 * fs-ext, loaded on first use (it is an optional, natively built dependency);
 * `LOCK_UNAVAILABLE` when it cannot load. `load` replaces the require (tests).
 */
export function loadFlockBinding(load: () => unknown = requireFsExt): FlockBinding {
  if (loaded && load === requireFsExt) return loaded;
  let binding: FlockBinding;
  try {
    binding = load() as FlockBinding;
    if (typeof binding?.flockSync !== 'function') throw new Error('fs-ext has no flockSync');
  } catch (error) {
    throw new LockError(
      'LOCK_UNAVAILABLE',
      'host locks need the native addon fs-ext (flock(2)), which did not load: install build tools ' +
        '(python3, make, a C++ compiler) and reinstall so node-gyp builds it, or pass a PostgreSQL lock manager ' +
        '(createPostgresLockManager) instead',
      { cause: error },
    );
  }
  if (load === requireFsExt) loaded = binding;
  return binding;
}

/**
 * Host file locks in werf's layout: the lock named `n` is flock(2) on
 * `<home>/service/locks/<legacyMurmurHash(n)>`, shared or exclusive, so a werf
 * process (lockgate's file locks) and a Stowage process on one host exclude
 * each other. Every acquire opens its own descriptor: two handles of one name
 * in one process exclude each other as two processes do. A busy lock is
 * retried with a non-blocking flock and backoff (a blocking flock would hold a
 * libuv thread). The kernel drops the lock when the holder dies.
 */
export function createHostLockManager(options: HostLockManagerOptions = {}): LockManager {
  return createHostLockManagerWith(options, loadFlockBinding);
}

/** The same with the flock binding given (tests load a binding that fails). Internal. */
export function createHostLockManagerWith(
  options: HostLockManagerOptions,
  loadBinding: () => FlockBinding,
): LockManager {
  const home = options.home ?? werfHome();
  if (typeof home !== 'string' || home === '') {
    throw new LockError('OPTIONS_INVALID', 'home must be a directory path');
  }
  const dir = join(home, 'service', 'locks');
  const settings = resolvePollSettings(options);
  const log = resolveLogger(options.logger);
  const description = `host:${dir}`;
  const closing = new AbortController();
  const held = new Set<HostHandle>();

  return {
    description,
    async acquire(name: string, acquireOptions: AcquireOptions = {}): Promise<HostLockHandle> {
      if (typeof name !== 'string' || name === '')
        throw new LockError('OPTIONS_INVALID', 'a lock needs a name');
      acquireOptions.signal?.throwIfAborted();
      if (closing.signal.aborted) throw closedError(description, name);
      const binding = loadBinding();
      const shared = acquireOptions.shared ?? false;
      const path = join(dir, legacyMurmurHash(name));
      let file: FileHandle;
      try {
        // every time: someone may have removed the directory since (werf's host cleanup does not, a user may)
        await mkdir(dir, { recursive: true });
        // gofrs/flock (under lockgate) opens the file the same way: created if missing, read-only
        file = await open(path, constants.O_RDONLY | constants.O_CREAT, 0o644);
      } catch (error) {
        throw new LockError('LOCK_FAILED', `cannot open the lock file ${path} for ${JSON.stringify(name)}`, {
          cause: error,
          details: { name, path, manager: description },
        });
      }
      const { LOCK_SH, LOCK_EX, LOCK_NB } = binding.constants;
      const flags = (shared ? LOCK_SH : LOCK_EX) | LOCK_NB;
      let waited = false;
      try {
        await pollUntil(
          { name, manager: description, settings, options: acquireOptions, closing: closing.signal },
          () => {
            try {
              binding.flockSync(file.fd, flags);
              return true;
            } catch (error) {
              const code = (error as NodeJS.ErrnoException).code;
              if (code === 'EAGAIN' || code === 'EWOULDBLOCK') {
                if (!waited) log.debug({ name, path, shared }, 'host lock busy, waiting');
                waited = true;
                return false;
              }
              throw new LockError('LOCK_FAILED', `flock on ${path} for ${JSON.stringify(name)} failed`, {
                cause: error,
                details: { name, path, manager: description },
              });
            }
          },
        );
      } catch (error) {
        await file.close().catch(() => undefined);
        throw error;
      }
      const handle = new HostHandle({ name, shared, path, file, binding, held, log });
      held.add(handle);
      if (closing.signal.aborted) {
        await handle.release();
        throw closedError(description, name);
      }
      log.debug({ name, path, shared }, 'host lock taken');
      return handle;
    },
    async close(): Promise<void> {
      closing.abort();
      await Promise.all([...held].map((handle) => handle.release()));
    },
  };
}

class HostHandle implements HostLockHandle {
  readonly name: string;
  readonly shared: boolean;
  readonly path: string;
  readonly #file: FileHandle;
  readonly #binding: FlockBinding;
  readonly #held: Set<HostHandle>;
  readonly #log: ReturnType<typeof resolveLogger>;
  #released: Promise<void> | undefined;

  constructor(init: {
    name: string;
    shared: boolean;
    path: string;
    file: FileHandle;
    binding: FlockBinding;
    held: Set<HostHandle>;
    log: ReturnType<typeof resolveLogger>;
  }) {
    this.name = init.name;
    this.shared = init.shared;
    this.path = init.path;
    this.#file = init.file;
    this.#binding = init.binding;
    this.#held = init.held;
    this.#log = init.log;
  }

  release(): Promise<void> {
    this.#released ??= this.#release();
    return this.#released;
  }

  async #release(): Promise<void> {
    this.#held.delete(this);
    try {
      this.#binding.flockSync(this.#file.fd, this.#binding.constants.LOCK_UN);
    } catch (error) {
      // closing the descriptor below drops the lock anyway
      this.#log.warn({ name: this.name, path: this.path, err: error }, 'host lock: unlock failed, closing');
    }
    await this.#file.close();
    this.#log.debug({ name: this.name, path: this.path }, 'host lock released');
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.release();
  }
}
