/**
 * On demand: a pull-through `Registry` over a local one. A manifest the local
 * store lacks (by tag or digest), or a tag last checked longer ago than the
 * upstream's `checkIntervalMs`, is fetched from the upstreams in order;
 * concurrent requests for one image share one fetch, and a hit within the
 * interval asks the upstream nothing. Blobs of an image being fetched stream
 * to the first client while they are stored; a digest mismatch at the end
 * aborts that response and commits nothing.
 *
 * A fetch reads the image's manifests (an index's children, filtered by
 * platform; referrers when asked for) and answers the client from memory at
 * once; its blobs are stored in the background, and only when all of them are
 * in are the manifests committed: children by digest, then the top manifest
 * (sparse when the filter left children out), the tag last.
 */
import {
  type BlobContent,
  type BlobInfo,
  createLimiter,
  type Descriptor,
  type Digest,
  type GetBlobOptions,
  type GetManifestOptions,
  hasUploadSessions,
  isIndexMediaType,
  isNonDistributableMediaType,
  isStowageError,
  type Limiter,
  type Logger,
  type ManifestContent,
  manifestMediaTypes,
  manifestReferences,
  type OperationOptions,
  type ParsedManifest,
  type Platform,
  parseDigest,
  parseManifest,
  parseManifestReference,
  parseRepositoryName,
  platformMatches,
  type Registry,
  type RegistryCapabilities,
  RegistryError,
  type ResolvedLogger,
  raceSignal,
  resolveLogger,
} from '@stowage/oci';
import type { SyncConfig } from './config.js';
import { SyncError } from './errors.js';
import { teeToClient } from './internal/pull-tee.js';
import { isConnectionFailure, UpstreamPool } from './internal/pull-upstream.js';
import { SingleFlight } from './internal/single-flight.js';
import { matchLocalRepository } from './rules.js';
import { type ConnectUpstream, clientConnector } from './upstream.js';

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
  /**
   * What happens to pushes and deletes: `pass` (the default) hands them to the
   * local store; `refuse` refuses them with `UNSUPPORTED`, as distribution's
   * proxy mode does.
   */
  readonly writes?: 'pass' | 'refuse';
  /**
   * How many tags' last upstream checks are remembered (default 10,000). Past
   * it, checks whose interval is over go first, then the oldest: a forgotten
   * tag costs one upstream HEAD at its next pull, never a wrong answer.
   */
  readonly checkedTagsMax?: number;
}

/** A pull-through registry: the local store's contract, with misses fetched from upstream. */
export interface PullThroughRegistry extends Registry {
  /** Resolves once no fetch is running in the background (every image asked for is committed or given up). */
  settled(): Promise<void>;
  /** Stops background fetches and closes the upstream clients (not the local store). */
  close(): Promise<void>;
}

/** Where a local repository comes from on one upstream. */
interface Route {
  readonly pool: UpstreamPool;
  /** The upstream repository name. */
  readonly remote: string;
  readonly platforms: readonly Platform[] | undefined;
  readonly referrers: boolean;
  /** Bounds the background blob transfers against this upstream. */
  readonly limiter: Limiter;
}

/** One manifest of a fetched image. */
interface GraphNode {
  readonly content: ManifestContent;
  readonly parsed: ParsedManifest;
  /** The children kept (all of an index's, unless a platform filter dropped some). */
  readonly children: readonly Digest[];
  /** Some children were left out: the index is committed sparse. */
  readonly dropped: boolean;
  /** Blobs to store (non-distributable layers left out). */
  readonly blobs: readonly Descriptor[];
  /** Non-distributable layers: never fetched. */
  readonly foreign: readonly Descriptor[];
}

interface Graph {
  readonly top: GraphNode;
  /** Every manifest, by digest, in discovery order. */
  readonly nodes: ReadonlyMap<Digest, GraphNode>;
}

interface Fetch {
  /** The top manifest, available before anything is committed. */
  readonly top: Promise<ManifestContent>;
}

interface PendingBlob {
  readonly descriptor: Descriptor;
  readonly route: Route;
  readonly foreign: boolean;
  holders: number;
}

interface PendingManifest {
  readonly content: ManifestContent;
  holders: number;
}

type TagAnswer = { route: Route; descriptor: Descriptor } | { failure: unknown };

interface TagCheck {
  readonly at: number;
  readonly intervalMs: number;
}

/** The last upstream check of each tag, bounded (see `checkedTagsMax`). */
class CheckTimes {
  readonly #max: number;
  readonly #now: () => number;
  /** In the order they were set: the first is the oldest. */
  readonly #map = new Map<string, TagCheck>();

  constructor(max: number, now: () => number) {
    if (!Number.isInteger(max) || max < 1) {
      throw new SyncError('OPTIONS_INVALID', `checkedTagsMax must be a positive integer, not ${max}`);
    }
    this.#max = max;
    this.#now = now;
  }

  get size(): number {
    return this.#map.size;
  }

  get(key: string): TagCheck | undefined {
    return this.#map.get(key);
  }

  set(key: string, check: TagCheck): void {
    this.#map.delete(key);
    this.#map.set(key, check);
    if (this.#map.size <= this.#max) return;
    // Down to nine tenths at once, so a full map is swept once per tenth of its size, not per set.
    const keep = Math.floor(this.#max * 0.9);
    const at = this.#now();
    for (const [k, c] of this.#map) if (at - c.at >= c.intervalMs) this.#map.delete(k);
    for (const k of this.#map.keys()) {
      if (this.#map.size <= keep) break;
      this.#map.delete(k);
    }
  }

  delete(key: string): void {
    this.#map.delete(key);
  }
}

const NOT_FOUND_CODES = ['MANIFEST_UNKNOWN', 'NAME_UNKNOWN', 'BLOB_UNKNOWN'];

function isNotFound(error: unknown): boolean {
  return NOT_FOUND_CODES.some((code) => isStowageError(error, code));
}

function descriptorOf(content: ManifestContent): Descriptor {
  return { digest: content.digest, mediaType: content.mediaType, size: content.size };
}

function signalOf(...signals: (AbortSignal | undefined)[]): AbortSignal {
  const present = signals.filter((s): s is AbortSignal => s !== undefined);
  return present.length === 1 ? (present[0] as AbortSignal) : AbortSignal.any(present);
}

/** An upstream that could not be reached, as the `Registry` contract names it (`UNAVAILABLE`, a 503). */
function unavailable(repository: string, reference: string, cause: unknown): RegistryError {
  return new RegistryError('UNAVAILABLE', `no upstream of ${repository} answered for ${reference}`, {
    retryable: true,
    cause,
    details: { repository, reference },
  });
}

function checkOptions(options: PullThroughOptions): void {
  if (!options || typeof options !== 'object') throw new SyncError('OPTIONS_INVALID', 'options are required');
  if (!options.local || typeof options.local.getManifest !== 'function') {
    throw new SyncError('OPTIONS_INVALID', 'local must be a Registry', { details: { key: 'local' } });
  }
  if (!options.config || !Array.isArray(options.config.upstreams)) {
    throw new SyncError('OPTIONS_INVALID', 'config must be a parsed SyncConfig', {
      details: { key: 'config' },
    });
  }
  if (options.writes !== undefined && options.writes !== 'pass' && options.writes !== 'refuse') {
    throw new SyncError(
      'OPTIONS_INVALID',
      `writes must be 'pass' or 'refuse', not ${String(options.writes)}`,
      {
        details: { key: 'writes' },
      },
    );
  }
}

export function createPullThroughRegistry(options: PullThroughOptions): PullThroughRegistry {
  checkOptions(options);
  const local = options.local;
  const now = options.now ?? Date.now;
  const logger: ResolvedLogger = resolveLogger(options.logger);
  let defaultConnector: ConnectUpstream | undefined;
  // Made when first needed, so a test (or a config without on-demand upstreams) never builds clients.
  const connect: ConnectUpstream =
    options.connect ??
    ((upstream, url) => {
      defaultConnector ??= clientConnector();
      return defaultConnector(upstream, url);
    });
  const pools = (options.config.enabled === false ? [] : options.config.upstreams)
    .filter((upstream) => upstream.onDemand)
    .map((upstream) => ({
      pool: new UpstreamPool({ upstream, connect, now, logger }),
      limiter: createLimiter(Math.max(1, upstream.concurrency)),
    }));

  const controller = new AbortController();
  const background = new Set<Promise<unknown>>();
  const fetches = new Map<string, Fetch>();
  const transfers = new SingleFlight<string, BlobInfo>();
  const tagChecks = new SingleFlight<string, TagAnswer>();
  const pendingManifests = new Map<string, PendingManifest>();
  const pendingBlobs = new Map<string, PendingBlob>();
  const checked = new CheckTimes(options.checkedTagsMax ?? 10_000, now);
  let closed = false;
  let capabilities: Promise<RegistryCapabilities> | undefined;
  let warnedSparse = false;

  const key = (repository: string, reference: string) => `${repository}@${reference}`;

  function open(signal?: AbortSignal): void {
    if (closed) throw new RegistryError('UNAVAILABLE', 'the pull-through registry is closed');
    signal?.throwIfAborted();
  }

  function localCapabilities(): Promise<RegistryCapabilities> {
    capabilities ??= local.capabilities();
    capabilities.catch(() => {
      capabilities = undefined;
    });
    return capabilities;
  }

  function track<T>(promise: Promise<T>): Promise<T> {
    const tracked = promise.then(
      () => {},
      () => {},
    );
    background.add(tracked);
    tracked.then(() => background.delete(tracked));
    return promise;
  }

  /** The upstreams a local repository comes from, in configured order. */
  function routesFor(repository: string): Route[] {
    parseRepositoryName(repository);
    const routes: Route[] = [];
    for (const { pool, limiter } of pools) {
      const match = matchLocalRepository(pool.upstream, repository);
      if (!match) continue;
      routes.push({
        pool,
        remote: match.remote,
        platforms: match.rule?.platforms ?? pool.upstream.platforms,
        referrers: match.rule?.referrers ?? pool.upstream.referrers,
        limiter,
      });
    }
    return routes;
  }

  // --- pending content (answered before it is committed) ---

  function holdGraph(repository: string, graph: Graph, route: Route): () => void {
    const manifestKeys: string[] = [];
    const blobKeys: string[] = [];
    for (const node of graph.nodes.values()) {
      const manifestKey = key(repository, node.content.digest);
      const held = pendingManifests.get(manifestKey);
      if (held) held.holders++;
      else pendingManifests.set(manifestKey, { content: node.content, holders: 1 });
      manifestKeys.push(manifestKey);
      for (const [descriptors, foreign] of [
        [node.blobs, false],
        [node.foreign, true],
      ] as const) {
        for (const descriptor of descriptors) {
          const blobKey = key(repository, descriptor.digest);
          const blob = pendingBlobs.get(blobKey);
          if (blob) blob.holders++;
          else pendingBlobs.set(blobKey, { descriptor, route, foreign, holders: 1 });
          blobKeys.push(blobKey);
        }
      }
    }
    return () => {
      for (const manifestKey of manifestKeys) {
        const held = pendingManifests.get(manifestKey);
        if (held && --held.holders === 0) pendingManifests.delete(manifestKey);
      }
      for (const blobKey of blobKeys) {
        const blob = pendingBlobs.get(blobKey);
        if (blob && --blob.holders === 0) pendingBlobs.delete(blobKey);
      }
    };
  }

  // --- reading an image from upstream ---

  async function readGraph(route: Route, reference: string, signal: AbortSignal): Promise<Graph> {
    const localCaps = await localCapabilities();
    let platforms = route.platforms;
    const nodes = new Map<Digest, GraphNode>();

    const read = async (ref: string, filter: boolean): Promise<GraphNode> => {
      const content = await route.pool.use(
        (registry) => registry.getManifest(route.remote, ref, { accept: manifestMediaTypes, signal }),
        signal,
      );
      const target = parseManifestReference(ref);
      // The bytes must be those of the digest asked for: an upstream cannot hand over another manifest.
      const parsed = parseManifest(content.bytes, {
        mediaType: content.mediaType,
        ...('digest' in target ? { digest: target.digest } : {}),
      });
      let children: Digest[] = [];
      let dropped = false;
      let blobs: Descriptor[] = [];
      let foreign: Descriptor[] = [];
      if (parsed.kind === 'index') {
        const wanted = filter ? platforms : undefined;
        const kept = parsed.manifest.manifests.filter((child) => {
          if (!wanted || isIndexMediaType(child.mediaType)) return true;
          const platform = child.platform;
          return platform !== undefined && wanted.some((want) => platformMatches(want, platform));
        });
        dropped = kept.length < parsed.manifest.manifests.length;
        if (dropped && !localCaps.sparseIndex) {
          // The local store could not hold the index without them: every child is fetched instead.
          if (!warnedSparse) {
            warnedSparse = true;
            logger.warn(
              { upstream: route.pool.name, repository: route.remote, digest: parsed.digest },
              'the local store has no sparse indexes: the platform filter is not applied',
            );
          }
          platforms = undefined;
          dropped = false;
          children = parsed.manifest.manifests.map((child) => child.digest);
        } else {
          children = kept.map((child) => child.digest);
        }
      } else {
        const references = manifestReferences(parsed);
        const layers = [parsed.manifest.config, ...parsed.manifest.layers];
        foreign = layers.filter((layer) => isNonDistributableMediaType(layer.mediaType));
        blobs = references.blobs.filter((blob) => !isNonDistributableMediaType(blob.mediaType));
      }
      const node: GraphNode = {
        content: {
          digest: parsed.digest,
          mediaType: parsed.mediaType,
          size: parsed.size,
          bytes: parsed.bytes,
        },
        parsed,
        children: [...new Set(children)],
        dropped,
        blobs,
        foreign,
      };
      if (!nodes.has(node.content.digest)) nodes.set(node.content.digest, node);
      return nodes.get(node.content.digest) as GraphNode;
    };

    const discover = async (node: GraphNode, filter: boolean) => {
      const next = node.children.map((digest) => ({ digest, filter }));
      if (route.referrers) {
        try {
          const referrers = await route.pool.use(
            (registry) => registry.listReferrers(route.remote, node.content.digest, { signal }),
            signal,
          );
          // A referrer is an artifact of its own: no platform filter inside it.
          for (const referrer of referrers.manifests) next.push({ digest: referrer.digest, filter: false });
        } catch (error) {
          if (signal.aborted) throw error;
          logger.debug(
            { upstream: route.pool.name, repository: route.remote, digest: node.content.digest, err: error },
            'upstream referrers not listed',
          );
        }
      }
      return next;
    };

    const top = await read(reference, true);
    let frontier = await discover(top, true);
    while (frontier.length > 0) {
      const wanted = frontier.filter(
        (entry, i) => !nodes.has(entry.digest) && frontier.findIndex((f) => f.digest === entry.digest) === i,
      );
      const level = await Promise.all(
        wanted.map(async (entry) => discover(await read(entry.digest, entry.filter), entry.filter)),
      );
      frontier = level.flat().filter((entry) => !nodes.has(entry.digest));
    }
    return { top, nodes };
  }

  // --- blobs ---

  /** Fetches a blob from upstream into the local store (one transfer per repository and digest). */
  function transferBlob(
    repository: string,
    digest: Digest,
    routes: readonly Route[],
    size?: number,
  ): Promise<BlobInfo> {
    return transfers.run(key(repository, digest), () =>
      track(
        (async () => {
          const signal = controller.signal;
          const source = await upstreamBlob(repository, digest, routes, signal);
          if ('mounted' in source) return source.mounted;
          try {
            return await local.putBlob(repository, source.content.stream, {
              digest,
              size: size ?? source.content.size,
              signal,
            });
          } catch (error) {
            // A store that refused before reading to the end leaves the upstream response open.
            source.content.stream.destroy();
            throw error;
          }
        })(),
      ),
    );
  }

  /**
   * The blob's bytes from the first upstream that has it, or the local blob
   * mounted from another repository when the store holds it already.
   */
  async function upstreamBlob(
    repository: string,
    digest: Digest,
    routes: readonly Route[],
    signal: AbortSignal,
  ): Promise<{ content: BlobContent } | { mounted: BlobInfo }> {
    try {
      const mounted = await local.mountBlob(repository, digest, { signal });
      if (mounted) return { mounted };
    } catch (error) {
      if (signal.aborted) throw error;
    }
    let failure: unknown;
    for (const route of routes) {
      try {
        const content = await route.pool.use(
          (registry) => registry.getBlob(route.remote, digest, { signal }),
          signal,
        );
        return { content };
      } catch (error) {
        if (signal.aborted) throw error;
        failure ??= error;
        if (!isNotFound(error)) failure = error;
      }
    }
    if (failure && !isNotFound(failure)) throw failure;
    throw new RegistryError('BLOB_UNKNOWN', `blob ${digest} is not in ${repository} nor upstream`, {
      details: { repository, digest },
    });
  }

  /** A background blob of a fetch: waits for a transfer in flight, else starts one within the upstream's bound. */
  async function backgroundBlob(repository: string, descriptor: Descriptor, route: Route): Promise<void> {
    const blobKey = key(repository, descriptor.digest);
    const running = transfers.get(blobKey);
    if (running) {
      await running;
      return;
    }
    await route.limiter(async () => {
      const inFlight = transfers.get(blobKey);
      if (inFlight) {
        await inFlight;
        return;
      }
      controller.signal.throwIfAborted();
      if (await local.headBlob(repository, descriptor.digest, { signal: controller.signal })) return;
      await transferBlob(repository, descriptor.digest, [route], descriptor.size);
    });
  }

  /**
   * Starts a transfer whose bytes also stream to this client (tee), the last
   * chunk held back until the store has committed. When another transfer of
   * the digest got there first, or the blob could be mounted locally, the
   * client is served from the local store once it is in.
   */
  function teeBlob(
    repository: string,
    digest: Digest,
    routes: readonly Route[],
    opts: GetBlobOptions,
    size?: number,
  ): Promise<BlobContent> {
    let handOff: ((content: BlobContent) => void) | undefined;
    const handed = new Promise<BlobContent>((resolve) => {
      handOff = resolve;
    });
    let teeing = false;
    const stored = transfers.run(key(repository, digest), () =>
      track(
        (async () => {
          const signal = controller.signal;
          const source = await upstreamBlob(repository, digest, routes, signal);
          if ('mounted' in source) return source.mounted;
          const expected = size ?? source.content.size;
          const tee = teeToClient({
            source: source.content.stream,
            store: (body) => local.putBlob(repository, body, { digest, size: expected, signal }),
            signal,
            ...(opts.signal ? { clientSignal: opts.signal } : {}),
          });
          teeing = true;
          handOff?.({ digest, size: expected, stream: tee.client });
          return await tee.stored;
        })(),
      ),
    );
    return Promise.race([
      handed,
      // Settled before any bytes flowed to this client: the error, or the stored blob.
      stored.then(() => (teeing ? handed : local.getBlob(repository, digest, opts))),
    ]);
  }

  // --- manifests ---

  /** Starts (or joins) the fetch of one image; resolves with its top manifest, before anything is committed. */
  function fetchImage(
    repository: string,
    reference: string,
    route: Route,
    options: { digest?: Digest; tag?: string },
  ): Promise<ManifestContent> {
    const fetchKey = key(repository, reference);
    const running = fetches.get(fetchKey);
    if (running) return running.top;
    const signal = controller.signal;
    let answer!: (content: ManifestContent) => void;
    let refuse!: (error: unknown) => void;
    const top = new Promise<ManifestContent>((resolve, reject) => {
      answer = resolve;
      refuse = reject;
    });
    top.catch(() => {});
    fetches.set(fetchKey, { top });
    const job = (async () => {
      let release: (() => void) | undefined;
      try {
        const graph = await readGraph(route, options.digest ?? reference, signal);
        release = holdGraph(repository, graph, route);
        answer(graph.top.content);
        const blobs = new Map<Digest, Descriptor>();
        for (const node of graph.nodes.values()) for (const blob of node.blobs) blobs.set(blob.digest, blob);
        const results = await Promise.allSettled(
          [...blobs.values()].map((descriptor) => backgroundBlob(repository, descriptor, route)),
        );
        const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
        if (failed) throw failed.reason;
        await commitGraph(repository, graph, options.tag, signal);
        if (options.tag) {
          checked.set(key(repository, options.tag), {
            at: now(),
            intervalMs: route.pool.upstream.checkIntervalMs,
          });
        }
        logger.info(
          { upstream: route.pool.name, repository, reference, digest: graph.top.content.digest },
          'image fetched on demand',
        );
      } catch (error) {
        refuse(error);
        if (!signal.aborted) {
          logger.warn(
            { upstream: route.pool.name, repository, reference, err: error },
            'on-demand fetch failed',
          );
        }
      } finally {
        release?.();
        fetches.delete(fetchKey);
      }
    })();
    track(job);
    return top;
  }

  /** Commits a fetched image in the seed's order: children by digest, each index after them, the tag last. */
  async function commitGraph(repository: string, graph: Graph, tag: string | undefined, signal: AbortSignal) {
    const order: GraphNode[] = [];
    const seen = new Set<Digest>();
    const visit = (node: GraphNode) => {
      if (seen.has(node.content.digest)) return;
      seen.add(node.content.digest);
      for (const child of node.children) {
        const next = graph.nodes.get(child);
        if (next) visit(next);
      }
      order.push(node);
    };
    visit(graph.top);
    // Referrers (and their children) after their subjects.
    for (const node of graph.nodes.values()) visit(node);
    const put = (reference: string, node: GraphNode) =>
      local.putManifest(repository, reference, {
        bytes: node.content.bytes,
        mediaType: node.content.mediaType,
        ...(node.dropped ? { sparse: true } : {}),
        signal,
      });
    for (const node of order) await put(node.content.digest, node);
    if (tag) await put(tag, graph.top);
  }

  async function localManifest(
    repository: string,
    reference: string,
    opts: GetManifestOptions,
  ): Promise<ManifestContent | undefined> {
    try {
      return await local.getManifest(repository, reference, opts);
    } catch (error) {
      if (isNotFound(error)) return undefined;
      throw error;
    }
  }

  /** A manifest by digest the local store lacks: from the first upstream that has it. */
  async function fetchByDigest(
    repository: string,
    digest: Digest,
    routes: readonly Route[],
    signal: AbortSignal | undefined,
  ): Promise<ManifestContent> {
    let failure: unknown;
    for (const route of routes) {
      try {
        return await raceSignal(fetchImage(repository, digest, route, { digest }), signal);
      } catch (error) {
        if (signal?.aborted || controller.signal.aborted) throw error;
        if (!isNotFound(error)) failure ??= error;
      }
    }
    if (failure) throw isConnectionFailure(failure) ? unavailable(repository, digest, failure) : failure;
    throw new RegistryError('MANIFEST_UNKNOWN', `manifest ${digest} is not in ${repository} nor upstream`, {
      details: { repository, reference: digest },
    });
  }

  /** Asks the upstreams, in order, what a tag points at (one question at a time per repository and tag). */
  function headUpstreamTag(repository: string, tag: string, routes: readonly Route[]): Promise<TagAnswer> {
    return tagChecks.run(key(repository, tag), () => track(askUpstreamTag(tag, routes, controller.signal)));
  }

  async function askUpstreamTag(
    tag: string,
    routes: readonly Route[],
    signal: AbortSignal,
  ): Promise<TagAnswer> {
    let failure: unknown;
    for (const route of routes) {
      try {
        const descriptor = await route.pool.use(
          (registry) => registry.headManifest(route.remote, tag, { accept: manifestMediaTypes, signal }),
          signal,
        );
        if (descriptor) return { route, descriptor };
      } catch (error) {
        if (signal.aborted) throw error;
        failure ??= error;
      }
    }
    return { failure };
  }

  async function resolveManifest(
    repository: string,
    reference: string,
    opts: GetManifestOptions,
  ): Promise<ManifestContent | undefined> {
    open(opts.signal);
    const target = parseManifestReference(reference);
    parseRepositoryName(repository);
    if ('digest' in target) {
      const pending = pendingManifests.get(key(repository, target.digest));
      if (pending) return pending.content;
    } else {
      const running = fetches.get(key(repository, target.tag));
      if (running) return await raceSignal(running.top, opts.signal);
    }
    const routes = routesFor(repository);
    // No upstream covers it: the local store answers, refusals and all.
    if (routes.length === 0) return await local.getManifest(repository, reference, opts);
    const held = await localManifest(repository, reference, opts);
    if ('digest' in target)
      return held ?? (await fetchByDigest(repository, target.digest, routes, opts.signal));

    const tagKey = key(repository, target.tag);
    const check = checked.get(tagKey);
    if (held && check && now() - check.at < check.intervalMs) return held;
    const remote = await raceSignal(headUpstreamTag(repository, target.tag, routes), opts.signal);
    const intervalMs = (routes[0] as Route).pool.upstream.checkIntervalMs;
    if ('failure' in remote) {
      if (held) {
        // An outage (or a tag gone upstream) never breaks pulls of what is cached; asked again after the interval.
        checked.set(tagKey, { at: now(), intervalMs });
        if (remote.failure) {
          logger.warn(
            { repository, tag: target.tag, err: remote.failure },
            'upstream failed; serving the cached tag',
          );
        }
        return held;
      }
      if (remote.failure && !isNotFound(remote.failure)) {
        throw isConnectionFailure(remote.failure)
          ? unavailable(repository, reference, remote.failure)
          : remote.failure;
      }
      return undefined;
    }
    if (held && held.digest === remote.descriptor.digest) {
      checked.set(tagKey, { at: now(), intervalMs: remote.route.pool.upstream.checkIntervalMs });
      return held;
    }
    try {
      return await raceSignal(
        fetchImage(repository, target.tag, remote.route, {
          digest: remote.descriptor.digest,
          tag: target.tag,
        }),
        opts.signal,
      );
    } catch (error) {
      if (!held || opts.signal?.aborted || controller.signal.aborted) throw error;
      logger.warn(
        { repository, tag: target.tag, err: error },
        'fetching the new upstream image failed; serving the cached tag',
      );
      return held;
    }
  }

  // --- writes ---

  const refuseWrites = options.writes === 'refuse';
  function writable(repository: string): void {
    open();
    if (refuseWrites) {
      throw new RegistryError(
        'UNSUPPORTED',
        `${repository} is served by a pull-through cache: writes are refused`,
        {
          details: { repository },
        },
      );
    }
  }

  const registry: PullThroughRegistry = {
    origin: local.origin,

    async capabilities(opts?: OperationOptions) {
      open(opts?.signal);
      return await local.capabilities(opts);
    },

    async listRepositories(opts) {
      open(opts?.signal);
      return await local.listRepositories(opts);
    },

    async listTags(repository, opts) {
      open(opts?.signal);
      return await local.listTags(repository, opts);
    },

    async deleteTag(repository, tag, opts) {
      writable(repository);
      checked.delete(key(repository, tag));
      return await local.deleteTag(repository, tag, opts);
    },

    async getManifest(repository, reference, opts = {}) {
      const content = await resolveManifest(repository, reference, opts);
      if (content) return content;
      throw new RegistryError('MANIFEST_UNKNOWN', `manifest ${reference} is not in ${repository}`, {
        details: { repository, reference },
      });
    },

    async headManifest(repository, reference, opts = {}) {
      const parsed = parseManifestReference(reference);
      // A local hit by digest needs no bytes: a HEAD is enough.
      if ('digest' in parsed && !pendingManifests.has(key(repository, parsed.digest))) {
        open(opts.signal);
        const found = await local.headManifest(repository, reference, opts).catch((error: unknown) => {
          if (isNotFound(error)) return undefined;
          throw error;
        });
        if (found || routesFor(repository).length === 0) return found;
      }
      try {
        const content = await resolveManifest(repository, reference, opts);
        return content ? descriptorOf(content) : undefined;
      } catch (error) {
        if (isNotFound(error)) return undefined;
        throw error;
      }
    },

    async putManifest(repository, reference, opts) {
      writable(repository);
      const target = parseManifestReference(reference);
      if ('tag' in target) checked.delete(key(repository, target.tag));
      return await local.putManifest(repository, reference, opts);
    },

    async deleteManifest(repository, digest, opts) {
      writable(repository);
      return await local.deleteManifest(repository, digest, opts);
    },

    async listReferrers(repository, digest, opts) {
      open(opts?.signal);
      return await local.listReferrers(repository, digest, opts);
    },

    async headBlob(repository, digest, opts = {}) {
      open(opts.signal);
      parseDigest(digest);
      const found = await local.headBlob(repository, digest, opts).catch((error: unknown) => {
        if (isNotFound(error)) return undefined;
        throw error;
      });
      if (found) return found;
      const blobKey = key(repository, digest);
      const pending = pendingBlobs.get(blobKey);
      if (pending) return pending.foreign ? undefined : { digest, size: pending.descriptor.size };
      const running = transfers.get(blobKey);
      if (running) return await raceSignal(running, opts.signal);
      const signal = signalOf(opts.signal, controller.signal);
      for (const route of routesFor(repository)) {
        try {
          const info = await route.pool.use((r) => r.headBlob(route.remote, digest, { signal }), signal);
          if (info) return { digest, size: info.size };
        } catch (error) {
          if (signal.aborted) throw error;
          logger.debug(
            { repository, digest, upstream: route.pool.name, err: error },
            'upstream blob HEAD failed',
          );
        }
      }
      return undefined;
    },

    async getBlob(repository, digest, opts: GetBlobOptions = {}) {
      open(opts.signal);
      parseDigest(digest);
      const blobKey = key(repository, digest);
      const running = transfers.get(blobKey);
      if (running) {
        await raceSignal(running, opts.signal);
        return await local.getBlob(repository, digest, opts);
      }
      try {
        return await local.getBlob(repository, digest, opts);
      } catch (error) {
        if (!isNotFound(error)) throw error;
        const pending = pendingBlobs.get(blobKey);
        if (pending?.foreign) throw error;
        const routes = pending ? [pending.route] : routesFor(repository);
        if (routes.length === 0) throw error;
        const started = transfers.get(blobKey);
        if (started || opts.range) {
          // A range is served from the stored blob once the whole of it is in.
          await raceSignal(
            started ?? transferBlob(repository, digest, routes, pending?.descriptor.size),
            opts.signal,
          );
          return await local.getBlob(repository, digest, opts);
        }
        try {
          return await raceSignal(
            teeBlob(repository, digest, routes, opts, pending?.descriptor.size),
            opts.signal,
          );
        } catch (failure) {
          if (isConnectionFailure(failure) && !opts.signal?.aborted)
            throw unavailable(repository, digest, failure);
          throw failure;
        }
      }
    },

    async putBlob(repository, body, opts) {
      writable(repository);
      return await local.putBlob(repository, body, opts);
    },

    async mountBlob(repository, digest, opts) {
      writable(repository);
      return await local.mountBlob(repository, digest, opts);
    },

    async deleteBlob(repository, digest, opts) {
      writable(repository);
      return await local.deleteBlob(repository, digest, opts);
    },

    async settled() {
      while (background.size > 0) await Promise.all([...background]);
    },

    async close() {
      if (closed) return;
      closed = true;
      controller.abort(new RegistryError('UNAVAILABLE', 'the pull-through registry is closed'));
      while (background.size > 0) await Promise.all([...background]);
      await Promise.all(pools.map(({ pool }) => pool.close()));
    },
  };

  if (hasUploadSessions(local)) {
    registry.startUpload = async (repository, opts) => {
      writable(repository);
      return await local.startUpload(repository, opts);
    };
    registry.appendUpload = async (repository, id, opts) => {
      writable(repository);
      return await local.appendUpload(repository, id, opts);
    };
    registry.getUpload = async (repository, id, opts) => {
      writable(repository);
      return await local.getUpload(repository, id, opts);
    };
    registry.finishUpload = async (repository, id, opts) => {
      writable(repository);
      return await local.finishUpload(repository, id, opts);
    };
    registry.cancelUpload = async (repository, id, opts) => {
      writable(repository);
      return await local.cancelUpload(repository, id, opts);
    };
  }
  const lock = local.lock;
  if (lock) {
    registry.lock = async (name, opts) => {
      open(opts?.signal);
      return await lock.call(local, name, opts);
    };
  }
  const garbageCollect = local.garbageCollect;
  if (garbageCollect) {
    registry.garbageCollect = async (opts) => {
      open(opts?.signal);
      return await garbageCollect.call(local, opts);
    };
  }
  return registry;
}
