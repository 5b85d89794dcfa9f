import { STAGE_DIGEST_LENGTH } from '@stowage/tags';

/**
 * One tag listing of a stages repository, with the indexes the reads need,
 * built lazily once per listing: tags by their first 56 characters (a stage
 * digest), so `listStageIDsByDigest` for many digests costs one listing and a
 * map lookup each, not a scan of 60,000 tags per digest.
 */
export class TagListing {
  readonly #tags: Set<string>;
  #byDigestPrefix: Map<string, string[]> | undefined;
  #version = 0;
  #additions = 0;

  constructor(tags: Iterable<string>) {
    this.#tags = new Set(tags);
  }

  get size(): number {
    return this.#tags.size;
  }

  /** Grows by one on every change (`add` or `delete` of a tag): an index built at one version is stale at another. */
  get version(): number {
    return this.#version;
  }

  /**
   * Grows by one on every `add`, even of a tag already listed (its manifest may
   * have moved): what is known of the tags' targets holds while it stays the
   * same. Deletes leave it alone (check `has`).
   */
  get additions(): number {
    return this.#additions;
  }

  has(tag: string): boolean {
    return this.#tags.has(tag);
  }

  /** Every tag, in listing order (byte order from a registry). */
  all(): string[] {
    return [...this.#tags];
  }

  /** Tags that start with `prefix`, in listing order. */
  withPrefix(prefix: string): string[] {
    if (prefix.length === STAGE_DIGEST_LENGTH) {
      this.#byDigestPrefix ??= this.#index();
      return this.#byDigestPrefix.get(prefix) ?? [];
    }
    return this.all().filter((tag) => tag.startsWith(prefix));
  }

  /** Records a tag written through the storage. */
  add(tag: string): void {
    this.#additions++;
    if (this.#tags.has(tag)) return;
    this.#tags.add(tag);
    this.#version++;
    if (this.#byDigestPrefix && tag.length >= STAGE_DIGEST_LENGTH) {
      const key = tag.slice(0, STAGE_DIGEST_LENGTH);
      const list = this.#byDigestPrefix.get(key);
      if (list) list.push(tag);
      else this.#byDigestPrefix.set(key, [tag]);
    }
  }

  /** Records a tag removed through the storage. */
  delete(tag: string): void {
    if (!this.#tags.delete(tag)) return;
    this.#version++;
    if (this.#byDigestPrefix && tag.length >= STAGE_DIGEST_LENGTH) {
      const key = tag.slice(0, STAGE_DIGEST_LENGTH);
      const list = this.#byDigestPrefix.get(key);
      if (list) {
        const at = list.indexOf(tag);
        if (at >= 0) list.splice(at, 1);
      }
    }
  }

  #index(): Map<string, string[]> {
    const index = new Map<string, string[]>();
    for (const tag of this.#tags) {
      if (tag.length < STAGE_DIGEST_LENGTH) continue;
      const key = tag.slice(0, STAGE_DIGEST_LENGTH);
      const list = index.get(key);
      if (list) list.push(tag);
      else index.set(key, [tag]);
    }
    return index;
  }
}
