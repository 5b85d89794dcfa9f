import { join } from 'node:path';
import { goJson, goStruct, type OperationOptions } from '@stowage/oci';
import { type ImageInfo, imageInfoFromWerf, werfImageInfo } from '@stowage/stages-storage';
import { sha256Hash, slugify } from '@stowage/tags';
import { readFileIfExists, withLock, writeFileAtomic } from './internal/files.js';
import type { LockManager } from './locks/index.js';

export interface ManifestCacheOptions {
  /** `<home>/local_cache/manifests/5` (see `resolveWerfHome`). */
  readonly directory: string;
  /** Host locks shared with werf; without them only this process is coordinated (the writes stay atomic). */
  readonly locks?: LockManager;
  /** Unix ms; the AccessTimestamp is its seconds. Default `Date.now`. */
  readonly clock?: { now(): number };
}

/**
 * werf's local manifest cache (`image.CommonManifestCache`, spec A.12): one
 * file per image, `<directory>/<slugify(storage)>/<sha256(image name)>`,
 * holding Go's JSON of `{AccessTimestamp, Info}` and a newline. A werf host
 * and Stowage read each other's entries.
 */
export class ManifestCache {
  readonly directory: string;
  readonly #locks: LockManager | undefined;
  readonly #clock: { now(): number };

  constructor(options: ManifestCacheOptions) {
    this.directory = options.directory;
    this.#locks = options.locks;
    this.#clock = options.clock ?? { now: () => Date.now() };
  }

  /** The file of `imageName` (the full stage reference) kept for the storage named `storageName` (its address). */
  path(storageName: string, imageName: string): string {
    return join(this.directory, slugify(storageName), sha256Hash(imageName));
  }

  /** werf's host lock name for one entry. */
  lockName(storageName: string, imageName: string): string {
    return `manifest_cache.${slugify(storageName)}.${imageName}`;
  }

  /**
   * The cached info, or null on a miss. A hit is written again with a fresh
   * AccessTimestamp, as werf does; a file that does not parse is a miss (the
   * next `put` overwrites it).
   */
  async get(
    storageName: string,
    imageName: string,
    options: OperationOptions = {},
  ): Promise<ImageInfo | null> {
    const path = this.path(storageName, imageName);
    return await withLock(
      this.#locks,
      this.lockName(storageName, imageName),
      async () => {
        const text = await readFileIfExists(path);
        if (text === undefined) return null;
        let info: ImageInfo;
        try {
          const parsed = JSON.parse(text) as { Info?: unknown };
          if (parsed === null || typeof parsed !== 'object' || !parsed.Info) return null;
          info = imageInfoFromWerf(parsed.Info);
        } catch {
          return null;
        }
        await writeFileAtomic(path, this.#record(info));
        return info;
      },
      options.signal,
    );
  }

  /** Stores `info` under the storage named `storageName`; the file is named by `info.name`, as werf names it. */
  async put(storageName: string, info: ImageInfo, options: OperationOptions = {}): Promise<void> {
    await withLock(
      this.#locks,
      this.lockName(storageName, info.name),
      () => writeFileAtomic(this.path(storageName, info.name), this.#record(info)),
      options.signal,
    );
  }

  #record(info: ImageInfo): string {
    const accessTimestamp = Math.floor(this.#clock.now() / 1000);
    return `${goJson(
      goStruct([
        ['AccessTimestamp', accessTimestamp],
        ['Info', werfImageInfo(info)],
      ]),
    )}\n`;
  }
}
