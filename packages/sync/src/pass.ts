/**
 * One periodic pass: for each upstream with content rules, pick the first URL
 * that answers, list its repositories (the catalog, or `repositories`), keep
 * those a rule covers, list their tags, keep those the rule keeps, and for each
 * compare the upstream digest (one HEAD) with the local tag: copy only what
 * changed. Images are synced with the upstream's concurrency; a failure stays
 * with its image and is reported.
 */
import type { Logger, Registry } from '@stowage/oci';
import type { SyncConfig } from './config.js';
import type { SyncEvent, SyncReport } from './report.js';
import type { ConnectUpstream } from './upstream.js';

export interface SyncPassOptions {
  readonly config: SyncConfig;
  /** Where images are mirrored to. Needs upload sessions (the staging area). */
  readonly destination: Registry;
  /** Only these upstreams (positions in `registries`); default every one with content rules (or `repositories`). */
  readonly upstreams?: readonly number[];
  /** A directory for the staging journal (crash recovery). Without it a crash leaves staging to the store's upload purge. */
  readonly stateDir?: string;
  /** Default: registry clients (`clientConnector()`). */
  readonly connect?: ConnectUpstream;
  readonly onEvent?: (event: SyncEvent) => void;
  readonly signal?: AbortSignal;
  readonly logger?: Logger;
}

export async function runSyncPass(_options: SyncPassOptions): Promise<SyncReport> {
  throw new Error('not built yet');
}
