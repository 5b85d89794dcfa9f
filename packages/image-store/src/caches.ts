import type { Digest } from '@stowage/oci';
import type { ManifestMeta } from './manifest-meta.js';

/** How many bytes of manifests a store keeps in memory for reads. */
const MANIFEST_CACHE_BYTES = 32 << 20;

/** What is known of the `index.json` on disk: its stat signature and its sha256. */
export interface IndexSeen {
  readonly signature: string;
  readonly hash: string;
}

/** The stat fields that change whenever a file is replaced or rewritten. */
export function statSignature(info: { ino: number; size: number; mtimeMs: number }): string {
  return `${info.ino}:${info.size}:${info.mtimeMs}`;
}

/**
 * Everything a store keeps in memory about its disk, in one place, with the
 * rule that keeps each honest while other processes write the same root:
 *
 * - tags (per repository, tag → digest), what `index.json` is built from: this
 *   process's tag writes update it (`tagWritten`, `tagRemoved`); before each use
 *   the tag directory is listed, names gone from disk are dropped and names not
 *   cached are read (`syncTags`), so another process's writes are seen.
 * - manifest metadata (per repository and digest): the metadata of a digest
 *   never changes, so an entry stays valid while the manifest is present; its
 *   presence is always checked on disk (one stat) by the caller. Dropped when
 *   this process deletes the manifest (`manifestDeleted`), replaced when it
 *   rewrites it (`setMeta`).
 * - manifest bytes (per digest, shared by every repository): content-addressed,
 *   so never stale; bounded to `MANIFEST_CACHE_BYTES`, least recently used out.
 * - the last `index.json` seen per repository (stat signature and sha256): an
 *   `index.json` whose stat has not changed is not read again. Set after every
 *   read or write of it.
 */
export class StoreCaches {
  readonly #tags = new Map<string, Map<string, Digest>>();
  readonly #meta = new Map<string, ManifestMeta>();
  readonly #bytes = new Map<Digest, Uint8Array>();
  #bytesHeld = 0;
  readonly #indexes = new Map<string, IndexSeen>();

  // --- tags ---

  /** The cached tags of a repository (created empty); bring it up to date with `syncTags` first. */
  tags(repository: string): Map<string, Digest> {
    let tags = this.#tags.get(repository);
    if (!tags) {
      tags = new Map();
      this.#tags.set(repository, tags);
    }
    return tags;
  }

  /**
   * Brings a repository's tag cache up to the tag names on disk: names gone are
   * dropped, names new are read with `read` (a tag file this process did not write).
   */
  async syncTags(
    repository: string,
    names: ReadonlySet<string>,
    read: (tag: string) => Promise<Digest | undefined>,
  ): Promise<Map<string, Digest>> {
    const tags = this.tags(repository);
    for (const tag of tags.keys()) if (!names.has(tag)) tags.delete(tag);
    for (const name of names) {
      if (tags.has(name)) continue;
      const digest = await read(name);
      if (digest !== undefined) tags.set(name, digest);
    }
    return tags;
  }

  tagWritten(repository: string, tag: string, digest: Digest): void {
    this.#tags.get(repository)?.set(tag, digest);
  }

  tagRemoved(repository: string, tag: string): void {
    this.#tags.get(repository)?.delete(tag);
  }

  // --- manifest metadata ---

  meta(repository: string, digest: Digest): ManifestMeta | undefined {
    return this.#meta.get(`${repository}@${digest}`);
  }

  setMeta(repository: string, digest: Digest, meta: ManifestMeta): void {
    this.#meta.set(`${repository}@${digest}`, meta);
  }

  /** A manifest left the repository: its metadata goes, and so do the cached tags pointing at it. */
  manifestDeleted(repository: string, digest: Digest): void {
    this.#meta.delete(`${repository}@${digest}`);
    const tags = this.#tags.get(repository);
    if (tags) for (const [tag, target] of tags) if (target === digest) tags.delete(tag);
  }

  // --- manifest bytes ---

  bytes(digest: Digest): Uint8Array | undefined {
    const hit = this.#bytes.get(digest);
    if (hit) {
      // most recently used last, so the oldest is evicted first
      this.#bytes.delete(digest);
      this.#bytes.set(digest, hit);
    }
    return hit;
  }

  keepBytes(digest: Digest, bytes: Uint8Array): void {
    if (bytes.byteLength > MANIFEST_CACHE_BYTES / 64 || this.#bytes.has(digest)) return;
    this.#bytes.set(digest, bytes);
    this.#bytesHeld += bytes.byteLength;
    for (const [old, held] of this.#bytes) {
      if (this.#bytesHeld <= MANIFEST_CACHE_BYTES) break;
      this.#bytes.delete(old);
      this.#bytesHeld -= held.byteLength;
    }
  }

  // --- index.json ---

  indexSeen(repository: string): IndexSeen | undefined {
    return this.#indexes.get(repository);
  }

  setIndexSeen(repository: string, seen: IndexSeen): void {
    this.#indexes.set(repository, seen);
  }
}
