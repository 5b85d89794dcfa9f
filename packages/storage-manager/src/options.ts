import { type Clock, type Logger, type ResolvedLogger, resolveLogger, systemClock } from '@stowage/oci';
import type { LocalImages, StageDesc, StagesStorage } from '@stowage/stages-storage';
import { StorageManagerError } from './errors.js';
import { resolveWerfHome, type WerfHome } from './home.js';
import type { LockManager } from './locks/index.js';

/** Picks the stage to reuse among those of one digest; null to build a new one. */
export type StageSelector = (
  stages: readonly StageDesc[],
) => StageDesc | null | undefined | Promise<StageDesc | null | undefined>;

export interface StorageManagerOptions {
  /** The werf project name; must be the primary storage's. */
  readonly project: string;
  /** Where stages are built into (werf's `--repo`, or the local storage). */
  readonly primary: StagesStorage;
  /** werf's `--final-repo`: where the stages of final images are copied. */
  readonly final?: StagesStorage;
  /** Read-only storages stages may be copied from (werf's `--secondary-repo`). */
  readonly secondary?: readonly StagesStorage[];
  /** Storages read before the primary and refilled when they miss (werf's `--cache-repo`). */
  readonly cache?: readonly StagesStorage[];
  /** Tasks run at once by the listing and for-each operations. Default 1, as werf without `--parallel`. */
  readonly parallelTasksLimit?: number;
  /** The local image store (werf's container backend): where `fetchStage` puts stage images. */
  readonly local?: LocalImages;
  /** werf's home, where the local caches live. Default `$WERF_HOME`, else `~/.werf`. */
  readonly home?: string;
  /** Keep stage descriptions in werf's local manifest cache. Default: on unless the primary is the local storage (`:local`). */
  readonly manifestCache?: boolean;
  /** Host or PostgreSQL locks: the stage image locks, the cache file locks, the stage ID lock. */
  readonly locks?: LockManager;
  readonly logger?: Logger;
  /** Time for stage IDs, cache timestamps and the retry backoff. Default the system clock. */
  readonly clock?: Clock;
  /** Retries of `retryOnUnexpectedStorageState` after the first attempt. Default 3, at most 100. */
  readonly unexpectedStateRetries?: number;
  /** First backoff of those retries, doubling up to 30 s. Default 500 ms. */
  readonly unexpectedStateBackoffMs?: number;
  /** The default selector of `selectSuitableStage`. Default: the newest by creationTs. */
  readonly selector?: StageSelector;
}

export interface ResolvedStorageManagerOptions {
  readonly project: string;
  readonly primary: StagesStorage;
  readonly final: StagesStorage | undefined;
  readonly secondary: readonly StagesStorage[];
  readonly cache: readonly StagesStorage[];
  readonly parallelTasksLimit: number;
  readonly local: LocalImages | undefined;
  readonly home: WerfHome;
  readonly manifestCache: boolean | undefined;
  readonly locks: LockManager | undefined;
  readonly logger: ResolvedLogger;
  readonly clock: Clock;
  readonly unexpectedStateRetries: number;
  readonly unexpectedStateBackoffMs: number;
  readonly selector: StageSelector;
}

const invalid = (key: string, message: string): StorageManagerError =>
  new StorageManagerError('OPTIONS_INVALID', `storage manager option ${key}: ${message}`, {
    details: { key },
  });

function isStagesStorage(value: unknown): value is StagesStorage {
  if (typeof value !== 'object' || value === null) return false;
  const s = value as Partial<StagesStorage>;
  return (
    typeof s.address === 'string' &&
    typeof s.getStageDesc === 'function' &&
    typeof s.listStageIDs === 'function' &&
    typeof s.stageImageName === 'function'
  );
}

function storageList(key: string, value: unknown): readonly StagesStorage[] {
  if (value === undefined) return [];
  if (!Array.isArray(value)) throw invalid(key, 'must be a list of stages storages');
  value.forEach((s, i) => {
    if (!isStagesStorage(s)) throw invalid(`${key}[${i}]`, 'must be a stages storage');
  });
  return value as readonly StagesStorage[];
}

function count(key: string, value: unknown, fallback: number, range: { min: number; max: number }): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < range.min || value > range.max)
    throw invalid(key, `must be an integer from ${range.min} to ${range.max}`);
  return value;
}

/** The newest stage by creationTs (the first of equals). */
export const newestStage: StageSelector = (stages) => {
  let best: StageDesc | null = null;
  for (const stage of stages) if (!best || stage.stageID.creationTs > best.stageID.creationTs) best = stage;
  return best;
};

export function resolveOptions(options: StorageManagerOptions): ResolvedStorageManagerOptions {
  if (typeof options !== 'object' || options === null) throw invalid('options', 'must be an object');
  if (!isStagesStorage(options.primary)) throw invalid('primary', 'must be a stages storage');
  if (typeof options.project !== 'string' || options.project === '')
    throw invalid('project', 'must name the werf project');
  if (options.primary.project !== options.project)
    throw invalid(
      'project',
      `is ${JSON.stringify(options.project)} but the primary storage's project is ${JSON.stringify(options.primary.project)}`,
    );
  if (options.final !== undefined && !isStagesStorage(options.final))
    throw invalid('final', 'must be a stages storage');
  if (
    options.local !== undefined &&
    (typeof options.local !== 'object' ||
      options.local === null ||
      typeof options.local.registry?.getManifest !== 'function')
  )
    throw invalid('local', 'must be { registry, repository? } over the local image store');
  if (options.home !== undefined && (typeof options.home !== 'string' || options.home === ''))
    throw invalid('home', 'must be a directory path');
  if (options.manifestCache !== undefined && typeof options.manifestCache !== 'boolean')
    throw invalid('manifestCache', 'must be a boolean');
  if (options.locks !== undefined && typeof options.locks?.acquire !== 'function')
    throw invalid('locks', 'must be a lock manager');
  if (
    options.clock !== undefined &&
    (typeof options.clock?.now !== 'function' || typeof options.clock.sleep !== 'function')
  )
    throw invalid('clock', 'must have now() and sleep()');
  if (options.selector !== undefined && typeof options.selector !== 'function')
    throw invalid('selector', 'must be a function');
  return {
    project: options.project,
    primary: options.primary,
    final: options.final,
    secondary: storageList('secondary', options.secondary),
    cache: storageList('cache', options.cache),
    parallelTasksLimit: count('parallelTasksLimit', options.parallelTasksLimit, 1, { min: 1, max: 1024 }),
    local: options.local,
    home: resolveWerfHome(options.home),
    manifestCache: options.manifestCache,
    locks: options.locks,
    logger: resolveLogger(options.logger),
    clock: options.clock ?? systemClock,
    unexpectedStateRetries: count('unexpectedStateRetries', options.unexpectedStateRetries, 3, {
      min: 0,
      max: 100,
    }),
    unexpectedStateBackoffMs: count('unexpectedStateBackoffMs', options.unexpectedStateBackoffMs, 500, {
      min: 0,
      max: 60_000,
    }),
    selector: options.selector ?? newestStage,
  };
}
