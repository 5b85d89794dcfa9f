import { setMaxListeners } from 'node:events';
import {
  createLimiter,
  type Descriptor,
  type Digest,
  digestOf,
  hasUploadSessions,
  isIndexMediaType,
  isStowageError,
  type ManifestContent,
  manifestMediaTypes,
  manifestReferences,
  type ParsedManifest,
  parseManifest,
  platformMatches,
  type Registry,
  type RegistryCapabilities,
} from '@stowage/oci';
import {
  abandonStaged,
  type BlobStaging,
  type BlobTransfer,
  commitStaged,
  transferBlob,
} from './copy-blobs.js';
import { publishManifest } from './diagnostics.js';
import { CopyError } from './errors.js';

import { type CopyOptions, listenerBound, type ResolvedCopyOptions, resolveOptions } from './options.js';

/** Where an image comes from: a reference (tag or digest) in a repository of any `Registry`. */
export interface CopySource {
  readonly registry: Registry;
  readonly repository: string;
  readonly reference: string;
}

/** Where it goes; without `tag` the image is stored by digest only. */
export interface CopyDestination {
  readonly registry: Registry;
  readonly repository: string;
  readonly tag?: string;
}

export interface CopyResult {
  /** Digest of the top manifest at the destination. */
  readonly digest: Digest;
  readonly mediaType: string;
  /** Digest of the top manifest at the source: equal to `digest` unless the index was rewritten. */
  readonly sourceDigest: Digest;
  /** The top index was pushed with new bytes (a platform filter with `rewriteIndex`). */
  readonly indexRewritten: boolean;
  /** The top index was pushed as a sparse index: its own bytes, some children left out. */
  readonly sparse: boolean;
  /** Manifests pushed (children, the top manifest and referrers). */
  readonly manifests: number;
  readonly blobsCopied: number;
  readonly blobsSkipped: number;
  readonly blobsMounted: number;
  readonly bytesCopied: number;
}

/** One manifest of the graph being copied, read from the source. */
interface Node {
  /** Its digest at the source. */
  readonly digest: Digest;
  readonly content: ManifestContent;
  readonly parsed: ParsedManifest;
  /** For an index, which entries of `manifests` are copied (index order). */
  readonly selected: readonly boolean[];
  /** Digests of the children copied. */
  readonly children: readonly Digest[];
  /** Some children are left out by the platform filter. */
  readonly dropped: boolean;
  readonly blobs: readonly Descriptor[];
  /** Non-distributable layers moved when the source holds them (empty with `nonDistributable: 'skip'`). */
  readonly optional: readonly Descriptor[];
}

/** What was pushed for a node. */
interface Pushed {
  readonly digest: Digest;
  readonly size: number;
  readonly mediaType: string;
  readonly rewritten: boolean;
  readonly sparse: boolean;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/**
 * Copies an image or an index, with its blobs, from one `Registry` to another
 * (or within one). Manifest bytes are pushed exactly as read, so digests are
 * identical; blobs the destination has are skipped, blobs of the same origin
 * are mounted, the rest stream through (never buffered whole), one transfer
 * per digest. The whole manifest graph is read first, so a copy the
 * destination cannot take fails before anything is written. Children go
 * before their index and the top manifest (and tag) is pushed last, so a
 * failure or an abort never leaves a tag pointing at an incomplete image.
 */
export async function copyImage(
  source: CopySource,
  destination: CopyDestination,
  options?: CopyOptions,
): Promise<CopyResult> {
  const resolved = resolveOptions(options);
  resolved.signal?.throwIfAborted();
  const controller = new AbortController();
  const signal = resolved.signal ? AbortSignal.any([resolved.signal, controller.signal]) : controller.signal;
  // Every operation in flight listens on it (a few listeners each): not a leak past Node's default of 10.
  setMaxListeners(listenerBound(resolved.concurrency), signal);
  const inFlight = new Set<Promise<unknown>>();
  // The first failure stops every sibling at once: queued operations never start.
  const fail = (error: unknown) => {
    if (!controller.signal.aborted) controller.abort(error);
  };
  const copy = new Copy({ source, destination, options: resolved, signal, inFlight, fail });
  try {
    return await copy.run();
  } catch (error) {
    fail(error);
    // Return only once nothing started by this copy can still write.
    while (inFlight.size > 0) await Promise.allSettled([...inFlight]);
    await copy.abandon();
    if (resolved.signal?.aborted) throw resolved.signal.reason;
    throw controller.signal.reason;
  }
}

class Copy {
  readonly #source: CopySource;
  readonly #destination: CopyDestination;
  readonly #options: ResolvedCopyOptions;
  readonly #signal: AbortSignal;
  readonly #inFlight: Set<Promise<unknown>>;
  readonly #fail: (error: unknown) => void;
  readonly #limit: ReturnType<typeof createLimiter>;
  readonly #nodes = new Map<Digest, Node>();
  readonly #blobs = new Map<Digest, Promise<void>>();
  readonly #pushes = new Map<Digest, Promise<Pushed>>();
  readonly #counts = { manifests: 0, blobsCopied: 0, blobsSkipped: 0, blobsMounted: 0, bytesCopied: 0 };
  /** Same origin and same repository: everything the source has is already there. */
  readonly #sameRepository: boolean;
  #mount = false;
  #sparse = false;
  /** The destination repository did not exist when the copy began: no blob is asked about. */
  #fresh = false;
  /** The blob path's settings, fixed once `#decide` has run. */
  #transfer: BlobTransfer | undefined;
  /** The upload sessions of a staged copy. */
  readonly #staging: BlobStaging | undefined;

  constructor(setup: {
    source: CopySource;
    destination: CopyDestination;
    options: ResolvedCopyOptions;
    signal: AbortSignal;
    inFlight: Set<Promise<unknown>>;
    fail: (error: unknown) => void;
  }) {
    const { source, destination, options } = setup;
    this.#source = source;
    this.#destination = destination;
    this.#options = options;
    this.#signal = setup.signal;
    this.#inFlight = setup.inFlight;
    this.#fail = setup.fail;
    this.#limit = createLimiter(options.concurrency);
    this.#sameRepository =
      source.registry.origin === destination.registry.origin && source.repository === destination.repository;
    if (options.staged && !this.#sameRepository) {
      const registry = destination.registry;
      if (!hasUploadSessions(registry)) {
        throw new CopyError(
          'OPTIONS_INVALID',
          `a staged copy needs upload sessions, and the destination (${registry.origin}) has none`,
          { details: { origin: registry.origin } },
        );
      }
      this.#staging = { sessions: registry, hooks: options.staged, staged: new Map(), open: new Map() };
    }
  }

  /** After a failure: cancels the sessions of a staged copy, so none of its blobs is committed. */
  async abandon(): Promise<void> {
    if (this.#staging) await abandonStaged(this.#staging, this.#destination.repository);
  }

  async run(): Promise<CopyResult> {
    const [capabilities, top, fresh] = await Promise.all([
      this.#task(() => this.#destination.registry.capabilities({ signal: this.#signal })),
      this.#plan(),
      this.#sameRepository ? false : this.#task(() => this.#repositoryIsNew()),
    ]);
    this.#decide(capabilities);
    this.#fresh = fresh;

    if (this.#sameRepository) {
      for (const node of this.#nodes.values()) for (const blob of node.blobs) void this.#blob(blob);
      await Promise.all(this.#blobs.values());
      const pushed = await this.#pushManifest(top, this.#destination.tag ?? top.digest, []);
      return this.#result(top, pushed);
    }

    if (this.#staging) {
      // Every blob first, into sessions; committed together once all are verified; manifests after.
      for (const node of this.#nodes.values()) {
        for (const blob of node.blobs) void this.#blob(blob);
        for (const blob of node.optional) void this.#blob(blob, true);
      }
      await Promise.all(this.#blobs.values());
      await commitStaged(this.#staging, {
        repository: this.#destination.repository,
        limit: (task) => this.#task(task),
        signal: this.#signal,
      });
    }

    const others = [...this.#nodes.values()].filter((node) => node !== top);
    const needsTop = this.#dependsOn(top.digest);
    // Referrers that list the top manifest as a child can only go after it; everything else goes before.
    await Promise.all(others.filter((node) => !needsTop(node)).map((node) => this.#push(node)));
    const topPush = this.#pushNode(top, this.#destination.tag);
    this.#pushes.set(top.digest, topPush);
    const pushed = await topPush;
    await Promise.all(others.filter((node) => needsTop(node)).map((node) => this.#push(node)));
    return this.#result(top, pushed);
  }

  #result(top: Node, pushed: Pushed): CopyResult {
    return {
      digest: pushed.digest,
      mediaType: pushed.mediaType,
      sourceDigest: top.digest,
      indexRewritten: pushed.rewritten,
      sparse: pushed.sparse,
      ...this.#counts,
    };
  }

  /**
   * Whether the destination repository does not exist yet (its tag listing is
   * NAME_UNKNOWN): then none of the blobs is in it, and one request replaces a
   * HEAD per blob. A blob that arrives meanwhile is only uploaded again.
   */
  async #repositoryIsNew(): Promise<boolean> {
    const { registry, repository } = this.#destination;
    try {
      await registry.listTags(repository, { n: 1, signal: this.#signal });
      return false;
    } catch (error) {
      if (isStowageError(error, 'NAME_UNKNOWN')) return true;
      // Anything else (a listing the registry refuses, say): ask per blob, as before.
      if (this.#signal.aborted) throw error;
      return false;
    }
  }

  /** Runs one store operation within the concurrency bound, tracked so a failure can wait for it. */
  #task<T>(operation: () => Promise<T>): Promise<T> {
    const promise = this.#limit(async () => {
      this.#signal.throwIfAborted();
      try {
        return await operation();
      } catch (error) {
        // Before the slot is handed on, so the next queued operation sees the abort.
        this.#fail(error);
        throw error;
      }
    });
    this.#inFlight.add(promise);
    const forget = () => this.#inFlight.delete(promise);
    promise.then(forget, forget);
    return promise;
  }

  // --- reading the graph ---

  /** Reads every manifest to copy (breadth first, each digest once); returns the top one. */
  async #plan(): Promise<Node> {
    const top = await this.#read(this.#source.reference, true);
    let frontier: { digest: Digest; filter: boolean }[] = await this.#discover(top, true);
    while (frontier.length > 0) {
      const level = await Promise.all(
        frontier.map(async ({ digest, filter }) => {
          const node = await this.#read(digest, filter);
          return await this.#discover(node, filter);
        }),
      );
      frontier = [];
      for (const next of level.flat()) {
        if (this.#nodes.has(next.digest) || frontier.some((f) => f.digest === next.digest)) continue;
        frontier.push(next);
      }
    }
    return top;
  }

  async #read(reference: string, filter: boolean): Promise<Node> {
    const content = await this.#task(() =>
      this.#source.registry.getManifest(this.#source.repository, reference, {
        accept: manifestMediaTypes,
        signal: this.#signal,
      }),
    );
    const parsed = parseManifest(content.bytes, { mediaType: content.mediaType });
    let selected: boolean[] = [];
    let blobs: readonly Descriptor[] = [];
    let optional: readonly Descriptor[] = [];
    if (parsed.kind === 'index') {
      const platforms = filter ? this.#options.platforms : undefined;
      selected = parsed.manifest.manifests.map((child) => {
        if (!platforms || isIndexMediaType(child.mediaType)) return true;
        const platform = child.platform;
        return platform !== undefined && platforms.some((wanted) => platformMatches(wanted, platform));
      });
      if (platforms && !selected.includes(true)) {
        throw new CopyError(
          'NO_MATCHING_PLATFORM',
          `no manifest of index ${content.digest} matches the platforms asked for`,
          {
            details: {
              digest: content.digest,
              platforms: platforms.map((p) => `${p.os}/${p.architecture}${p.variant ? `/${p.variant}` : ''}`),
            },
          },
        );
      }
    } else {
      const references = manifestReferences(parsed);
      blobs = references.blobs;
      if (this.#options.nonDistributable === 'copy') optional = references.nonDistributable;
    }
    const children =
      parsed.kind === 'index'
        ? parsed.manifest.manifests.filter((_, i) => selected[i]).map((child) => child.digest)
        : [];
    const node: Node = {
      digest: content.digest,
      content,
      parsed,
      selected,
      children,
      dropped: selected.includes(false),
      blobs,
      optional,
    };
    if (!this.#nodes.has(node.digest)) this.#nodes.set(node.digest, node);
    return this.#nodes.get(node.digest) as Node;
  }

  /** The manifests a node leads to: its children, and its referrers when asked for. */
  async #discover(node: Node, filter: boolean): Promise<{ digest: Digest; filter: boolean }[]> {
    const next = node.children.map((digest) => ({ digest, filter }));
    if (this.#options.referrers) {
      const referrers = await this.#task(() =>
        this.#source.registry.listReferrers(this.#source.repository, node.digest, { signal: this.#signal }),
      );
      // A referrer is an artifact of its own: the platform filter is not applied inside it.
      for (const referrer of referrers.manifests) next.push({ digest: referrer.digest, filter: false });
    }
    return next.filter((entry) => !this.#nodes.has(entry.digest));
  }

  /** Whether a node needs `digest` pushed first (it is among its children, at any depth). */
  #dependsOn(digest: Digest): (node: Node) => boolean {
    const known = new Map<Digest, boolean>();
    const visit = (node: Node): boolean => {
      const cached = known.get(node.digest);
      if (cached !== undefined) return cached;
      known.set(node.digest, false);
      const result = node.children.some((child) => {
        if (child === digest) return true;
        const next = this.#nodes.get(child);
        return next !== undefined && visit(next);
      });
      known.set(node.digest, result);
      return result;
    };
    return visit;
  }

  /** Mount or transfer, sparse or rewritten: decided once the graph is known, before any write. */
  #decide(capabilities: RegistryCapabilities): void {
    const sameOrigin = this.#source.registry.origin === this.#destination.registry.origin;
    this.#mount = this.#options.mount ?? (sameOrigin && capabilities.mount);
    const dropped = [...this.#nodes.values()].filter((node) => node.dropped);
    if (dropped.length === 0) return;
    if (capabilities.sparseIndex) {
      this.#sparse = true;
      return;
    }
    // Within one repository the children left out may be there already: the store checks.
    if (this.#sameRepository) return;
    if (!this.#options.rewriteIndex) {
      throw new CopyError(
        'SPARSE_INDEX_UNSUPPORTED',
        `the destination cannot store index ${dropped[0]?.digest} without the children the platform filter leaves out; ` +
          'pass rewriteIndex: true to push a filtered index (new bytes, a new digest) instead',
        {
          details: {
            repository: this.#destination.repository,
            origin: this.#destination.registry.origin,
            indexes: dropped.map((node) => node.digest),
          },
        },
      );
    }
  }

  // --- blobs ---

  #blob(descriptor: Descriptor, optional = false): Promise<void> {
    let pending = this.#blobs.get(descriptor.digest);
    if (!pending) {
      pending = this.#task(() => this.#copyBlob(descriptor, optional));
      this.#blobs.set(descriptor.digest, pending);
    }
    return pending;
  }

  #copyBlob(descriptor: Descriptor, optional: boolean): Promise<void> {
    this.#transfer ??= {
      source: this.#source,
      destination: this.#destination,
      signal: this.#signal,
      mount: this.#mount,
      sameRepository: this.#sameRepository,
      knownAbsent: this.#fresh,
      counts: this.#counts,
      onProgress: this.#options.onProgress,
      logger: this.#options.logger,
      staging: this.#staging,
    };
    return transferBlob(this.#transfer, descriptor, optional ? { ifSourceHas: true } : {});
  }

  // --- manifests ---

  /** Pushes a node by digest once, after its children and blobs. */
  #push(node: Node): Promise<Pushed> {
    let pending = this.#pushes.get(node.digest);
    if (!pending) {
      pending = this.#pushNode(node, undefined);
      this.#pushes.set(node.digest, pending);
    }
    return pending;
  }

  async #pushNode(node: Node, tag: string | undefined): Promise<Pushed> {
    const [children] = await Promise.all([
      Promise.all(node.children.map((digest) => this.#push(this.#nodes.get(digest) as Node))),
      Promise.all([
        ...node.blobs.map((blob) => this.#blob(blob)),
        ...node.optional.map((blob) => this.#blob(blob, true)),
      ]),
    ]);
    return await this.#pushManifest(node, tag, children);
  }

  async #pushManifest(node: Node, tag: string | undefined, children: readonly Pushed[]): Promise<Pushed> {
    let bytes = node.content.bytes;
    let sparse = false;
    let rewritten = false;
    if (node.parsed.kind === 'index') {
      // With a sparse-capable destination nothing is ever rewritten, so children keep their digests.
      if (this.#sparse) sparse = node.dropped;
      else if (!this.#sameRepository && (node.dropped || children.some((child) => child.rewritten))) {
        bytes = this.#rewrite(node, children);
        rewritten = true;
      }
    }
    const digest = rewritten ? digestOf(bytes) : node.digest;
    const mediaType = node.parsed.mediaType;
    const reference = tag ?? digest;
    const { repository, registry } = this.#destination;
    const result = await this.#task(() =>
      registry.putManifest(repository, reference, {
        bytes,
        mediaType,
        ...(sparse ? { sparse: true } : {}),
        signal: this.#signal,
      }),
    );
    this.#counts.manifests++;
    this.#options.onProgress?.({ type: 'manifest-done', digest: result.digest, mediaType });
    this.#options.logger.debug(
      { repository, reference, digest: result.digest, sourceDigest: node.digest, sparse, rewritten },
      'manifest pushed',
    );
    publishManifest(() => ({
      source: { origin: this.#source.registry.origin, repository: this.#source.repository },
      destination: { origin: registry.origin, repository },
      reference,
      digest: result.digest,
      sourceDigest: node.digest,
      mediaType,
      sparse,
      rewritten,
    }));
    return { digest: result.digest, size: bytes.byteLength, mediaType, rewritten, sparse };
  }

  /** The index with only the children copied, each pointing at what was pushed for it. */
  #rewrite(node: Node, children: readonly Pushed[]): Uint8Array {
    const value = JSON.parse(decoder.decode(node.content.bytes)) as { manifests: Descriptor[] };
    let next = 0;
    const manifests = value.manifests.flatMap((entry, i) => {
      if (!node.selected[i]) return [];
      const pushed = children[next++];
      return pushed?.rewritten ? [{ ...entry, digest: pushed.digest, size: pushed.size }] : [entry];
    });
    return encoder.encode(JSON.stringify({ ...value, manifests }));
  }
}
