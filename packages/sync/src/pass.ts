/**
 * One periodic pass: for each upstream with content rules, pick the first URL
 * that answers, list its repositories (the catalog, or `repositories`), keep
 * those a rule covers, list their tags, keep those the rule keeps, and for each
 * compare the upstream digest (one HEAD) with the local tag: copy only what
 * changed. Images are synced with the upstream's concurrency; a failure stays
 * with its image and is reported.
 */
import { join } from 'node:path';
import { createLimiter, type Logger, manifestMediaTypes, type Registry, resolveLogger } from '@stowage/oci';
import { describeError, syncImage } from './commit.js';
import type { SyncConfig, UpstreamConfig } from './config.js';
import { SyncError } from './errors.js';
import { connectFirst } from './mirrors.js';
import type { ImageOutcome, SyncEvent, SyncReport } from './report.js';
import { filterTags, matchUpstreamRepository, type RuleMatch } from './rules.js';
import { type JournalFile, openJournal, recoverStaging } from './staging.js';
import { type ConnectUpstream, clientConnector } from './upstream.js';

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

type PassError = SyncReport['errors'][number];

/** The upstreams a pass covers: those asked for, else every one with something periodic to mirror. */
function selected(config: SyncConfig, only: readonly number[] | undefined): UpstreamConfig[] {
  if (only) {
    return only.map((index) => {
      const upstream = config.upstreams.find((u) => u.index === index);
      if (!upstream) {
        throw new SyncError('OPTIONS_INVALID', `there is no upstream registries[${index}]`, {
          details: { index },
        });
      }
      return upstream;
    });
  }
  return config.upstreams.filter((u) => u.content.length > 0 || (u.repositories?.length ?? 0) > 0);
}

export async function runSyncPass(options: SyncPassOptions): Promise<SyncReport> {
  const started = Date.now();
  const { destination, signal } = options;
  const logger = resolveLogger(options.logger);
  const upstreams = selected(options.config, options.upstreams);
  const connect =
    options.connect ?? clientConnector({ ...(options.logger ? { client: { logger: options.logger } } : {}) });
  const images: ImageOutcome[] = [];
  const errors: PassError[] = [];
  let journal: JournalFile | undefined;
  if (options.stateDir) {
    const dir = join(options.stateDir, 'staging');
    const recovered = await recoverStaging(dir, destination);
    if (recovered.cancelled > 0 || recovered.journals > 0) {
      logger.info(
        { cancelled: recovered.cancelled, journals: recovered.journals },
        'cancelled the staging a dead sync left',
      );
    }
    if (recovered.interrupted.length > 0) {
      logger.warn(
        { repositories: recovered.interrupted },
        'a dead sync was opening upload sessions here: any it opened is left to the store purge of old uploads',
      );
    }
    journal = await openJournal(dir);
  }
  try {
    if (options.config.enabled) {
      for (const upstream of upstreams) {
        signal?.throwIfAborted();
        await passUpstream({ upstream, destination, connect, journal, images, errors, options, logger });
      }
    }
  } finally {
    await journal?.close();
  }
  const count = (status: ImageOutcome['status']) => images.filter((i) => i.status === status).length;
  return {
    startedAt: new Date(started).toISOString(),
    durationMs: Date.now() - started,
    images,
    synced: count('synced'),
    skipped: count('skipped'),
    failed: count('failed'),
    bytesCopied: images.reduce((sum, i) => sum + i.bytesCopied, 0),
    errors,
  };
}

interface UpstreamPass {
  readonly upstream: UpstreamConfig;
  readonly destination: Registry;
  readonly connect: ConnectUpstream;
  readonly journal: JournalFile | undefined;
  readonly images: ImageOutcome[];
  readonly errors: PassError[];
  readonly options: SyncPassOptions;
  readonly logger: ReturnType<typeof resolveLogger>;
}

/** Every page of a listing (a store's full listing when it does not page). */
async function listAll(
  list: (last: string | undefined) => Promise<{ items: readonly string[]; next?: string }>,
) {
  const items: string[] = [];
  let last: string | undefined;
  for (;;) {
    const page = await list(last);
    items.push(...page.items);
    if (!page.next || page.next === last) return items;
    last = page.next;
  }
}

async function passUpstream(pass: UpstreamPass): Promise<void> {
  const { upstream, options, errors, logger } = pass;
  const signal = options.signal;
  const withSignal = signal ? { signal } : {};
  let source: { url: string; registry: Registry };
  try {
    source = await connectFirst(upstream, pass.connect, withSignal);
  } catch (error) {
    if (signal?.aborted) throw signal.reason;
    errors.push({ upstream: upstream.urls[0] ?? `registries[${upstream.index}]`, ...describeError(error) });
    return;
  }
  const url = source.url;
  try {
    let names: readonly string[];
    try {
      names =
        upstream.repositories ??
        (await listAll((last) =>
          source.registry.listRepositories({ ...withSignal, ...(last ? { last } : {}) }),
        ));
    } catch (error) {
      if (signal?.aborted) throw signal.reason;
      errors.push({ upstream: url, ...describeError(error) });
      return;
    }
    const matches = names
      .map((name) => matchUpstreamRepository(upstream, name))
      .filter((m): m is RuleMatch => !!m);
    const limit = createLimiter(upstream.concurrency);
    const planned: Promise<void>[] = [];
    await Promise.all(
      matches.map((match) =>
        limit(async () => {
          signal?.throwIfAborted();
          let tags: string[];
          try {
            const all = await listAll((last) =>
              source.registry.listTags(match.remote, { ...withSignal, ...(last ? { last } : {}) }),
            );
            tags = filterTags(match.rule, all);
          } catch (error) {
            if (signal?.aborted) throw signal.reason;
            errors.push({ upstream: url, repository: match.remote, ...describeError(error) });
            return;
          }
          options.onEvent?.({ type: 'plan', upstream: url, images: tags.length });
          // Images go through the same limiter, after the listings queued before them.
          for (const tag of tags) planned.push(limit(() => passImage(pass, source, match, tag)));
        }),
      ),
    );
    await Promise.all(planned);
  } finally {
    logger.debug({ upstream: url }, 'upstream pass done');
    // Clients this pass made are its own to close; an injected connector's registries are the caller's.
    if (!options.connect) await source.registry.close?.();
  }
}

async function passImage(
  pass: UpstreamPass,
  source: { url: string; registry: Registry },
  match: RuleMatch,
  tag: string,
): Promise<void> {
  const { options, upstream } = pass;
  const signal = options.signal;
  signal?.throwIfAborted();
  options.onEvent?.({ type: 'image-start', upstream: source.url, repository: match.local, reference: tag });
  let outcome: ImageOutcome;
  try {
    const remote = await source.registry.headManifest(match.remote, tag, {
      accept: manifestMediaTypes,
      ...(signal ? { signal } : {}),
    });
    const platforms = match.rule.platforms ?? upstream.platforms;
    outcome = await syncImage({
      source: { registry: source.registry, repository: match.remote, reference: tag },
      destination: { registry: pass.destination, repository: match.local, tag },
      upstream: source.url,
      ...(remote ? { remote } : {}),
      ...(platforms ? { platforms } : {}),
      referrers: match.rule.referrers,
      ...(pass.journal ? { journal: pass.journal } : {}),
      ...(signal ? { signal } : {}),
      ...(options.logger ? { logger: options.logger } : {}),
      ...(options.onEvent ? { onBytes: (bytes: number) => options.onEvent?.({ type: 'bytes', bytes }) } : {}),
    });
  } catch (error) {
    if (signal?.aborted) throw signal.reason;
    outcome = {
      upstream: source.url,
      remote: match.remote,
      repository: match.local,
      reference: tag,
      status: 'failed',
      blobsCopied: 0,
      blobsSkipped: 0,
      bytesCopied: 0,
      manifests: 0,
      error: describeError(error),
    };
  }
  pass.images.push(outcome);
  options.onEvent?.({ type: 'image-done', outcome });
}
