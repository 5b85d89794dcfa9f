/**
 * Sync as a service (the server's `sync:` section): a pass per upstream every
 * `pollInterval`, never two of one upstream at once, stopped cleanly.
 */
import type { Logger, Registry } from '@stowage/oci';
import type { SyncConfig } from './config.js';
import type { SyncReport } from './report.js';
import type { ConnectUpstream } from './upstream.js';

export interface SyncServiceOptions {
  readonly config: SyncConfig;
  readonly destination: Registry;
  readonly stateDir?: string;
  readonly connect?: ConnectUpstream;
  readonly logger?: Logger;
  /** Called after every pass. */
  readonly onReport?: (report: SyncReport) => void;
}

export interface SyncService {
  /** Runs a pass of every periodic upstream now (joins one already running). */
  runNow(): Promise<SyncReport>;
  /** The last report of each upstream. */
  readonly lastReports: ReadonlyMap<number, SyncReport>;
  /** Stops the timers, aborts running passes and waits for them. */
  stop(): Promise<void>;
}

export function startSyncService(_options: SyncServiceOptions): SyncService {
  throw new Error('not built yet');
}
