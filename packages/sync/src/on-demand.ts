/**
 * On demand: a pull-through `Registry` over a local one. A manifest the local
 * store lacks (by tag or digest), or a tag last checked longer ago than the
 * upstream's `checkIntervalMs`, is fetched from the upstreams in order;
 * concurrent requests for one image share one fetch, and a hit within the
 * interval asks the upstream nothing. Blobs of an image being fetched stream
 * to the first client while they are stored; a digest mismatch at the end
 * aborts that response and commits nothing.
 */
import type { Logger, Registry } from '@stowage/oci';
import type { SyncConfig } from './config.js';
import type { ConnectUpstream } from './upstream.js';

export interface PullThroughOptions {
  /** The store images are kept in and served from. */
  readonly local: Registry;
  /** Upstreams with `onDemand: true` are used, in order. */
  readonly config: SyncConfig;
  /** Default: registry clients (`clientConnector()`). */
  readonly connect?: ConnectUpstream;
  /** Milliseconds since the epoch; default `Date.now`. For tests. */
  readonly now?: () => number;
  readonly logger?: Logger;
}

/** A pull-through registry: the local store's contract, with misses fetched from upstream. */
export interface PullThroughRegistry extends Registry {
  /** Stops background fetches and closes the upstream clients (not the local store). */
  close(): Promise<void>;
}

export function createPullThroughRegistry(_options: PullThroughOptions): PullThroughRegistry {
  throw new Error('not built yet');
}
