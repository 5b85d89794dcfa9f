import { join } from 'node:path';
import { werfHome } from './locks/index.js';

/** Where werf keeps its host state (spec A.12), and the directories of it the manager uses. */
export interface WerfHome {
  /** `$WERF_HOME`, else `~/.werf`. */
  readonly root: string;
  /** `<home>/local_cache`. */
  readonly localCache: string;
  /** `<home>/local_cache/manifests/5`: one directory per storage. */
  readonly manifestCache: string;
  /** `<home>/local_cache/lru_images/1`. */
  readonly lruImages: string;
  /** `<home>/service/locks`: werf's host lock files. */
  readonly locks: string;
}

/** werf's `ManifestCacheVersion`. */
export const MANIFEST_CACHE_VERSION = '5';
/** The version directory of werf's LRU images cache. */
export const LRU_IMAGES_CACHE_VERSION = '1';

/** werf's home: `home` when given, else `$WERF_HOME`, else `~/.werf`. */
export function resolveWerfHome(home?: string): WerfHome {
  const root = home ?? werfHome();
  const localCache = join(root, 'local_cache');
  return {
    root,
    localCache,
    manifestCache: join(localCache, 'manifests', MANIFEST_CACHE_VERSION),
    lruImages: join(localCache, 'lru_images', LRU_IMAGES_CACHE_VERSION),
    locks: join(root, 'service', 'locks'),
  };
}
