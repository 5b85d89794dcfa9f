import {
  isStowageError,
  type Logger,
  type OperationOptions,
  type Registry,
  type ResolvedLogger,
  resolveLogger,
} from '@stowage/oci';
import { TagListing } from './listing.js';
import type { ListingOptions } from './types.js';

/**
 * What every operation of a repo stages storage works with: the registry and
 * repository underneath, the werf names, and the one cached tag listing that
 * lets a batch of reads list the repository once (werf #7559).
 */
export class RepoContext {
  readonly registry: Registry;
  readonly repository: string;
  readonly address: string;
  readonly project: string;
  readonly logger: ResolvedLogger;
  /** Number of full tag listings made (what `bench/stages` counts). */
  listings = 0;
  #listing: TagListing | undefined;
  #pending: Promise<TagListing> | undefined;

  constructor(setup: {
    registry: Registry;
    repository: string;
    address: string;
    project: string;
    logger?: Logger;
  }) {
    this.registry = setup.registry;
    this.repository = setup.repository;
    this.address = setup.address;
    this.project = setup.project;
    this.logger = resolveLogger(setup.logger);
  }

  /** `<address>:<tag>`. */
  imageName(tag: string): string {
    return `${this.address}:${tag}`;
  }

  /**
   * The repository's tags: the cached listing when `cache` is set and there is
   * one (concurrent callers share one listing in flight), else a fresh listing
   * that becomes the cached one. A repository that does not exist has no tags.
   */
  async tags(options: ListingOptions = {}): Promise<TagListing> {
    if (options.cache) {
      if (this.#listing) return this.#listing;
      if (this.#pending) return await this.#pending;
    }
    const pending = this.#list(options);
    this.#pending = pending;
    try {
      const listing = await pending;
      this.#listing = listing;
      return listing;
    } finally {
      if (this.#pending === pending) this.#pending = undefined;
    }
  }

  /** The cached listing, if one exists (never lists). */
  cached(): TagListing | undefined {
    return this.#listing;
  }

  /** Keeps the cached listing current after a write through this storage. */
  noteTag(tag: string, present: boolean): void {
    if (!this.#listing) return;
    if (present) this.#listing.add(tag);
    else this.#listing.delete(tag);
  }

  dropCache(): void {
    this.#listing = undefined;
  }

  async #list(options: OperationOptions): Promise<TagListing> {
    this.listings++;
    const tags: string[] = [];
    let last: string | undefined;
    try {
      for (;;) {
        const page = await this.registry.listTags(this.repository, {
          ...(options.signal ? { signal: options.signal } : {}),
          ...(last === undefined ? {} : { last }),
        });
        tags.push(...page.items);
        if (page.next === undefined || page.items.length === 0) break;
        last = page.next;
      }
    } catch (error) {
      if (!isStowageError(error, 'NAME_UNKNOWN')) throw error;
    }
    this.logger.debug({ repository: this.repository, tags: tags.length }, 'listed stages repository tags');
    return new TagListing(tags);
  }
}
