import type { StoreCaches } from './caches.js';
import type { ContentStore } from './content-store.js';
import type { IndexFlusher } from './index-flush.js';
import type { Layouts } from './layout.js';
import type { ManifestMetas } from './manifest-meta.js';
import type { ResolvedImageStoreOptions } from './options.js';
import type { StorePaths } from './paths.js';
import type { TagFiles } from './tags.js';

/** The parts of one open store, shared by the modules that serve each API area. */
export interface StoreParts {
  readonly options: ResolvedImageStoreOptions;
  readonly paths: StorePaths;
  readonly caches: StoreCaches;
  readonly metas: ManifestMetas;
  readonly tags: TagFiles;
  readonly content: ContentStore;
  readonly layouts: Layouts;
  readonly flusher: IndexFlusher;
  /** Throws unless the store is open and writable (`UNAVAILABLE`, `DENIED`). */
  writable(): void;
  /** Throws unless the store is open (`UNAVAILABLE`). */
  readable(): void;
}
