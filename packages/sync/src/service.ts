/**
 * Sync as a service (the server's `sync:` section): a pass per upstream every
 * `pollInterval`, the first at start, never two of one upstream at once,
 * stopped cleanly.
 */
import { type Logger, type Registry, resolveLogger } from '@stowage/oci';
import type { SyncConfig } from './config.js';
import { runSyncPass } from './pass.js';
import type { SyncReport } from './report.js';
import type { ConnectUpstream } from './upstream.js';

export interface SyncServiceOptions {
  readonly config: SyncConfig;
  readonly destination: Registry;
  readonly stateDir?: string;
  readonly connect?: ConnectUpstream;
  readonly logger?: Logger;
  /** Called after every pass. */
  readonly onReport?: (report: SyncReport, upstream: number) => void;
}

export interface SyncService {
  /** Runs a pass of every periodic upstream now (joins one already running); resolves with their reports. */
  runNow(): Promise<SyncReport[]>;
  /** The last report of each upstream, by position in `registries`. */
  readonly lastReports: ReadonlyMap<number, SyncReport>;
  /** Stops the timers, aborts running passes and waits for them. */
  stop(): Promise<void>;
}

export function startSyncService(options: SyncServiceOptions): SyncService {
  const logger = resolveLogger(options.logger);
  const controller = new AbortController();
  const periodic = options.config.enabled
    ? options.config.upstreams.filter((u) => u.pollIntervalMs !== undefined)
    : [];
  const running = new Map<number, Promise<SyncReport>>();
  const timers = new Map<number, NodeJS.Timeout>();
  const lastReports = new Map<number, SyncReport>();
  let stopped = false;

  const schedule = (index: number, delayMs: number) => {
    if (stopped) return;
    const timer = setTimeout(() => void pass(index).catch(() => undefined), delayMs);
    timer.unref();
    timers.set(index, timer);
  };

  const pass = (index: number): Promise<SyncReport> => {
    const current = running.get(index);
    if (current) return current;
    const upstream = periodic.find((u) => u.index === index);
    clearTimeout(timers.get(index));
    const promise = runSyncPass({
      config: options.config,
      destination: options.destination,
      upstreams: [index],
      signal: controller.signal,
      ...(options.stateDir ? { stateDir: options.stateDir } : {}),
      ...(options.connect ? { connect: options.connect } : {}),
      ...(options.logger ? { logger: options.logger } : {}),
    })
      .then((report) => {
        lastReports.set(index, report);
        logger.info(
          {
            upstream: index,
            synced: report.synced,
            skipped: report.skipped,
            failed: report.failed,
            errors: report.errors.length,
          },
          'sync pass done',
        );
        options.onReport?.(report, index);
        return report;
      })
      .catch((error: unknown) => {
        if (!controller.signal.aborted) logger.error({ upstream: index, err: error }, 'sync pass failed');
        throw error;
      })
      .finally(() => {
        running.delete(index);
        if (upstream?.pollIntervalMs !== undefined) schedule(index, upstream.pollIntervalMs);
      });
    running.set(index, promise);
    return promise;
  };

  for (const upstream of periodic) schedule(upstream.index, 0);

  return {
    lastReports,
    runNow: () => Promise.all(periodic.map((u) => pass(u.index))),
    async stop() {
      stopped = true;
      for (const timer of timers.values()) clearTimeout(timer);
      timers.clear();
      controller.abort(new Error('sync service stopped'));
      await Promise.allSettled([...running.values()]);
    },
  };
}
