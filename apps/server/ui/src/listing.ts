// A catalog or tag list, fetched page after page (1000 entries each) while the view renders
// what has come so far. Listings are kept for a minute so going back to a list is instant.
import { catalogUrl, fetchListPage, tagsUrl } from './api.js';
import type { ApiError } from './errors.js';

/** Entries asked for per request. */
const PAGE_SIZE = 1000;
/** How long a finished listing is reused before it is fetched again. */
const FRESH_MS = 60_000;
/** How long a failed one is (the first page's prefetch and its render share one 401). */
const FAILED_FRESH_MS = 2_000;

export interface Listing {
  /** What has come so far, in the server's order. */
  readonly items: readonly string[];
  /** True once the last page came, or a page failed (`error`). */
  readonly done: boolean;
  readonly error: ApiError | Error | undefined;
  /** Called after every page, and when an entry is removed; returns the unsubscribe function. */
  subscribe(listener: () => void): () => void;
  /** Drops an entry (a tag just deleted). */
  remove(item: string): void;
}

interface CachedListing extends Listing {
  readonly finishedAt: number | undefined;
  abort(): void;
}

function createListing(first: () => string, field: 'repositories' | 'tags'): CachedListing {
  const items: string[] = [];
  const listeners = new Set<() => void>();
  const controller = new AbortController();
  let done = false;
  let error: ApiError | Error | undefined;
  let finishedAt: number | undefined;
  const notify = () => {
    for (const listener of listeners) listener();
  };
  const listing: CachedListing = {
    items,
    get done() {
      return done;
    },
    get error() {
      return error;
    },
    get finishedAt() {
      return finishedAt;
    },
    subscribe(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    remove(item) {
      const at = items.indexOf(item);
      if (at === -1) return;
      items.splice(at, 1);
      notify();
    },
    abort() {
      controller.abort();
    },
  };
  void (async () => {
    let url: string | undefined;
    try {
      url = first();
      while (url !== undefined) {
        const page = await fetchListPage(url, { field, signal: controller.signal });
        items.push(...page.items);
        url = page.next;
        if (url !== undefined) notify();
      }
    } catch (caught) {
      if (controller.signal.aborted) return;
      error = caught instanceof Error ? caught : new Error(String(caught));
    }
    done = true;
    finishedAt = Date.now();
    notify();
  })();
  return listing;
}

const cache = new Map<string, CachedListing>();

function cached(key: string, make: () => CachedListing): Listing {
  const existing = cache.get(key);
  const stale =
    existing?.finishedAt !== undefined &&
    Date.now() - existing.finishedAt > (existing.error ? FAILED_FRESH_MS : FRESH_MS);
  if (existing && !stale) return existing;
  existing?.abort();
  const listing = make();
  cache.set(key, listing);
  return listing;
}

export function repositoryListing(): Listing {
  return cached('catalog', () => createListing(() => catalogUrl(PAGE_SIZE), 'repositories'));
}

export function tagListing(repository: string): Listing {
  return cached(`tags\n${repository}`, () => createListing(() => tagsUrl(repository, PAGE_SIZE), 'tags'));
}

/** Forgets every listing (the session changed: what may be seen changed with it). */
export function forgetListings(): void {
  for (const listing of cache.values()) listing.abort();
  cache.clear();
}

/** Forgets one repository's tags (a manifest was deleted: every tag on it went with it). */
export function forgetTagListing(repository: string): void {
  const key = `tags\n${repository}`;
  cache.get(key)?.abort();
  cache.delete(key);
}
