import { readdir } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { readFile } from '@stowage/blob-store';
import { type Digest, isDigest, parseDigest, parseManifestReference } from '@stowage/oci';
import type { StoreCaches } from './caches.js';
import { ifExists, syncDir, unlinkIfExists, writeFileAtomic } from './fs-utils.js';
import type { StorePaths } from './paths.js';

/**
 * A repository's tags: one file each under `<repo>/.stowage/tags/`, holding
 * the digest it points at. These files are the source of truth; `index.json`
 * is regenerated from them.
 */
export class TagFiles {
  readonly #paths: StorePaths;
  readonly #caches: StoreCaches;

  constructor(paths: StorePaths, caches: StoreCaches) {
    this.#paths = paths;
    this.#caches = caches;
  }

  /** The digest a manifest reference (tag or digest) names; `undefined` for a tag not there. */
  async resolve(repository: string, reference: string): Promise<Digest | undefined> {
    const parsed = parseManifestReference(reference);
    if ('digest' in parsed) return parsed.digest;
    const text = await ifExists(readFile(this.#paths.tag(repository, parsed.tag), 'utf8'));
    return text === undefined ? undefined : parseDigest(text.trim());
  }

  /** The digest a tag file holds; `undefined` when it is missing or holds no digest. */
  async read(repository: string, tag: string): Promise<Digest | undefined> {
    const text = await ifExists(readFile(this.#paths.tag(repository, tag), 'utf8'));
    const digest = text?.trim();
    return isDigest(digest) ? digest : undefined;
  }

  /** The tag names on disk. */
  async names(repository: string): Promise<string[]> {
    const names = (await ifExists(readdir(this.#paths.repoMeta(repository, 'tags')))) ?? [];
    return names.filter((name) => !name.startsWith('.'));
  }

  /** Every tag and its digest, read from disk. */
  async list(repository: string): Promise<Map<string, Digest>> {
    const dir = this.#paths.repoMeta(repository, 'tags');
    const tags = new Map<string, Digest>();
    for (const name of await this.names(repository)) {
      const text = await ifExists(readFile(join(dir, name), 'utf8'));
      const digest = text?.trim();
      if (isDigest(digest)) tags.set(name, digest);
    }
    return tags;
  }

  /** Every tag and its digest, from the cache brought up to date with the names on disk. */
  async current(repository: string): Promise<Map<string, Digest>> {
    const dir = this.#paths.repoMeta(repository, 'tags');
    return this.#caches.syncTags(repository, new Set(await this.names(repository)), async (name) => {
      const text = await ifExists(readFile(join(dir, name), 'utf8'));
      const digest = text?.trim();
      return isDigest(digest) ? digest : undefined;
    });
  }

  async write(repository: string, tag: string, digest: Digest): Promise<void> {
    await writeFileAtomic(this.#paths.tag(repository, tag), digest);
    this.#caches.tagWritten(repository, tag, digest);
  }

  /** Removes a tag durably; false when it was not there. */
  async remove(repository: string, tag: string): Promise<boolean> {
    const path = this.#paths.tag(repository, tag);
    const removed = await unlinkIfExists(path);
    if (removed) await syncDir(dirname(path));
    this.#caches.tagRemoved(repository, tag);
    return removed;
  }
}
