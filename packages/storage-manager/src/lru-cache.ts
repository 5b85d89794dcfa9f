import { join } from 'node:path';
import { goString, type OperationOptions } from '@stowage/oci';
import { sha256Hash } from '@stowage/tags';
import { readFileIfExists, withLock, writeFileAtomic } from './internal/files.js';
import type { LockManager } from './locks/index.js';

export interface LruImagesCacheOptions {
  /** `<home>/local_cache/lru_images/1` (see `resolveWerfHome`). */
  readonly directory: string;
  readonly locks?: LockManager;
  /**
   * Unix ms (default `Date.now`); a clock with `nowNs()` gives the nanoseconds
   * itself, else they are the ms × 1e6.
   */
  readonly clock?: { now(): number; nowNs?(): bigint };
}

export interface LruImageAccess {
  readonly imageRef: string;
  /** Unix ns, exact. */
  readonly accessTimestampNanosec: bigint;
}

/**
 * werf's LRU images record (`lrumeta.CommonLRUImagesCache`, spec A.12): one
 * file per image reference, `<directory>/<sha256(ref)>`, holding
 * `{"AccessTimestampNanosec":<ns>,"ImageRef":"<ref>"}` and a newline. werf's
 * host cleanup removes the least recently used local images by it.
 */
export class LruImagesCache {
  readonly directory: string;
  readonly #locks: LockManager | undefined;
  readonly #clock: { now(): number; nowNs?(): bigint };

  constructor(options: LruImagesCacheOptions) {
    this.directory = options.directory;
    this.#locks = options.locks;
    this.#clock = options.clock ?? { now: () => Date.now() };
  }

  path(imageRef: string): string {
    return join(this.directory, sha256Hash(imageRef));
  }

  lockName(imageRef: string): string {
    return `lru_images_cache.${imageRef}`;
  }

  /** Records an access to `imageRef` now. */
  async accessImage(imageRef: string, options: OperationOptions = {}): Promise<void> {
    const ns = this.#clock.nowNs ? this.#clock.nowNs() : BigInt(Math.trunc(this.#clock.now())) * 1_000_000n;
    // goJson has no integers beyond 2^53, so the line is put together here, in Go's field order.
    const line = `{"AccessTimestampNanosec":${ns.toString()},"ImageRef":${goString(imageRef)}}\n`;
    await withLock(
      this.#locks,
      this.lockName(imageRef),
      () => writeFileAtomic(this.path(imageRef), line),
      options.signal,
    );
  }

  /** The last recorded access, or null when there is none or it does not parse. */
  async lastAccess(imageRef: string): Promise<LruImageAccess | null> {
    const text = await readFileIfExists(this.path(imageRef));
    if (text === undefined) return null;
    const ns = /"AccessTimestampNanosec":\s*(-?\d+)/.exec(text)?.[1];
    if (ns === undefined) return null;
    try {
      const parsed = JSON.parse(text) as { ImageRef?: unknown };
      if (typeof parsed.ImageRef !== 'string') return null;
      return { imageRef: parsed.ImageRef, accessTimestampNanosec: BigInt(ns) };
    } catch {
      return null;
    }
  }
}
