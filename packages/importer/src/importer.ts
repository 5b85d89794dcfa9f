import { appendFile, mkdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import {
  assertMigrated,
  type Database,
  DatabaseError,
  MetadataStore,
  type RepositoryRow,
  type RowCounts,
  type Transaction,
} from '@stowage/metadata-db';
import { type Digest, isDigest, MediaType } from '@stowage/oci';
import { ImportError } from './errors.js';
import { type LinkResult, openDistributionTree } from './layout.js';

/**
 * Why something was skipped. A skipped manifest is reported once per
 * repository and rule however many tags reach it; a skipped tag once per tag.
 */
export type SkipReason =
  | 'empty-manifest'
  | 'unknown-revision'
  | 'schema1-manifest'
  | 'invalid-digest-link'
  | 'unsupported-digest-link'
  | 'missing-tag-link'
  | 'unlinked-config'
  | 'unlinked-layer'
  | 'broken-index-child'
  | 'non-distributable-layer'
  | 'repository-without-manifests'
  /** the database refused the tag row (a data error such as a CHECK violation); the tag is not written */
  | 'tag-rejected';

export interface ImportWarning {
  readonly reason: SkipReason;
  readonly repository: string;
  readonly digest?: string;
  /** The (first) tag the skipped item was reached through. */
  readonly tag?: string;
  /** Every tag that pointed at a skipped manifest: none of them is created. */
  readonly tags?: readonly string[];
  readonly detail?: string;
}

export interface ImportProgress {
  readonly step: 'pre-import' | 'import' | 'blobs';
  readonly repository?: string;
  readonly repositoriesDone: number;
  /** How many repositories this step goes through (known once the tree has been listed). */
  readonly repositoriesTotal?: number;
  readonly tagsDone: number;
  readonly blobsDone: number;
}

export type ImportMode = 'full' | 'pre-import' | 'import' | 'blobs';

export interface ImportOptions {
  readonly db: Database;
  /**
   * The registry's storage root (`rootdirectory`), or its `docker/registry/v2`.
   * Anything else (a missing path, a file, an OCI image layout, a directory
   * without `docker/registry/v2/repositories` or `blobs`) fails with
   * `NOT_A_DISTRIBUTION_TREE` before anything is read from the database or written.
   */
  readonly root: string;
  /** Default `full`: pre-import, import, common blobs, in that order. */
  readonly mode?: ImportMode;
  /**
   * Only these repositories (pre-import and import). One the tree does not
   * hold fails the import with `REPOSITORY_NOT_FOUND` before anything is
   * written. Lockfiles are left alone: part of the registry is not all of it.
   */
  readonly repositories?: readonly string[];
  /** Everything in one transaction, rolled back at the end. Lockfiles are neither read nor written. */
  readonly dryRun?: boolean;
  /** Tag links read at once per repository: a positive integer (1–5 in GitLab). Default 4. */
  readonly tagConcurrency?: number;
  /** Skip pre-importing repositories pre-imported more recently than this. Default 0 (never skip). */
  readonly preImportSkipRecentMs?: number;
  /** Configuration payloads up to this size are stored. Default 256,000 bytes, as GitLab. */
  readonly configPayloadLimit?: number;
  /**
   * A repository's transaction failing with a retryable error is retried until
   * this long after its first failure (however long the attempt itself took). Default 60 s.
   */
  readonly retryBudgetMs?: number;
  /** Stops between repositories and tags; the repository in progress is rolled back. */
  readonly signal?: AbortSignal;
  /** Write GitLab's lockfiles (`filesystem-in-use`, `database-in-use`). Default true, but never with `repositories` nor in a dry run. */
  readonly lockfiles?: boolean;
  /** Detailed JSON lines log. */
  readonly logFile?: string;
  /** Receives each entry of the detailed log as it is written (with or without `logFile`). */
  readonly onLog?: (entry: Readonly<Record<string, unknown>>) => void;
  /** Called once a repository's transaction committed (dry run: once its work is done), never for one rolled back. */
  readonly onWarning?: (warning: ImportWarning) => void;
  readonly onProgress?: (progress: ImportProgress) => void;
  /** Record an `import_statistics` row. Default true (never in a dry run). */
  readonly statistics?: boolean;
}

export interface ImportResult {
  readonly mode: ImportMode;
  readonly dryRun: boolean;
  readonly repositories: number;
  readonly tags: number;
  readonly manifests: number;
  readonly blobs: number;
  readonly warnings: readonly ImportWarning[];
  readonly retries: number;
  readonly durationMs: number;
  /** Row counts after the run (inside the transaction for a dry run). */
  readonly rows: RowCounts;
}

const INDEX_TYPES = new Set<string>([MediaType.OciIndex, MediaType.DockerManifestList]);
const IMAGE_TYPES = new Set<string>([MediaType.OciManifest, MediaType.DockerManifest]);
const BUILDKIT_CACHE_CONFIG = 'application/vnd.buildkit.cacheconfig.v0';
const NON_DISTRIBUTABLE = new Set([
  'application/vnd.docker.image.rootfs.foreign.diff.tar.gzip',
  'application/vnd.oci.image.layer.nondistributable.v1.tar',
  'application/vnd.oci.image.layer.nondistributable.v1.tar+gzip',
  'application/vnd.oci.image.layer.nondistributable.v1.tar+zstd',
]);

/** Internal: a manifest that cannot be imported, and why. */
class Skip extends Error {
  readonly reason: SkipReason;
  readonly digest: string | undefined;
  constructor(reason: SkipReason, digest?: string, detail?: string) {
    super(detail ?? reason);
    this.reason = reason;
    this.digest = digest;
  }
}

/** Internal: unwinds a dry run's transaction. */
class DryRunRollback extends Error {}

type PendingWarning = { -readonly [K in keyof ImportWarning]: ImportWarning[K] };

/** Internal: what one attempt at a repository's transaction produced, kept only if it commits. */
interface Attempt {
  /** Manifest ids imported in this attempt, by digest. */
  readonly done: Map<string, number>;
  /** Manifests found unimportable in this attempt, by digest. */
  readonly skipped: Map<string, Skip>;
  /** Warnings by `warningKey`, in the order first met. */
  readonly warnings: Map<string, PendingWarning>;
  manifests: number;
}

function newAttempt(): Attempt {
  return { done: new Map(), skipped: new Map(), warnings: new Map(), manifests: 0 };
}

/**
 * The identity of a warning: a skipped manifest (named by digest) is one
 * warning per repository and rule whatever tags reach it, as GitLab skips a
 * manifest once; tag-level problems are one per tag.
 */
function warningKey(warning: ImportWarning): string {
  return warning.digest !== undefined && warning.reason !== 'tag-rejected'
    ? `${warning.reason}|${warning.repository}|@${warning.digest}`
    : `${warning.reason}|${warning.repository}|:${warning.tag ?? ''}`;
}

/** Records a warning in an attempt, folding the tags of a manifest reached several times into one. */
function note(attempt: Attempt, warning: ImportWarning): void {
  const key = warningKey(warning);
  const known = attempt.warnings.get(key);
  if (!known) {
    attempt.warnings.set(key, { ...warning, ...(warning.tag ? { tags: [warning.tag] } : {}) });
    return;
  }
  if (warning.tag && !known.tags?.includes(warning.tag)) {
    known.tag ??= warning.tag;
    known.tags = [...(known.tags ?? []), warning.tag];
  }
}

/** A row the database refused for what it holds (SQLSTATE class 22 data exception or 23 constraint), not for a transient cause. */
function isRejectedRow(error: unknown): error is DatabaseError {
  return error instanceof DatabaseError && !error.retryable && /^2[23]/.test(error.sqlState ?? '');
}

interface Descriptor {
  mediaType?: unknown;
  digest?: unknown;
  size?: unknown;
}

function linkSkip(result: LinkResult & { ok: false }, missing: SkipReason, digest?: string): Skip {
  if (result.problem === 'invalid') return new Skip('invalid-digest-link', digest, result.text);
  if (result.problem === 'unsupported') return new Skip('unsupported-digest-link', digest, result.text);
  return new Skip(missing, digest);
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * Imports a distribution filesystem tree into the metadata database, as
 * GitLab's importer does, with these differences: every repository is one
 * transaction in every step (an interrupted or failed repository leaves no
 * rows), tags are made to match the tree instead of refusing a non-empty tags
 * table (so a rerun after any failure continues and converges), and a
 * repository failing with a retryable database error is retried whole.
 */
export async function importTree(options: ImportOptions): Promise<ImportResult> {
  const started = Date.now();
  const mode = options.mode ?? 'full';
  const dryRun = options.dryRun ?? false;
  const tagConcurrency = options.tagConcurrency ?? 4;
  if (!Number.isInteger(tagConcurrency) || tagConcurrency < 1) {
    throw new ImportError(
      'INVALID_OPTIONS',
      `tagConcurrency must be a positive integer, not ${tagConcurrency}`,
      {
        details: { tagConcurrency },
      },
    );
  }
  // before the database, the log file or a lockfile: a path that is not a registry tree gets nothing written
  const tree = await openDistributionTree(options.root);
  const configLimit = options.configPayloadLimit ?? 256_000;
  const retryBudget = options.retryBudgetMs ?? 60_000;
  // importing some repositories does not move the registry to the database, and a dry run moves
  // nothing (GitLab's dry run rewrites filesystem-in-use, or fails after a completed import): lockfiles
  // stay as they are
  const useLockfiles =
    (options.lockfiles ?? true) &&
    !dryRun &&
    (mode === 'full' || mode === 'import') &&
    options.repositories === undefined;
  const warnings: ImportWarning[] = [];
  const warned = new Set<string>();
  const counters = { repositories: 0, tags: 0, manifests: 0, blobs: 0, retries: 0 };
  const baseStore = new MetadataStore(options.db);
  // a repository asked for by name must be there: fail before the database is touched
  if (options.repositories) {
    const missing: string[] = [];
    for (const name of options.repositories) if (!(await tree.hasRepository(name))) missing.push(name);
    if (missing.length > 0) {
      throw new ImportError(
        'REPOSITORY_NOT_FOUND',
        `${missing.length === 1 ? 'repository' : 'repositories'} not in the tree at ${tree.v2}: ${missing.map((m) => JSON.stringify(m)).join(', ')}`,
        { details: { repositories: missing } },
      );
    }
  }

  await assertMigrated(options.db);

  async function log(entry: Record<string, unknown>): Promise<void> {
    if (!options.logFile && !options.onLog) return;
    const line = { time: new Date().toISOString(), ...entry };
    options.onLog?.(line);
    if (options.logFile) await appendFile(options.logFile, `${JSON.stringify(line)}\n`);
  }

  async function warn(warning: ImportWarning): Promise<void> {
    const key = warningKey(warning);
    if (warned.has(key)) return;
    warned.add(key);
    warnings.push(warning);
    options.onWarning?.(warning);
    await log({ level: 'warn', ...warning });
  }

  let repositoriesTotal: number | undefined;

  function progress(step: ImportProgress['step'], repository?: string): void {
    options.onProgress?.({
      step,
      ...(repository ? { repository } : {}),
      repositoriesDone: counters.repositories,
      ...(repositoriesTotal === undefined ? {} : { repositoriesTotal }),
      tagsDone: counters.tags,
      blobsDone: counters.blobs,
    });
  }

  function checkAbort(): void {
    if (options.signal?.aborted) throw new ImportError('ABORTED', 'the import was interrupted');
  }

  /**
   * Runs one repository's work in a transaction (or on the dry run's),
   * retrying retryable failures until `retryBudget` after the first one: a
   * transaction longer than the budget still gets its retries.
   */
  async function inTransaction<T>(
    run: Transaction | undefined,
    work: (tx: Transaction) => Promise<T>,
  ): Promise<T> {
    if (run) return work(run);
    let deadline: number | undefined;
    for (let attempt = 0; ; attempt++) {
      try {
        return await options.db.transaction((tx) => work(tx));
      } catch (error) {
        const retryable = error instanceof DatabaseError && error.retryable;
        deadline ??= Date.now() + retryBudget;
        if (!retryable || Date.now() >= deadline || options.signal?.aborted) throw error;
        counters.retries++;
        await log({ level: 'warn', msg: 'retrying after a transient database error', error: String(error) });
        await sleep(Math.min(5_000, 100 * 1.5 ** attempt * (0.5 + Math.random())));
      }
    }
  }

  /** Imports one manifest (and, for an index, its children) into a repository; returns its id. */
  async function importManifest(
    store: MetadataStore,
    repository: string,
    repo: RepositoryRow,
    digest: Digest,
    attempt: Attempt,
    depth = 0,
  ): Promise<number> {
    const known = attempt.done.get(digest);
    if (known !== undefined) return known;
    const skipped = attempt.skipped.get(digest);
    if (skipped) throw skipped;
    try {
      const id = await importManifestOnce(store, repository, repo, digest, attempt, depth);
      attempt.done.set(digest, id);
      attempt.manifests++;
      return id;
    } catch (error) {
      if (error instanceof Skip) attempt.skipped.set(digest, error);
      throw error;
    }
  }

  async function importManifestOnce(
    store: MetadataStore,
    repository: string,
    repo: RepositoryRow,
    digest: Digest,
    attempt: Attempt,
    depth: number,
  ): Promise<number> {
    const revision = await tree.revision(repository, digest);
    if (!revision.ok) throw linkSkip(revision, 'unknown-revision', digest);
    const payload = await tree.blob(digest);
    if (payload === undefined) throw new Skip('unknown-revision', digest, 'the manifest blob is missing');
    if (payload.byteLength === 0) throw new Skip('empty-manifest', digest);
    let manifest: {
      schemaVersion?: unknown;
      mediaType?: unknown;
      config?: Descriptor;
      layers?: Descriptor[];
      manifests?: Descriptor[];
      subject?: Descriptor;
      artifactType?: unknown;
    };
    try {
      manifest = JSON.parse(payload.toString('utf8'));
    } catch (error) {
      throw new ImportError(
        'MANIFEST_NOT_JSON',
        `manifest ${digest} in ${repository} is not JSON: ${(error as Error).message}`,
        { details: { repository, digest } },
      );
    }
    if (typeof manifest !== 'object' || manifest === null) {
      throw new ImportError('MANIFEST_NOT_JSON', `manifest ${digest} in ${repository} is not a JSON object`, {
        details: { repository, digest },
      });
    }
    if (manifest.schemaVersion === 1) throw new Skip('schema1-manifest', digest);
    if (manifest.schemaVersion !== 2) throw new Skip('unknown-revision', digest, 'unknown schemaVersion');
    let mediaType = typeof manifest.mediaType === 'string' ? manifest.mediaType : '';
    if (mediaType === '')
      mediaType = Array.isArray(manifest.manifests) ? MediaType.OciIndex : MediaType.OciManifest;
    const children = Array.isArray(manifest.manifests) ? manifest.manifests : [];
    const buildkitCache =
      INDEX_TYPES.has(mediaType) && children.some((c) => c?.mediaType === BUILDKIT_CACHE_CONFIG);

    let id: number;
    if (INDEX_TYPES.has(mediaType) && !buildkitCache) {
      if (depth > 8) throw new Skip('broken-index-child', digest, 'indexes nested too deep');
      const childIds: number[] = [];
      for (const child of children) {
        const childDigest = child?.digest;
        if (!isDigest(childDigest)) {
          note(attempt, {
            reason: 'broken-index-child',
            repository,
            digest,
            detail: 'a child has no valid digest',
          });
          continue;
        }
        try {
          childIds.push(await importManifest(store, repository, repo, childDigest, attempt, depth + 1));
        } catch (error) {
          if (!(error instanceof Skip)) throw error;
          note(attempt, { reason: error.reason, repository, digest: childDigest, detail: error.message });
          note(attempt, {
            reason: 'broken-index-child',
            repository,
            digest,
            detail: `child ${childDigest} skipped`,
          });
        }
      }
      id = await store.manifest(repo, {
        digest,
        payload,
        schemaVersion: 2,
        mediaType,
        totalSize: payload.byteLength,
      });
      for (const childId of childIds) if (childId !== id) await store.reference(repo, id, childId);
    } else if (IMAGE_TYPES.has(mediaType) || buildkitCache) {
      const config = buildkitCache
        ? children.find((c) => c?.mediaType === BUILDKIT_CACHE_CONFIG)
        : manifest.config;
      const layers = buildkitCache
        ? children.filter((c) => c?.mediaType !== BUILDKIT_CACHE_CONFIG)
        : Array.isArray(manifest.layers)
          ? manifest.layers
          : [];
      const configDigest = config?.digest;
      if (!isDigest(configDigest)) throw new Skip('unlinked-config', digest, 'no valid config descriptor');
      const configLink = await tree.layerLink(repository, configDigest);
      if (!configLink.ok) throw linkSkip(configLink, 'unlinked-config', digest);
      const configSize = await tree.blobSize(configDigest);
      if (configSize === undefined)
        throw new Skip('unlinked-config', digest, `config ${configDigest} has no data`);
      // every layer's link is checked before anything is written: a broken one skips the manifest
      const usable: { digest: Digest; size: number; mediaType: string }[] = [];
      let nonDistributable = false;
      for (const layer of layers) {
        const layerDigest = layer?.digest;
        const layerType = typeof layer?.mediaType === 'string' ? layer.mediaType : '';
        if (NON_DISTRIBUTABLE.has(layerType)) {
          nonDistributable = true;
          continue;
        }
        if (!isDigest(layerDigest))
          throw new Skip('invalid-digest-link', digest, 'a layer has no valid digest');
        const link = await tree.layerLink(repository, layerDigest);
        if (!link.ok && link.problem !== 'missing') throw linkSkip(link, 'unlinked-layer', digest);
        const size = link.ok ? await tree.blobSize(layerDigest) : undefined;
        if (!link.ok || size === undefined) {
          note(attempt, {
            reason: 'unlinked-layer',
            repository,
            digest,
            detail: `layer ${layerDigest} not imported`,
          });
          continue;
        }
        usable.push({ digest: layerDigest, size, mediaType: layerType });
      }
      await store.blob(configDigest, configSize);
      await store.linkBlob(repo, configDigest);
      for (const layer of usable) {
        await store.blob(layer.digest, layer.size);
        await store.linkBlob(repo, layer.digest);
      }
      const configPayload = configSize <= configLimit ? await tree.blob(configDigest) : undefined;
      const configMediaType =
        typeof config?.mediaType === 'string' && config.mediaType !== ''
          ? config.mediaType
          : 'application/octet-stream';
      id = await store.manifest(repo, {
        digest,
        payload,
        schemaVersion: 2,
        mediaType: buildkitCache ? MediaType.OciManifest : mediaType,
        totalSize: payload.byteLength + configSize + usable.reduce((sum, l) => sum + l.size, 0),
        configuration: {
          digest: configDigest,
          mediaType: configMediaType,
          ...(configPayload ? { payload: configPayload } : {}),
        },
        nonConformant: buildkitCache,
        nonDistributableLayers: nonDistributable,
      });
      for (const layer of usable) {
        const known = await store.knownMediaType(layer.mediaType);
        await store.layer(
          repo,
          id,
          layer.digest,
          layer.size,
          known ? layer.mediaType : 'application/octet-stream',
        );
      }
    } else {
      throw new ImportError(
        'MANIFEST_UNKNOWN_MEDIA_TYPE',
        `manifest ${digest} in ${repository} has the unknown media type ${JSON.stringify(mediaType.slice(0, 200))}`,
        { details: { repository, digest, mediaType: mediaType.slice(0, 200) } },
      );
    }
    return id;
  }

  /** Reads tag links with bounded concurrency, keeping tag order. */
  async function readTags(repository: string): Promise<{ tag: string; link: LinkResult }[]> {
    const tags = await tree.tags(repository);
    const results: { tag: string; link: LinkResult }[] = new Array(tags.length);
    let next = 0;
    await Promise.all(
      Array.from({ length: Math.min(tagConcurrency, tags.length) }, async () => {
        while (next < tags.length) {
          const i = next++;
          const tag = tags[i] as string;
          results[i] = { tag, link: await tree.tagLink(repository, tag) };
        }
      }),
    );
    return results;
  }

  /**
   * Writes one tag in a savepoint. A row the database refuses for its content
   * is rolled back alone and reported (GitLab logs and goes on); anything else,
   * a retryable failure above all, propagates and ends the attempt.
   */
  async function writeTag(
    tx: Transaction,
    repo: RepositoryRow,
    tag: string,
    manifestId: number,
    digest: Digest,
    attempt: Attempt,
  ): Promise<boolean> {
    try {
      await tx.savepoint((sp) => baseStore.on(sp).tag(repo, tag, manifestId));
      return true;
    } catch (error) {
      if (!isRejectedRow(error)) throw error;
      note(attempt, {
        reason: 'tag-rejected',
        repository: repo.path,
        tag,
        digest,
        detail: `${error.code}: ${error.message}`,
      });
      return false;
    }
  }

  /** Pre-import and/or import of one repository, in one transaction. */
  async function importRepository(
    run: Transaction | undefined,
    repository: string,
    steps: { manifests: boolean; tags: boolean },
  ): Promise<void> {
    const skipRecent = options.preImportSkipRecentMs ?? 0;
    const tagged = await readTags(repository);
    // what the attempt that commits produced; an attempt rolled back leaves nothing behind
    let attempt = newAttempt();
    let tagsWritten = 0;
    await inTransaction(run, async (tx) => {
      attempt = newAttempt();
      tagsWritten = 0;
      const store = baseStore.on(tx);
      const repo = await store.repository(repository);
      if (
        steps.manifests &&
        !steps.tags &&
        skipRecent > 0 &&
        repo.lastPublishedAt &&
        Date.now() - repo.lastPublishedAt.getTime() < skipRecent
      ) {
        return;
      }
      const kept: string[] = [];
      for (const { tag, link } of tagged) {
        checkAbort();
        if (!link.ok) {
          const reason: SkipReason =
            link.problem === 'missing'
              ? 'missing-tag-link'
              : link.problem === 'invalid'
                ? 'invalid-digest-link'
                : 'unsupported-digest-link';
          note(attempt, { reason, repository, tag, ...(link.text ? { detail: link.text } : {}) });
          continue;
        }
        let id: number;
        try {
          id = await importManifest(store, repository, repo, link.digest, attempt);
        } catch (error) {
          if (!(error instanceof Skip)) throw error;
          note(attempt, {
            reason: error.reason,
            repository,
            tag,
            digest: error.digest ?? link.digest,
            detail: error.message,
          });
          continue;
        }
        if (steps.tags && (await writeTag(tx, repo, tag, id, link.digest, attempt))) {
          kept.push(tag);
          tagsWritten++;
        }
      }
      if (steps.tags) await store.pruneTags(repo, kept);
      if (steps.manifests) await store.markPublished(repo);
    });
    for (const warning of attempt.warnings.values()) await warn(warning);
    counters.repositories++;
    counters.tags += tagsWritten;
    counters.manifests += attempt.manifests;
    await log({ level: 'info', msg: 'repository imported', repository, tags: tagsWritten });
  }

  async function eachRepository(step: ImportProgress['step'], work: (repository: string) => Promise<void>) {
    const wanted = options.repositories ? new Set(options.repositories) : undefined;
    // listed first, so progress can tell how far along the step is
    const names: string[] = [];
    for await (const repository of tree.repositories())
      if (!wanted || wanted.has(repository)) names.push(repository);
    repositoriesTotal = counters.repositories + names.length;
    progress(step);
    for (const repository of names) {
      checkAbort();
      if ((await tree.tags(repository)).length === 0 && !(await hasManifestsDir(repository))) {
        await warn({ reason: 'repository-without-manifests', repository });
      }
      await work(repository);
      progress(step, repository);
    }
  }

  async function hasManifestsDir(repository: string): Promise<boolean> {
    try {
      return (
        await stat(join(tree.v2, 'repositories', ...repository.split('/'), '_manifests'))
      ).isDirectory();
    } catch {
      return false;
    }
  }

  async function importBlobs(run: Transaction | undefined): Promise<void> {
    let batch: { digest: Digest; size: number }[] = [];
    const flush = async () => {
      const items = batch;
      batch = [];
      if (items.length === 0) return;
      await inTransaction(run, async (tx) => {
        const store = baseStore.on(tx);
        for (const item of items) await store.blob(item.digest, item.size);
      });
      counters.blobs += items.length;
      progress('blobs');
    };
    for await (const blob of tree.blobs()) {
      checkAbort();
      batch.push(blob);
      if (batch.length >= 500) await flush();
    }
    await flush();
  }

  async function steps(run: Transaction | undefined): Promise<void> {
    if (mode === 'pre-import') {
      await eachRepository('pre-import', (r) => importRepository(run, r, { manifests: true, tags: false }));
    } else if (mode === 'import') {
      await eachRepository('import', (r) => importRepository(run, r, { manifests: true, tags: true }));
    } else if (mode === 'blobs') {
      await importBlobs(run);
    } else {
      // pre-import and import of a repository are one pass: each manifest is imported once, fully
      await eachRepository('import', (r) => importRepository(run, r, { manifests: true, tags: true }));
      await importBlobs(run);
    }
  }

  const locks = new Lockfiles(tree.registryDir);
  if (options.logFile) await mkdir(join(options.logFile, '..'), { recursive: true });
  await log({ level: 'info', msg: 'import started', mode, dryRun, root: tree.v2 });
  let failure: unknown;
  let rows: RowCounts | undefined;
  try {
    if (dryRun) {
      await options.db
        .transaction(async (tx) => {
          await steps(tx);
          rows = await baseStore.on(tx).counts();
          throw new DryRunRollback();
        })
        .catch((error: unknown) => {
          if (!(error instanceof DryRunRollback)) throw error;
        });
    } else {
      await steps(undefined);
      // a read, but on the same connections as the import: a lost one is retried like a repository
      rows = await inTransaction(undefined, (tx) => baseStore.on(tx).counts());
    }
  } catch (error) {
    failure = error;
  }
  if (useLockfiles) {
    if (failure === undefined) await locks.databaseInUse();
    else await locks.restore(false);
  }
  const result: ImportResult = {
    mode,
    dryRun,
    ...counters,
    warnings,
    durationMs: Date.now() - started,
    rows: rows ?? (await baseStore.counts().catch(() => emptyCounts)),
  };
  if ((options.statistics ?? true) && !dryRun) {
    await options.db
      .query(
        `INSERT INTO import_statistics (started_at, finished_at, pre_import, tag_import, blob_import, pre_import_error,
           repositories_count, tags_count, manifests_count, blobs_count, storage_driver)
         VALUES ($1, now(), $2, $3, $4, $5, $6, $7, $8, $9, 'filesystem')`,
        [
          new Date(started),
          mode === 'full' || mode === 'pre-import',
          mode === 'full' || mode === 'import',
          mode === 'full' || mode === 'blobs',
          failure === undefined ? null : String(failure).slice(0, 1000),
          result.rows.repositories,
          result.rows.tags,
          result.rows.manifests,
          result.rows.blobs,
        ],
      )
      .catch(() => undefined);
  }
  await log({
    level: failure ? 'error' : 'info',
    msg: 'import finished',
    ...result,
    warnings: warnings.length,
  });
  if (failure !== undefined) throw failure;
  return result;
}

const emptyCounts: RowCounts = {
  namespaces: 0,
  repositories: 0,
  manifests: 0,
  manifestReferences: 0,
  layers: 0,
  tags: 0,
  blobs: 0,
  repositoryBlobs: 0,
};

const LOCK_CONTENT = '{"version":1}';

/** GitLab's lockfiles, at `<root>/docker/registry/lockfiles/`, with its state machine. */
export class Lockfiles {
  readonly dir: string;
  constructor(registryDir: string) {
    this.dir = join(registryDir, 'lockfiles');
  }

  async #exists(name: string): Promise<boolean> {
    try {
      return !(await stat(join(this.dir, name))).isDirectory();
    } catch {
      return false;
    }
  }

  filesystemInUse(): Promise<boolean> {
    return this.#exists('filesystem-in-use');
  }

  databaseLocked(): Promise<boolean> {
    return this.#exists('database-in-use');
  }

  /** After a successful import: the database holds the metadata now. */
  async databaseInUse(): Promise<void> {
    await mkdir(this.dir, { recursive: true });
    await rm(join(this.dir, 'filesystem-in-use'), { force: true });
    await writeFile(join(this.dir, 'database-in-use'), LOCK_CONTENT);
  }

  /** After a failed import or a dry run: the filesystem still holds the metadata. */
  async restore(dryRun: boolean): Promise<void> {
    if (dryRun && (await this.databaseLocked())) {
      throw new ImportError('LOCKFILE', 'could not restore lockfiles: database-in-use lockfile exists');
    }
    await mkdir(this.dir, { recursive: true });
    await rm(join(this.dir, 'database-in-use'), { force: true });
    await writeFile(join(this.dir, 'filesystem-in-use'), LOCK_CONTENT);
  }

  async read(name: 'filesystem-in-use' | 'database-in-use'): Promise<string | undefined> {
    try {
      return await readFile(join(this.dir, name), 'utf8');
    } catch {
      return undefined;
    }
  }
}
