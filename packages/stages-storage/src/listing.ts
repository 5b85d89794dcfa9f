/**
 * One tag listing of a stages repository, kept as one sorted array without
 * duplicates: `has` and `withPrefix(digest)` are binary searches, so
 * `listStageIDsByDigest` for many digests costs one listing and a lookup
 * each, with nothing to index or hash first (a `Registry` answers sorted, and
 * sorting is skipped then).
 */
export class TagListing {
  /** The tags in byte order, each once. */
  readonly #sorted: string[];
  #version = 0;
  #additions = 0;

  constructor(tags: Iterable<string>) {
    const sorted = Array.isArray(tags) ? (tags as string[]).slice() : [...tags];
    let ordered = true;
    for (let i = 1; i < sorted.length; i++) {
      if ((sorted[i - 1] as string) >= (sorted[i] as string)) {
        ordered = false;
        break;
      }
    }
    if (!ordered) {
      // the default sort compares UTF-16 code units, like `<`, and is faster than a comparator
      sorted.sort();
      let kept = 0;
      for (let i = 0; i < sorted.length; i++) {
        if (kept > 0 && sorted[kept - 1] === sorted[i]) continue;
        sorted[kept++] = sorted[i] as string;
      }
      sorted.length = kept;
    }
    this.#sorted = sorted;
  }

  get size(): number {
    return this.#sorted.length;
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
    return this.#sorted[this.#lowerBound(tag)] === tag;
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
    const at = this.#lowerBound(tag);
    if (this.#sorted[at] === tag) return;
    this.#sorted.splice(at, 0, tag);
    this.#version++;
  }

  /** Records a tag removed through the storage. */
  delete(tag: string): void {
    const at = this.#lowerBound(tag);
    if (this.#sorted[at] !== tag) return;
    this.#sorted.splice(at, 1);
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
