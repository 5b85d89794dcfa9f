import { copyImage } from '@stowage/copy';
import { isStowageError, type OperationOptions, retry } from '@stowage/oci';
import {
  type CustomTagMetadata,
  type ImageInfo,
  type ImportMetadata,
  LOCAL_STORAGE_ADDRESS,
  type LocalImages,
  localRepositoryOf,
  type StageDesc,
  type StageID,
  type StagesStorage,
} from '@stowage/stages-storage';
import { stageIdString } from '@stowage/tags';
import { StorageManagerError } from './errors.js';
import { type GetImageInfoOptions, getImageInfo, splitImageRef } from './image-info.js';
import type { LockHandle } from './locks/index.js';
import { LruImagesCache } from './lru-cache.js';
import { ManifestCache } from './manifest-cache.js';
import {
  type ResolvedStorageManagerOptions,
  resolveOptions,
  type StageSelector,
  type StorageManagerOptions,
} from './options.js';
import { forEachLimited, mapLimited } from './parallel.js';
import { withNewStageID } from './stage-id.js';

type StageRef = Pick<StageID, 'digest' | 'creationTs'>;

/** What `fetchStage` did. */
export interface FetchStageResult {
  /** `local`: the image was in the local store already; `cache`: fetched from a cache storage; `primary`: from the primary. */
  readonly from: 'local' | 'cache' | 'primary';
  /** The storage fetched from (undefined for `local`). */
  readonly storage: StagesStorage | undefined;
  /** The stage's description in the primary storage's names (null for `local`: nothing was read). */
  readonly desc: StageDesc | null;
}

/** werf's image.InfoGetter: the names a final image is known by. */
export interface StageImageNames {
  /** The werf image (werf.yaml `image:`) the stage belongs to. */
  readonly werfImageName: string;
  /** The stage image's full reference: in the final repo when there is one, else where the description says. */
  readonly name: string;
  readonly repository: string;
  readonly tag: string;
}

export interface CopyIntoStorageOptions extends OperationOptions {
  /** A name for messages (werf's `LogDetailedName`), default the stage ID. */
  readonly name?: string;
}

export interface CopyIntoFinalOptions extends CopyIntoStorageOptions {
  /** Refuse to copy: a stage missing from the final repo is `NOT_IN_FINAL_REPO` (werf's should-be-built mode). */
  readonly shouldBeBuilt?: boolean;
}

export interface StagesByDigestOptions extends OperationOptions {
  /**
   * Answer from the storage's cached tag listing; when that finds no stage,
   * list again (another builder may have pushed one since), as werf does.
   */
  readonly cache?: boolean;
  /** The storage to look in; default the primary. */
  readonly storage?: StagesStorage;
  /** Skip stages older than their parent stage (werf's `parentCreationTs`). */
  readonly parentCreationTs?: number;
}

export interface ListStageDescsOptions extends OperationOptions {
  /** List from the primary's cached tag listing. */
  readonly cache?: boolean;
}

export interface CreateStageOptions<T> extends OperationOptions {
  readonly digest: string;
  /** Pushes the stage under the ID given; the ID stays reserved until it settles. */
  readonly push: (stage: StageID) => Promise<T>;
}

export interface RetryOnUnexpectedStateOptions {
  readonly signal?: AbortSignal;
}

/** The item callback of a for-each operation: `error` is what the operation raised for this item, if anything. Throwing stops the loop. */
export type ForEachCallback<T> = (item: T, error: unknown) => void | Promise<void>;

/**
 * werf's storage manager: one primary stages storage, an optional final one,
 * read-only secondary ones and refillable cache ones, with werf's local
 * manifest cache and LRU record on disk.
 */
export interface StorageManager extends AsyncDisposable {
  readonly project: string;
  readonly primary: StagesStorage;
  readonly final: StagesStorage | undefined;
  readonly secondary: readonly StagesStorage[];
  readonly cache: readonly StagesStorage[];
  /** The parallel task limit of the listing and for-each operations. */
  readonly maxWorkers: number;
  /** werf's local manifest cache, when on. */
  readonly manifestCache: ManifestCache | undefined;
  readonly lruImages: LruImagesCache;

  /** The names the image of `desc` is known by: in the final repo when there is one (werf's GetImageInfoGetter). */
  imageNames(werfImageName: string, desc: StageDesc): StageImageNames;
  /** Fills the final repo's stage list cache (once). */
  initCache(options?: OperationOptions): Promise<void>;
  listStageDescs(options?: ListStageDescsOptions): Promise<StageDesc[]>;
  /** The final repo's stages, from the list cache filled once and kept current by copies into it. */
  listFinalStageDescs(options?: OperationOptions): Promise<StageDesc[]>;
  /** Deletes each stage from the cache storages (failures only warned), then from the primary. */
  forEachDeleteStage(
    descs: readonly StageDesc[],
    callback: ForEachCallback<StageDesc>,
    options?: OperationOptions,
  ): Promise<void>;
  forEachDeleteFinalStage(
    descs: readonly StageDesc[],
    callback: ForEachCallback<StageDesc>,
    options?: OperationOptions,
  ): Promise<void>;
  /** The image's info from the local store, else from the registry (or resolver) given; null when neither has it. */
  getImageInfo(ref: string, options?: GetImageInfoOptions): Promise<ImageInfo | null>;
  /** Takes a shared lock on a stage image, held until `close()`. A no-op without `locks`. */
  lockStageImage(imageName: string, options?: OperationOptions): Promise<void>;
  /** Puts the stage image into the local store: from a cache storage first (refilling those that missed), else from the primary. */
  fetchStage(stage: StageRef, options?: OperationOptions): Promise<FetchStageResult>;
  copyStageIntoCacheStorages(
    stage: StageRef,
    options?: CopyIntoStorageOptions & { readonly storages?: readonly StagesStorage[] },
  ): Promise<void>;
  copyStageIntoFinalStorage(stage: StageRef, options?: CopyIntoFinalOptions): Promise<StageDesc>;
  selectSuitableStage(stages: readonly StageDesc[], selector?: StageSelector): Promise<StageDesc | null>;
  getStagesByDigest(digest: string, options?: StagesByDigestOptions): Promise<StageDesc[]>;
  /** Copies a stage found in `source` (a secondary storage) into `destination` (default the primary). */
  copySuitableByDigestStage(
    desc: StageDesc,
    options: OperationOptions & { readonly source: StagesStorage; readonly destination?: StagesStorage },
  ): Promise<StageDesc | null>;
  /** `stageIdCommits`: stage ID → commits, as werf's metadata listing groups them. */
  forEachRemoveImageMetadata(
    imageNameOrId: string,
    stageIdCommits: ReadonlyMap<string, readonly string[]> | Readonly<Record<string, readonly string[]>>,
    callback: ForEachCallback<{ readonly commit: string; readonly stageId: string }>,
    options?: OperationOptions,
  ): Promise<void>;
  forEachRemoveManagedImage(
    imageNames: readonly string[],
    callback: ForEachCallback<string>,
    options?: OperationOptions,
  ): Promise<void>;
  forEachGetImportMetadata(
    ids: readonly string[],
    callback: (id: string, metadata: ImportMetadata | null, error: unknown) => void | Promise<void>,
    options?: OperationOptions,
  ): Promise<void>;
  forEachRemoveImportMetadata(
    ids: readonly string[],
    callback: ForEachCallback<string>,
    options?: OperationOptions,
  ): Promise<void>;
  forEachGetCustomTagMetadata(
    ids: readonly string[],
    callback: (id: string, metadata: CustomTagMetadata | null, error: unknown) => void | Promise<void>,
    options?: OperationOptions,
  ): Promise<void>;
  /** Deletes each custom tag, then unregisters its metadata. */
  forEachDeleteCustomTag(
    ids: readonly string[],
    callback: ForEachCallback<string>,
    options?: OperationOptions,
  ): Promise<void>;
  /**
   * Runs `fn` again while it fails with `UNEXPECTED_STORAGE_STATE`, at most
   * `unexpectedStateRetries` times, with backoff; the tag listings cached by
   * the storages are dropped before each retry.
   */
  retryOnUnexpectedStorageState<T>(
    fn: (attempt: number) => Promise<T>,
    options?: RetryOnUnexpectedStateOptions,
  ): Promise<T>;
  /**
   * A fresh stage ID for `digest` in the primary (unique among its stages and in this
   * process). The lock is released when it returns: to be unique across processes, push
   * inside `createStage`, which holds the lock until the push settles.
   */
  generateStageID(digest: string, options?: OperationOptions): Promise<StageID>;
  /** A fresh stage ID held (with `locks`, across processes) until `push` settles. */
  createStage<T>(options: CreateStageOptions<T>): Promise<T>;
  /** Releases the stage image locks taken. Idempotent; does not close the lock manager. */
  close(): Promise<void>;
}

export function createStorageManager(options: StorageManagerOptions): StorageManager {
  return new Manager(resolveOptions(options));
}

const signalOf = (options?: OperationOptions): { signal?: AbortSignal } =>
  options?.signal ? { signal: options.signal } : {};

/** werf's name of the host lock on a local image (container_backend.ImageLockName). */
export function imageLockName(imageName: string): string {
  return `image.${imageName}`;
}

/** A description from another storage, renamed for `storage` (werf's ConvertStageDescriptionForStagesStorage). */
export function convertStageDesc(desc: StageDesc, storage: StagesStorage): StageDesc {
  return {
    stageID: desc.stageID,
    info: {
      ...desc.info,
      name: storage.stageImageName(desc.stageID),
      repository: storage.address,
    },
  };
}

const toStageID = (stage: StageRef): StageID => ({
  digest: stage.digest,
  creationTs: stage.creationTs,
  isMultiplatform: stage.creationTs === 0,
});

class Manager implements StorageManager {
  readonly #o: ResolvedStorageManagerOptions;
  readonly manifestCache: ManifestCache | undefined;
  readonly lruImages: LruImagesCache;
  readonly #finalManifestCache: ManifestCache | undefined;
  #finalList: Map<string, StageID> | undefined;
  #finalListPending: Promise<Map<string, StageID>> | undefined;
  #heldLocks: LockHandle[] = [];
  #closed = false;

  constructor(options: ResolvedStorageManagerOptions) {
    this.#o = options;
    const cacheOptions = {
      directory: options.home.manifestCache,
      clock: options.clock,
      ...(options.locks ? { locks: options.locks } : {}),
    };
    const cache = new ManifestCache(cacheOptions);
    // werf: the manifest cache is skipped for a local primary, but the final repo's list always uses it.
    this.manifestCache =
      (options.manifestCache ?? options.primary.address !== LOCAL_STORAGE_ADDRESS) ? cache : undefined;
    this.#finalManifestCache = options.manifestCache === false ? undefined : cache;
    this.lruImages = new LruImagesCache({
      directory: options.home.lruImages,
      clock: options.clock,
      ...(options.locks ? { locks: options.locks } : {}),
    });
  }

  get project(): string {
    return this.#o.project;
  }
  get primary(): StagesStorage {
    return this.#o.primary;
  }
  get final(): StagesStorage | undefined {
    return this.#o.final;
  }
  get secondary(): readonly StagesStorage[] {
    return this.#o.secondary;
  }
  get cache(): readonly StagesStorage[] {
    return this.#o.cache;
  }
  get maxWorkers(): number {
    return this.#o.parallelTasksLimit;
  }

  get #log() {
    return this.#o.logger;
  }

  imageNames(werfImageName: string, desc: StageDesc): StageImageNames {
    const name = this.#o.final ? this.#o.final.stageImageName(desc.stageID) : desc.info.name;
    const { address, tag } = splitImageRef(name);
    return { werfImageName, name, repository: address, tag };
  }

  async initCache(options?: OperationOptions): Promise<void> {
    if (this.#o.final) await this.#finalStageList(options);
  }

  // --- descriptions ---

  /**
   * werf's getStageDescription: the manifest cache, then each cache storage
   * (its manifest cache entry, then the storage; failures only warned), then
   * `storage` itself. A broken image there reads as null.
   */
  async #describe(
    stage: StageRef,
    storage: StagesStorage,
    cacheStorages: readonly StagesStorage[],
    manifestCache: ManifestCache | undefined,
    options?: OperationOptions,
  ): Promise<StageDesc | null> {
    const stageID = toStageID(stage);
    if (manifestCache) {
      const info = await manifestCache.get(storage.address, storage.stageImageName(stage), options);
      if (info) return { stageID, info };
    }
    for (const cacheStorage of cacheStorages) {
      if (manifestCache) {
        const info = await manifestCache.get(
          cacheStorage.address,
          cacheStorage.stageImageName(stage),
          options,
        );
        if (info) return convertStageDesc({ stageID, info }, storage);
      }
      let desc: StageDesc | null;
      try {
        desc = await cacheStorage.getStageDesc(stage, { ...signalOf(options), cache: true });
      } catch (error) {
        this.#log.warn(
          { stage: stageIdString(stage), storage: cacheStorage.address, err: error },
          'unable to get the stage description from a cache storage',
        );
        continue;
      }
      if (desc) {
        if (manifestCache) await manifestCache.put(cacheStorage.address, desc.info, options);
        return convertStageDesc(desc, storage);
      }
    }
    let desc: StageDesc | null;
    try {
      desc = await storage.getStageDesc(stage, { ...signalOf(options), cache: true });
    } catch (error) {
      if (isStowageError(error, 'BROKEN_IMAGE')) {
        this.#log.warn(
          { stage: stageIdString(stage), storage: storage.address, err: error },
          'broken stage image',
        );
        return null;
      }
      throw error;
    }
    if (desc && manifestCache) await manifestCache.put(storage.address, desc.info, options);
    return desc;
  }

  async #describeAll(
    ids: readonly StageID[],
    storage: StagesStorage,
    cacheStorages: readonly StagesStorage[],
    manifestCache: ManifestCache | undefined,
    options?: OperationOptions,
  ): Promise<StageDesc[]> {
    const descs = await mapLimited(
      ids,
      this.maxWorkers,
      (id) => this.#describe(id, storage, cacheStorages, manifestCache, options),
      options?.signal,
    );
    const found: StageDesc[] = [];
    descs.forEach((desc, i) => {
      if (desc) found.push(desc);
      else
        this.#log.warn(
          { stage: stageIdString(ids[i] as StageID), storage: storage.address },
          'ignoring stage: no description in the storage',
        );
    });
    return found;
  }

  async listStageDescs(options?: ListStageDescsOptions): Promise<StageDesc[]> {
    const ids = await this.primary.listStageIDs({ ...signalOf(options), cache: options?.cache === true });
    return await this.#describeAll(ids, this.primary, this.cache, this.manifestCache, options);
  }

  async #finalStageList(options?: OperationOptions): Promise<Map<string, StageID>> {
    const final = this.#requireFinal();
    if (this.#finalList) return this.#finalList;
    if (!this.#finalListPending) {
      this.#finalListPending = (async () => {
        const ids = await final.listStageIDs(signalOf(options));
        return new Map(ids.map((id) => [stageIdString(id), id]));
      })();
      this.#finalListPending.then(
        (list) => {
          this.#finalList = list;
          this.#finalListPending = undefined;
        },
        () => {
          this.#finalListPending = undefined;
        },
      );
    }
    return await this.#finalListPending;
  }

  #requireFinal(): StagesStorage {
    if (!this.#o.final)
      throw new StorageManagerError(
        'OPTIONS_INVALID',
        'storage manager option final: no final storage given',
        {
          details: { key: 'final' },
        },
      );
    return this.#o.final;
  }

  async listFinalStageDescs(options?: OperationOptions): Promise<StageDesc[]> {
    const final = this.#requireFinal();
    const ids = [...(await this.#finalStageList(options)).values()];
    return await this.#describeAll(ids, final, [], this.#finalManifestCache, options);
  }

  async getStagesByDigest(digest: string, options?: StagesByDigestOptions): Promise<StageDesc[]> {
    const storage = options?.storage ?? this.primary;
    const list = async (cache: boolean): Promise<StageDesc[]> => {
      const ids = await storage.listStageIDsByDigest(digest, {
        ...signalOf(options),
        cache,
        ...(options?.parentCreationTs === undefined ? {} : { parentCreationTs: options.parentCreationTs }),
      });
      return await this.#describeAll(ids, storage, this.cache, this.manifestCache, options);
    };
    if (options?.cache) {
      const cached = await list(true);
      if (cached.length > 0) return cached;
    }
    return await list(false);
  }

  async selectSuitableStage(
    stages: readonly StageDesc[],
    selector?: StageSelector,
  ): Promise<StageDesc | null> {
    if (stages.length === 0) return null;
    const selected = (await (selector ?? this.#o.selector)(stages)) ?? null;
    if (selected) this.#log.debug({ stage: stageIdString(selected.stageID) }, 'selected a suitable stage');
    return selected;
  }

  // --- deletes ---

  async forEachDeleteStage(
    descs: readonly StageDesc[],
    callback: ForEachCallback<StageDesc>,
    options?: OperationOptions,
  ): Promise<void> {
    await forEachLimited(
      descs,
      this.maxWorkers,
      async (desc) => {
        for (const cacheStorage of this.cache) {
          try {
            await cacheStorage.deleteStage(convertStageDesc(desc, cacheStorage), signalOf(options));
          } catch (error) {
            this.#log.warn(
              { stage: stageIdString(desc.stageID), storage: cacheStorage.address, err: error },
              'unable to delete the stage from a cache storage',
            );
          }
        }
        await callback(desc, await settle(this.primary.deleteStage(desc, signalOf(options))));
      },
      options?.signal,
    );
  }

  async forEachDeleteFinalStage(
    descs: readonly StageDesc[],
    callback: ForEachCallback<StageDesc>,
    options?: OperationOptions,
  ): Promise<void> {
    const final = this.#requireFinal();
    await forEachLimited(
      descs,
      this.maxWorkers,
      async (desc) => {
        const error = await settle(final.deleteStage(desc, signalOf(options)));
        if (error === undefined) this.#finalList?.delete(stageIdString(desc.stageID));
        await callback(desc, error);
      },
      options?.signal,
    );
  }

  // --- images ---

  async getImageInfo(ref: string, options?: GetImageInfoOptions): Promise<ImageInfo | null> {
    return await getImageInfo(ref, { ...(this.#o.local ? { local: this.#o.local } : {}), ...options });
  }

  async lockStageImage(imageName: string, options?: OperationOptions): Promise<void> {
    if (!this.#o.locks) {
      this.#log.debug({ image: imageName }, 'no lock manager: stage image not locked');
      return;
    }
    if (this.#closed) throw new StorageManagerError('OPTIONS_INVALID', 'the storage manager is closed');
    const handle = await this.#o.locks.acquire(imageLockName(imageName), {
      ...signalOf(options),
      shared: true,
    });
    this.#heldLocks.push(handle);
  }

  #requireLocal(): LocalImages {
    if (!this.#o.local)
      throw new StorageManagerError(
        'OPTIONS_INVALID',
        'storage manager option local: fetching a stage needs the local image store',
        { details: { key: 'local' } },
      );
    return this.#o.local;
  }

  /** werf's doFetchStage: a fresh description (null → STAGE_NOT_FOUND), then the image into the local store. */
  async #fetchFrom(storage: StagesStorage, stage: StageRef, options?: OperationOptions): Promise<StageDesc> {
    const local = this.#requireLocal();
    const desc = await storage.getStageDesc(stage, signalOf(options));
    if (!desc)
      throw new StorageManagerError(
        'STAGE_NOT_FOUND',
        `stage ${stageIdString(stage)} is not in ${storage.address}`,
        { details: { stage: stageIdString(stage), storage: storage.address } },
      );
    await storage.fetchImage(stage, { ...signalOf(options), local });
    return desc;
  }

  async #fetchFromCacheStorage(
    storage: StagesStorage,
    stage: StageRef,
    options?: OperationOptions,
  ): Promise<StageDesc> {
    const local = this.#requireLocal();
    let desc: StageDesc | null;
    if (await storage.shouldFetchImage(stage, { ...signalOf(options), local })) {
      this.#log.info(
        { stage: stageIdString(stage), storage: storage.address },
        'fetching the stage from a cache storage',
      );
      desc = await this.#fetchFrom(storage, stage, options);
      if (this.manifestCache) await this.manifestCache.put(storage.address, desc.info, options);
    } else {
      desc = await this.#describe(stage, storage, [], this.manifestCache, options);
      if (!desc)
        throw new StorageManagerError(
          'STAGE_NOT_FOUND',
          `stage ${stageIdString(stage)} is not in ${storage.address}`,
          { details: { stage: stageIdString(stage), storage: storage.address } },
        );
    }
    await this.lruImages.accessImage(storage.stageImageName(stage), options);
    return desc;
  }

  async fetchStage(stage: StageRef, options?: OperationOptions): Promise<FetchStageResult> {
    const local = this.#requireLocal();
    const primaryName = this.primary.stageImageName(stage);
    await this.lockStageImage(primaryName, options);

    if (!(await this.primary.shouldFetchImage(stage, { ...signalOf(options), local }))) {
      this.#log.info({ image: primaryName }, 'stage image is local already: not fetched');
      await this.lruImages.accessImage(primaryName, options);
      return { from: 'local', storage: undefined, desc: null };
    }

    const toRefill: StagesStorage[] = [];
    let result: FetchStageResult | undefined;
    for (const cacheStorage of this.cache) {
      let cacheDesc: StageDesc;
      try {
        cacheDesc = await this.#fetchFromCacheStorage(cacheStorage, stage, options);
      } catch (error) {
        if (!isStowageError(error, 'STAGE_NOT_FOUND'))
          this.#log.warn(
            { stage: stageIdString(stage), storage: cacheStorage.address, err: error },
            'unable to fetch the stage from a cache storage',
          );
        toRefill.push(cacheStorage);
        continue;
      }
      const desc = convertStageDesc(cacheDesc, this.primary);
      try {
        await this.#localCopyAsPrimary(cacheStorage, stage, options);
        if (this.manifestCache) await this.manifestCache.put(this.primary.address, desc.info, options);
        await this.lruImages.accessImage(primaryName, options);
      } catch (error) {
        this.#log.warn(
          { stage: stageIdString(stage), storage: cacheStorage.address, err: error },
          'unable to record the stage fetched from a cache storage as the primary one',
        );
        toRefill.push(cacheStorage);
        continue;
      }
      result = { from: 'cache', storage: cacheStorage, desc };
      break;
    }

    if (!result) {
      let desc: StageDesc;
      try {
        desc = await this.#fetchFrom(this.primary, stage, options);
      } catch (error) {
        if (isStowageError(error, 'STAGE_NOT_FOUND')) {
          this.#log.error({ image: primaryName }, 'the stage image is no longer in the primary storage');
          throw new StorageManagerError(
            'UNEXPECTED_STORAGE_STATE',
            `unexpected stages storage state: stage image ${primaryName} is no longer available`,
            { cause: error, details: { stage: stageIdString(stage), storage: this.primary.address } },
          );
        }
        if (isStowageError(error, 'BROKEN_IMAGE')) {
          this.#log.error(
            { image: primaryName, storage: this.primary.address, err: error },
            'broken stage image: rejecting it in the primary storage',
          );
          await this.primary.rejectStage(stage, signalOf(options));
          throw new StorageManagerError(
            'UNEXPECTED_STORAGE_STATE',
            `unexpected stages storage state: stage image ${primaryName} is broken and was rejected`,
            {
              cause: error,
              details: { stage: stageIdString(stage), storage: this.primary.address, rejected: true },
            },
          );
        }
        throw error;
      }
      await this.lruImages.accessImage(primaryName, options);
      result = { from: 'primary', storage: this.primary, desc };
    }

    for (const cacheStorage of toRefill) {
      try {
        await this.#copyStage(this.primary, cacheStorage, stage, options);
      } catch (error) {
        this.#log.warn(
          { stage: stageIdString(stage), storage: cacheStorage.address, err: error },
          'unable to copy the stage into a cache storage',
        );
      }
    }
    return result;
  }

  /**
   * The image fetched from a cache storage, named in the local store as the
   * primary's stage (werf meant to rename it and left that commented out):
   * within one store the blobs are mounted, not copied.
   */
  async #localCopyAsPrimary(from: StagesStorage, stage: StageRef, options?: OperationOptions): Promise<void> {
    const local = this.#requireLocal();
    const repositoryOf = (storage: StagesStorage) => local.repository ?? localRepositoryOf(storage.address);
    const source = {
      registry: local.registry,
      repository: repositoryOf(from),
      reference: from.stageTag(stage),
    };
    const target = {
      registry: local.registry,
      repository: repositoryOf(this.primary),
      tag: this.primary.stageTag(stage),
    };
    if (source.repository === target.repository && source.reference === target.tag) return;
    await copyImage(source, target, signalOf(options));
  }

  /** werf's CopyStage between two storages: the copy, the destination's manifest cache entry and the LRU record. */
  async #copyStage(
    from: StagesStorage,
    to: StagesStorage,
    stage: StageRef,
    options?: OperationOptions,
  ): Promise<StageDesc> {
    const desc = await to.copyFromStorage(from, stage, signalOf(options));
    if (!desc)
      throw new StorageManagerError(
        'STAGE_NOT_FOUND',
        `stage ${stageIdString(stage)} could not be copied from ${from.address} to ${to.address}: it is not there`,
        { details: { stage: stageIdString(stage), from: from.address, to: to.address } },
      );
    if (this.manifestCache) await this.manifestCache.put(to.address, desc.info, options);
    await this.lruImages.accessImage(to.stageImageName(stage), options);
    return desc;
  }

  async copyStageIntoCacheStorages(
    stage: StageRef,
    options?: CopyIntoStorageOptions & { readonly storages?: readonly StagesStorage[] },
  ): Promise<void> {
    for (const cacheStorage of options?.storages ?? this.cache) {
      try {
        await this.#copyStage(this.primary, cacheStorage, stage, options);
      } catch (error) {
        this.#log.warn(
          { stage: options?.name ?? stageIdString(stage), storage: cacheStorage.address, err: error },
          'unable to copy the stage into a cache storage',
        );
      }
    }
  }

  async copyStageIntoFinalStorage(stage: StageRef, options?: CopyIntoFinalOptions): Promise<StageDesc> {
    const final = this.#requireFinal();
    const list = await this.#finalStageList(options);
    const key = stageIdString(stage);
    const name = options?.name ?? key;
    if (list.has(key)) {
      const desc = await final.getStageDesc(stage, { ...signalOf(options), cache: true });
      if (desc) {
        this.#log.info({ stage: name, storage: final.address }, 'the stage is in the final repo already');
        return desc;
      }
    }
    if (options?.shouldBeBuilt)
      throw new StorageManagerError(
        'NOT_IN_FINAL_REPO',
        `${name} with digest ${stage.digest} does not exist in the final repo ${final.address} (should-be-built mode)`,
        { details: { stage: key, storage: final.address } },
      );
    this.#log.info({ stage: name, storage: final.address }, 'copying the stage into the final repo');
    const desc = await this.#copyStage(this.primary, final, stage, options);
    list.set(key, toStageID(stage));
    return desc;
  }

  async copySuitableByDigestStage(
    desc: StageDesc,
    options: OperationOptions & { readonly source: StagesStorage; readonly destination?: StagesStorage },
  ): Promise<StageDesc | null> {
    const destination = options.destination ?? this.primary;
    await this.#copyStage(options.source, destination, desc.stageID, options);
    return await this.#describe(desc.stageID, destination, this.cache, this.manifestCache, options);
  }

  // --- for-each helpers over records ---

  async forEachRemoveImageMetadata(
    imageNameOrId: string,
    stageIdCommits: ReadonlyMap<string, readonly string[]> | Readonly<Record<string, readonly string[]>>,
    callback: ForEachCallback<{ readonly commit: string; readonly stageId: string }>,
    options?: OperationOptions,
  ): Promise<void> {
    const entries: [string, readonly string[]][] =
      stageIdCommits instanceof Map
        ? [...(stageIdCommits as ReadonlyMap<string, readonly string[]>).entries()]
        : Object.entries(stageIdCommits as Readonly<Record<string, readonly string[]>>);
    const tasks = entries.flatMap(([stageId, commits]) => commits.map((commit) => ({ commit, stageId })));
    await this.#each(
      tasks,
      (task, o) =>
        this.primary.removeImageMetadata(
          { imageName: imageNameOrId, commit: task.commit, stageId: task.stageId },
          o,
        ),
      callback,
      options,
    );
  }

  async forEachRemoveManagedImage(
    imageNames: readonly string[],
    callback: ForEachCallback<string>,
    options?: OperationOptions,
  ): Promise<void> {
    await this.#each(imageNames, (name, o) => this.primary.removeManagedImage(name, o), callback, options);
  }

  async forEachGetImportMetadata(
    ids: readonly string[],
    callback: (id: string, metadata: ImportMetadata | null, error: unknown) => void | Promise<void>,
    options?: OperationOptions,
  ): Promise<void> {
    await this.#eachValue(ids, (id, o) => this.primary.getImportMetadata(id, o), callback, options);
  }

  async forEachRemoveImportMetadata(
    ids: readonly string[],
    callback: ForEachCallback<string>,
    options?: OperationOptions,
  ): Promise<void> {
    await this.#each(ids, (id, o) => this.primary.removeImportMetadata(id, o), callback, options);
  }

  async forEachGetCustomTagMetadata(
    ids: readonly string[],
    callback: (id: string, metadata: CustomTagMetadata | null, error: unknown) => void | Promise<void>,
    options?: OperationOptions,
  ): Promise<void> {
    await this.#eachValue(ids, (id, o) => this.primary.getCustomTagMetadata(id, o), callback, options);
  }

  /** Runs `run` on each item, `maxWorkers` at once, and reports each item with its failure (or none). */
  async #each<T>(
    items: readonly T[],
    run: (item: T, options: OperationOptions) => Promise<unknown>,
    callback: ForEachCallback<T>,
    options?: OperationOptions,
  ): Promise<void> {
    await forEachLimited(
      items,
      this.maxWorkers,
      async (item) => callback(item, await settle(run(item, signalOf(options)))),
      options?.signal,
    );
  }

  /** `#each` for reads: each item is reported with what was read (`null` when nothing or on failure). */
  async #eachValue<T, V>(
    items: readonly T[],
    run: (item: T, options: OperationOptions) => Promise<V | null>,
    callback: (item: T, value: V | null, error: unknown) => void | Promise<void>,
    options?: OperationOptions,
  ): Promise<void> {
    await forEachLimited(
      items,
      this.maxWorkers,
      async (item) => {
        const [value, error] = await settleValue(run(item, signalOf(options)));
        await callback(item, value ?? null, error);
      },
      options?.signal,
    );
  }

  async forEachDeleteCustomTag(
    ids: readonly string[],
    callback: ForEachCallback<string>,
    options?: OperationOptions,
  ): Promise<void> {
    await forEachLimited(
      ids,
      this.maxWorkers,
      async (id) => {
        const deleted = await settle(this.primary.deleteCustomTag(id, signalOf(options)));
        if (deleted !== undefined) {
          await callback(id, deleted);
          return;
        }
        const unregistered = await settle(this.primary.unregisterCustomTag(id, signalOf(options)));
        await callback(id, unregistered);
      },
      options?.signal,
    );
  }

  // --- retries and stage IDs ---

  async retryOnUnexpectedStorageState<T>(
    fn: (attempt: number) => Promise<T>,
    options?: RetryOnUnexpectedStateOptions,
  ): Promise<T> {
    return await retry(fn, {
      attempts: this.#o.unexpectedStateRetries + 1,
      baseDelayMs: this.#o.unexpectedStateBackoffMs,
      maxDelayMs: 30_000,
      clock: this.#o.clock,
      shouldRetry: (error) => isStowageError(error, 'UNEXPECTED_STORAGE_STATE'),
      onRetry: ({ attempt, error, delayMs }) => {
        this.#log.warn({ attempt, delayMs, err: error }, 'unexpected stages storage state: retrying');
        for (const storage of [this.primary, ...this.cache, ...this.secondary]) storage.dropCache();
        if (this.#o.final) this.#o.final.dropCache();
      },
      ...(options?.signal ? { signal: options.signal } : {}),
    });
  }

  async generateStageID(digest: string, options?: OperationOptions): Promise<StageID> {
    return await this.createStage({ digest, push: async (stage) => stage, ...signalOf(options) });
  }

  async createStage<T>(options: CreateStageOptions<T>): Promise<T> {
    return await withNewStageID(
      {
        storage: this.primary,
        digest: options.digest,
        clock: this.#o.clock,
        ...(this.#o.locks ? { locks: this.#o.locks } : {}),
        ...signalOf(options),
      },
      options.push,
    );
  }

  async close(): Promise<void> {
    this.#closed = true;
    const held = this.#heldLocks;
    this.#heldLocks = [];
    const failures: unknown[] = [];
    for (const handle of held) {
      try {
        await handle.release();
      } catch (error) {
        failures.push(error);
      }
    }
    if (failures.length > 0) throw failures[0];
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}

/** The rejection of `promise`, or undefined when it fulfils. */
async function settle(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
    return undefined;
  } catch (error) {
    return error ?? new Error('rejected without a reason');
  }
}

async function settleValue<T>(promise: Promise<T>): Promise<[T | undefined, unknown]> {
  try {
    return [await promise, undefined];
  } catch (error) {
    return [undefined, error ?? new Error('rejected without a reason')];
  }
}
