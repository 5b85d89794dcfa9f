import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { readFile, stat } from '@stowage/blob-store';
import {
  type Descriptor,
  type Digest,
  isDigest,
  type ParsedManifest,
  referrerDescriptor,
  subjectOf,
} from '@stowage/oci';
import type { StoreCaches } from './caches.js';
import { ifExists, writeFileAtomic } from './fs-utils.js';
import type { StorePaths } from './paths.js';

/**
 * What the store keeps beside each manifest of a repository, in
 * `<repo>/.stowage/manifests/<alg>/<hex>.json`: its presence there is what
 * makes the repository hold the manifest.
 */
export interface ManifestMeta {
  readonly mediaType: string;
  readonly size: number;
  readonly subject?: Digest;
  readonly artifactType?: string;
  readonly annotations?: Readonly<Record<string, string>>;
  /**
   * An index stored with `sparse: true` while some of its child manifests
   * were absent: absent children are then what was asked for, not corruption.
   */
  readonly sparse?: true;
}

/** The metadata of a parsed manifest; `sparse` for an index stored without some of its children. */
export function metaOf(parsed: ParsedManifest, sparse = false): ManifestMeta {
  const descriptor = referrerDescriptor({
    digest: parsed.digest,
    mediaType: parsed.mediaType,
    size: parsed.size,
    manifest: parsed.manifest,
  });
  const subject = subjectOf(parsed.manifest);
  return {
    mediaType: parsed.mediaType,
    size: parsed.size,
    ...(subject ? { subject } : {}),
    ...(descriptor.artifactType ? { artifactType: descriptor.artifactType } : {}),
    ...(descriptor.annotations ? { annotations: descriptor.annotations } : {}),
    ...(sparse ? { sparse: true } : {}),
  };
}

/** The descriptor a referrers listing shows for a stored manifest. */
export function descriptorOf(digest: Digest, meta: ManifestMeta): Descriptor {
  return {
    mediaType: meta.mediaType,
    digest,
    size: meta.size,
    ...(meta.artifactType ? { artifactType: meta.artifactType } : {}),
    ...(meta.annotations ? { annotations: meta.annotations } : {}),
  };
}

/** Reading and writing manifest metadata, through the store's caches. */
export class ManifestMetas {
  readonly #paths: StorePaths;
  readonly #caches: StoreCaches;

  constructor(paths: StorePaths, caches: StoreCaches) {
    this.#paths = paths;
    this.#caches = caches;
  }

  /** From disk, uncached. */
  async read(repository: string, digest: Digest): Promise<ManifestMeta | undefined> {
    const text = await ifExists(readFile(this.#paths.manifestMeta(repository, digest), 'utf8'));
    return text === undefined ? undefined : (JSON.parse(text) as ManifestMeta);
  }

  /** From the cache, else from disk (without checking that the manifest is still there). */
  async cached(repository: string, digest: Digest): Promise<ManifestMeta | undefined> {
    let meta = this.#caches.meta(repository, digest);
    if (!meta) {
      meta = await this.read(repository, digest);
      if (meta) this.#caches.setMeta(repository, digest, meta);
    }
    return meta;
  }

  /**
   * Whether the repository holds the manifest, and its metadata: only its
   * presence is checked on disk (one stat), which sees a delete made by
   * another process.
   */
  async present(repository: string, digest: Digest): Promise<ManifestMeta | undefined> {
    if (!(await ifExists(stat(this.#paths.manifestMeta(repository, digest))))) return undefined;
    return this.cached(repository, digest);
  }

  async write(repository: string, digest: Digest, meta: ManifestMeta): Promise<void> {
    await writeFileAtomic(this.#paths.manifestMeta(repository, digest), JSON.stringify(meta));
    this.#caches.setMeta(repository, digest, meta);
  }

  /** Every manifest the repository holds. */
  async digests(repository: string): Promise<Digest[]> {
    const root = this.#paths.repoMeta(repository, 'manifests');
    const digests: Digest[] = [];
    for (const algorithm of (await ifExists(readdir(root))) ?? []) {
      for (const file of (await ifExists(readdir(join(root, algorithm)))) ?? []) {
        const digest = `${algorithm}:${file.replace(/\.json$/, '')}`;
        if (file.endsWith('.json') && isDigest(digest)) digests.push(digest);
      }
    }
    return digests;
  }
}
