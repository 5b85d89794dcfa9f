/**
 * One tag listing of a stages repository, kept sorted: `withPrefix(digest)` is
 * a binary search, so `listStageIDsByDigest` for many digests costs one
 * listing and a lookup each, with nothing to index first (a registry's answer
 * is already sorted, and sorting is skipped then).
 */
export class TagListing {
  readonly #tags: Set<string>;
  /** The same tags in byte order. */
  readonly #sorted: string[];
  #version = 0;
  #additions = 0;

  constructor(tags: Iterable<string>) {
    this.#tags = new Set(tags);
    const sorted = [...this.#tags];
    for (let i = 1; i < sorted.length; i++) {
      if ((sorted[i - 1] as string) > (sorted[i] as string)) {
        // the default sort compares UTF-16 code units, like `<`, and is faster than a comparator
        sorted.sort();
        break;
      }
    }
    this.#sorted = sorted;
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

  /** Every tag, in byte order. */
  all(): string[] {
    return this.#sorted.slice();
  }

  /** Tags that start with `prefix`, in byte order. */
  withPrefix(prefix: string): string[] {
    const out: string[] = [];
    for (let i = this.#lowerBound(prefix); i < this.#sorted.length; i++) {
      const tag = this.#sorted[i] as string;
      if (!tag.startsWith(prefix)) break;
      out.push(tag);
    }
    return out;
  }

  /** Records a tag written through the storage. */
  add(tag: string): void {
    this.#additions++;
    if (this.#tags.has(tag)) return;
    this.#tags.add(tag);
    this.#sorted.splice(this.#lowerBound(tag), 0, tag);
    this.#version++;
  }

  /** Records a tag removed through the storage. */
  delete(tag: string): void {
    if (!this.#tags.delete(tag)) return;
    const at = this.#lowerBound(tag);
    if (this.#sorted[at] === tag) this.#sorted.splice(at, 1);
    this.#version++;
  }

  /** The first position whose tag is not before `value`. */
  #lowerBound(value: string): number {
    let lo = 0;
    let hi = this.#sorted.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if ((this.#sorted[mid] as string) < value) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }
}
