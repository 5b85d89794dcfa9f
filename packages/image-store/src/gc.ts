import { readdir, readFile, rm, stat } from 'node:fs/promises';
import {
  type Digest,
  type GarbageCollectOptions,
  type GarbageCollectReport,
  manifestReferences,
  parseManifest,
  type ResolvedLogger,
} from '@stowage/oci';
import type { StoreCaches } from './caches.js';
import type { ContentStore } from './content-store.js';
import { publishGc } from './diagnostics.js';
import { ifExists, unlinkIfExists } from './fs-utils.js';
import type { Layouts } from './layout.js';
import type { ManifestMetas } from './manifest-meta.js';
import type { StorePaths } from './paths.js';
import type { TagFiles } from './tags.js';
import type { Uploads } from './uploads.js';

export interface ImageStoreGcOptions extends GarbageCollectOptions {
  /**
   * Also delete manifests nothing keeps: not tagged, not a child of a kept
   * index (unlike distribution 2.8's `--delete-untagged`, which breaks tagged
   * indexes), not a referrer of a kept manifest; older than the grace period.
   */
  readonly deleteUntagged?: boolean;
  /**
   * Told as the collection goes: after each repository is marked (`repositories` of
   * `total`), and after each stored blob is looked at (`blobs`, `removed` of them so far).
   */
  readonly onProgress?: (event: ImageStoreGcProgress) => void;
}

/** How far a garbage collection has come. */
export type ImageStoreGcProgress =
  | { readonly phase: 'mark'; readonly repositories: number; readonly total: number }
  | { readonly phase: 'sweep'; readonly blobs: number; readonly removed: number };

export interface ImageStoreGcReport extends GarbageCollectReport {
  /** Data directories of image records that no record owns (a crash between writes leaves them). */
  readonly recordDataRemoved: readonly string[];
}

export interface GarbageCollectorOptions {
  readonly paths: StorePaths;
  readonly caches: StoreCaches;
  readonly content: ContentStore;
  readonly layouts: Layouts;
  readonly metas: ManifestMetas;
  readonly tags: TagFiles;
  readonly uploads: Uploads;
  readonly records: { garbageCollect(options: { dryRun: boolean }): Promise<string[]> };
  readonly logger: ResolvedLogger;
}

/** What a manifest needs: its blobs and child manifests, and the manifest it refers to. */
interface Needs {
  readonly blobs: readonly Digest[];
  readonly children: readonly Digest[];
  readonly subject?: Digest;
}

/**
 * Garbage collection: repository links no manifest needs, then content no
 * repository links, expired uploads, crash leftovers in `.stowage/tmp` and
 * record data no record owns; with `deleteUntagged`, first the manifests
 * nothing keeps. Everything younger than the grace period stays (a push
 * refreshes the age of every blob it links), so an in-flight push is never
 * broken. A child manifest a sparse index lacks is simply not there: nothing
 * needs collecting, nothing fails.
 */
export class GarbageCollector {
  readonly #o: GarbageCollectorOptions;

  constructor(options: GarbageCollectorOptions) {
    this.#o = options;
  }

  async run(opts: ImageStoreGcOptions = {}): Promise<ImageStoreGcReport> {
    const { paths, caches, content, layouts, uploads, records, logger } = this.#o;
    const dryRun = opts.dryRun ?? false;
    const grace = opts.gracePeriodMs ?? 60 * 60 * 1000;
    const cutoff = Date.now() - grace;
    const linkedAnywhere = new Set<Digest>();
    const blobsRemoved = new Set<Digest>();
    let bytesFreed = 0;
    const manifestsRemoved: { repository: string; digest: Digest }[] = [];
    const repositories = await layouts.repositories();
    let marked = 0;
    for (const repository of repositories) {
      opts.signal?.throwIfAborted();
      await layouts.sync(repository);
      const removed = new Set<Digest>();
      if (opts.deleteUntagged) {
        for (const digest of (await this.#untagged(repository)) ?? []) {
          // a manifest pushed by digest moments ago (an index's child, say) has its grace period
          const info = await ifExists(stat(paths.manifestMeta(repository, digest)));
          if (!info || info.mtimeMs > cutoff) continue;
          removed.add(digest);
          manifestsRemoved.push({ repository, digest });
          if (!dryRun) {
            await unlinkIfExists(paths.manifestMeta(repository, digest));
            await unlinkIfExists(paths.repoBlob(repository, digest));
            caches.manifestDeleted(repository, digest);
          }
        }
      }
      const referenced = await this.#referenced(repository, removed);
      for (const [digest, path] of await content.repositoryBlobs(repository)) {
        const info = await ifExists(stat(path));
        if (!info) continue;
        if (referenced === undefined || referenced.has(digest) || info.mtimeMs > cutoff) {
          linkedAnywhere.add(digest);
          continue;
        }
        if (!dryRun) await unlinkIfExists(path);
      }
      opts.onProgress?.({ phase: 'mark', repositories: ++marked, total: repositories.length });
    }
    let swept = 0;
    for await (const blob of content.blobs.list()) {
      swept++;
      if (!(linkedAnywhere.has(blob.digest) || blob.modifiedAt > cutoff)) {
        blobsRemoved.add(blob.digest);
        bytesFreed += blob.size;
        if (!dryRun) await content.blobs.delete(blob.digest);
      }
      opts.onProgress?.({ phase: 'sweep', blobs: swept, removed: blobsRemoved.size });
    }
    const uploadsRemoved = await uploads.expire(dryRun);
    for (const name of (await ifExists(readdir(paths.internal('tmp')))) ?? []) {
      const info = await ifExists(stat(paths.tmp(name)));
      if (info && info.mtimeMs < cutoff && !dryRun) await rm(paths.tmp(name), { force: true });
    }
    const recordDataRemoved = await records.garbageCollect({ dryRun });
    const report: ImageStoreGcReport = {
      blobsRemoved: [...blobsRemoved],
      manifestsRemoved,
      uploadsRemoved,
      recordDataRemoved,
      bytesFreed,
      dryRun,
    };
    logger.info(
      {
        root: paths.root,
        dryRun,
        blobsRemoved: report.blobsRemoved.length,
        manifestsRemoved: manifestsRemoved.length,
        uploadsRemoved,
        bytesFreed,
      },
      'garbage collection done',
    );
    publishGc(() => ({ root: paths.root, report }));
    return report;
  }

  /** What each manifest of a repository needs; `undefined` when one cannot be read. */
  async #needs(repository: string): Promise<Map<Digest, Needs> | undefined> {
    const needs = new Map<Digest, Needs>();
    for (const digest of await this.#o.metas.digests(repository)) {
      const bytes = await ifExists(readFile(this.#o.paths.repoBlob(repository, digest)));
      if (!bytes) {
        needs.set(digest, { blobs: [], children: [] });
        continue;
      }
      try {
        const references = manifestReferences(parseManifest(bytes, { maxSize: Number.MAX_SAFE_INTEGER }));
        needs.set(digest, {
          // a non-distributable layer need not be here, but one that is stays
          blobs: [...references.blobs, ...references.nonDistributable].map((b) => b.digest),
          children: references.manifests.map((m) => m.digest),
          ...(references.subject ? { subject: references.subject.digest } : {}),
        });
      } catch {
        // fsck reports it; without knowing what it needs, nothing of this repository is collected
        return undefined;
      }
    }
    return needs;
  }

  /** Every blob the manifests of a repository need, and the manifests themselves. */
  async #referenced(repository: string, removed: ReadonlySet<Digest>): Promise<Set<Digest> | undefined> {
    const needs = await this.#needs(repository);
    if (!needs) return undefined;
    const referenced = new Set<Digest>();
    for (const [digest, need] of needs) {
      if (removed.has(digest)) continue;
      referenced.add(digest);
      for (const blob of need.blobs) referenced.add(blob);
      for (const child of need.children) referenced.add(child);
    }
    return referenced;
  }

  /**
   * Manifests of a repository that nothing keeps: not tagged, not a child of a
   * kept index, not a referrer of a kept manifest. `undefined` when a manifest
   * cannot be read (then nothing of the repository is collected).
   */
  async #untagged(repository: string): Promise<Set<Digest> | undefined> {
    const needs = await this.#needs(repository);
    if (!needs) return undefined;
    const live = new Set<Digest>();
    const visit = (digest: Digest) => {
      if (live.has(digest)) return;
      live.add(digest);
      for (const child of needs.get(digest)?.children ?? []) visit(child);
    };
    for (const digest of (await this.#o.tags.list(repository)).values()) visit(digest);
    for (let grew = true; grew; ) {
      grew = false;
      for (const [digest, need] of needs) {
        if (need.subject !== undefined && !live.has(digest) && live.has(need.subject)) {
          visit(digest);
          grew = true;
        }
      }
    }
    return new Set([...needs.keys()].filter((digest) => !live.has(digest)));
  }
}
