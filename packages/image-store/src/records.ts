import { readdir, readFile, rm, stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { mkdir } from '@stowage/blob-store';
import { byBytes, truncate } from '@stowage/oci';
import { ifExists, writeFileAtomic } from './fs-utils.js';
import type { StoreLocks } from './lock.js';
import {
  bigDataFileName,
  clone,
  compareCreated,
  dedupe,
  fail,
  formatRecord,
  GO_DIGEST,
  generateId,
  goTime,
  type ImageRecord,
  isPlainId,
  parseImageName,
  parseRecord,
  type Rec,
  recomputeDigests,
  requireItemName,
  setOwn,
  sha256,
  view,
} from './records-format.js';
import { ChangeJournal } from './records-journal.js';

export { ImageRecordError, type ImageRecordErrorCode } from './errors.js';
export {
  bigDataFileName,
  formatImagesJson,
  type ImageRecord,
  parseImageName,
  parseImagesJson,
} from './records-format.js';

export interface CreateImageOptions {
  /** Default: 64 random hex characters whose first 12 are not all digits. */
  readonly id?: string;
  readonly names?: readonly string[];
  readonly namesHistory?: readonly string[];
  readonly topLayer?: string;
  readonly metadata?: string;
  readonly digest?: string;
  /** A `Date` or an RFC 3339 string (kept as given). Default: now, UTC. */
  readonly created?: Date | string;
  readonly flags?: Readonly<Record<string, unknown>>;
  readonly bigData?: readonly { readonly key: string; readonly data: Uint8Array | string }[];
}

/** One big-data item to save. */
export interface SetBigDataOptions {
  /** The item's name; `manifest*` items add their digest to the record's digests. */
  readonly key: string;
  readonly data: Uint8Array | string;
  /** Digest of a `manifest*` item. Default: sha256 of the bytes. */
  readonly digestManifest?: (data: Uint8Array) => string;
}

/** Told, inside the write, how the digest each changed name points at moved. */
export type NameListener = (
  changes: readonly { name: string; before?: string; after?: string }[],
) => Promise<void>;

export interface ImageRecords {
  create(options?: CreateImageOptions): Promise<ImageRecord>;
  /** By ID, then by name, then by unique ID prefix. */
  get(idOrName: string): Promise<ImageRecord>;
  exists(idOrName: string): Promise<boolean>;
  list(): Promise<ImageRecord[]>;
  byDigest(digest: string): Promise<ImageRecord[]>;
  /** The new names first, then the old ones; names taken from other images are moved. */
  addNames(idOrName: string, names: readonly string[]): Promise<ImageRecord>;
  setNames(idOrName: string, names: readonly string[]): Promise<ImageRecord>;
  removeNames(idOrName: string, names: readonly string[]): Promise<ImageRecord>;
  setMetadata(idOrName: string, metadata: string): Promise<ImageRecord>;
  setFlag(idOrName: string, flag: string, value: unknown): Promise<ImageRecord>;
  clearFlag(idOrName: string, flag: string): Promise<ImageRecord>;
  /** Saves a big-data item (the file first, then the record). */
  setBigData(idOrName: string, item: SetBigDataOptions): Promise<ImageRecord>;
  getBigData(idOrName: string, key: string): Promise<Uint8Array>;
  bigDataSize(idOrName: string, key: string): Promise<number>;
  bigDataDigest(idOrName: string, key: string): Promise<string>;
  bigDataNames(idOrName: string): Promise<readonly string[]>;
  delete(idOrName: string): Promise<void>;
  /** Data directories no record owns (left by a crash); `dryRun` only reports them. */
  garbageCollect(options?: { dryRun?: boolean }): Promise<string[]>;
  /** Every record as containers/storage's images.json, byte for byte. */
  exportImagesJson(): Promise<string>;
  /** The change token (spec B.7 layout): 64 bytes, or empty before the first write. */
  changeToken(): Promise<Uint8Array>;
}

/** The outcome of one record write: the records to save and delete, and what to return. */
interface Written<T> {
  changed: Rec[];
  deleted?: string[];
  result: T;
}

export interface RecordStoreOptions {
  /** `<root>/.stowage/images`: one `<id>.json` per record, `<id>/` holds its big data. */
  readonly dir: string;
  readonly locks: StoreLocks;
  readonly readOnly: boolean;
  readonly onNames?: NameListener;
}

/**
 * Image records kept one file per record, so a write costs the same at 100,000
 * records as at 1,000. Every write holds the store's `images` lock, writes the
 * change token (`images.lock`, 64 bytes: time, counter, pid, random), appends
 * the IDs it changes to `images.journal`, then replaces each record file
 * atomically. A reader compares the token before each read (one 64-byte
 * read); when it moved, it takes the lock and re-reads only the records the
 * journal names since its last look. A crash leaves either record version,
 * never a torn file; names claimed twice after a crash go to the record
 * created later, as containers/storage resolves them.
 */
export class RecordStore implements ImageRecords {
  readonly #dir: string;
  readonly #locks: StoreLocks;
  readonly #readOnly: boolean;
  readonly #onNames: NameListener | undefined;
  #loaded = false;
  #byId = new Map<string, Rec>();
  #byName = new Map<string, string>();
  #byDigest = new Map<string, Set<string>>();
  #sorted: string[] | undefined;
  readonly #journal: ChangeJournal;

  constructor(options: RecordStoreOptions) {
    this.#dir = options.dir;
    this.#locks = options.locks;
    this.#readOnly = options.readOnly;
    this.#onNames = options.onNames;
    this.#journal = new ChangeJournal({
      tokenPath: join(this.#dir, '..', 'images.lock'),
      journalPath: join(this.#dir, '..', 'images.journal'),
      readOnly: this.#readOnly,
    });
  }

  // --- paths ---

  #recordPath(id: string): string {
    return join(this.#dir, `${id}.json`);
  }

  #dataDir(id: string): string {
    return join(this.#dir, id);
  }

  async changeToken(): Promise<Uint8Array> {
    return new Uint8Array(await this.#journal.readToken());
  }

  // --- indexes ---

  #index(rec: Rec): void {
    this.#byId.set(rec.id, rec);
    for (const name of rec.names) this.#byName.set(name, rec.id);
    for (const digest of rec.digests) {
      let ids = this.#byDigest.get(digest);
      if (!ids) {
        ids = new Set();
        this.#byDigest.set(digest, ids);
      }
      ids.add(rec.id);
    }
    this.#sorted = undefined;
  }

  #unindex(id: string): void {
    const rec = this.#byId.get(id);
    if (!rec) return;
    this.#byId.delete(id);
    for (const name of rec.names) if (this.#byName.get(name) === id) this.#byName.delete(name);
    for (const digest of rec.digests) {
      const ids = this.#byDigest.get(digest);
      ids?.delete(id);
      if (ids?.size === 0) this.#byDigest.delete(digest);
    }
    this.#sorted = undefined;
  }

  /**
   * Puts records read from disk into the indexes, giving a name claimed twice to
   * the record created later. Returns the records that lost a name (to save).
   */
  #absorb(recs: readonly Rec[]): Rec[] {
    const losers = new Map<string, Rec>();
    for (const rec of recs) this.#unindex(rec.id);
    const ordered = [...recs].sort(compareCreated);
    for (const rec of ordered) {
      for (const name of rec.names) {
        const ownerId = this.#byName.get(name);
        const owner = ownerId === undefined ? undefined : this.#byId.get(ownerId);
        if (!owner || owner.id === rec.id) continue;
        const ownerFirst = compareCreated(owner, rec) <= 0;
        const loser = ownerFirst ? owner : rec;
        if (loser === rec) {
          rec.names = rec.names.filter((n) => n !== name);
        } else {
          this.#unindex(owner.id);
          owner.names = owner.names.filter((n) => n !== name);
          this.#index(owner);
        }
        losers.set(loser.id, loser);
      }
      this.#index(rec);
    }
    return [...losers.values()];
  }

  async #readRecord(id: string): Promise<Rec | undefined> {
    const path = this.#recordPath(id);
    const text = await ifExists(readFile(path, 'utf8'));
    if (text === undefined) return undefined;
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch (error) {
      fail('CORRUPT_RECORD', `${path} is not JSON: ${(error as Error).message}`, { path });
    }
    const rec = parseRecord(value, path);
    if (rec.id !== id) fail('CORRUPT_RECORD', `${path} holds image ${rec.id}`, { path });
    return rec;
  }

  /** Reads every record (under the lock). */
  async #loadAll(): Promise<Rec[]> {
    this.#byId.clear();
    this.#byName.clear();
    this.#byDigest.clear();
    this.#sorted = undefined;
    await this.#journal.rewind();
    const recs: Rec[] = [];
    for (const entry of (await ifExists(readdir(this.#dir))) ?? []) {
      if (!entry.endsWith('.json') || entry.startsWith('.')) continue;
      const rec = await this.#readRecord(entry.slice(0, -5));
      if (rec) recs.push(rec);
    }
    this.#loaded = true;
    return this.#absorb(recs);
  }

  /** Brings memory up to date with disk (the caller holds the lock). */
  async #catchUp(): Promise<void> {
    const token = await this.#journal.readToken();
    if (this.#loaded && this.#journal.matches(token)) return;
    let losers: Rec[];
    const ids = this.#loaded ? await this.#journal.changesSince() : undefined;
    if (ids === undefined) {
      losers = await this.#loadAll();
    } else {
      const recs: Rec[] = [];
      for (const id of ids) {
        const rec = isPlainId(id) ? await this.#readRecord(id) : undefined;
        if (rec) recs.push(rec);
        else this.#unindex(id);
      }
      losers = this.#absorb(recs);
    }
    this.#journal.caughtUp(token);
    if (losers.length === 0) return;
    if (this.#readOnly) {
      // Not repaired, so not trusted: every call until a writer repairs it fails the same way.
      this.#loaded = false;
      fail('DUPLICATE_IMAGE_NAMES', 'read-only image store assigns the same name to multiple images', {
        ids: losers.map((r) => r.id),
      });
    }
    await this.#persist(losers, []);
  }

  /** Makes sure memory reflects every write any process made, checking the token first. */
  async #fresh(): Promise<void> {
    if (this.#loaded && this.#journal.matches(await this.#journal.readToken())) return;
    let lock: AsyncDisposable;
    try {
      lock = await this.#locks.acquire('stowage:images');
    } catch (error) {
      // On a read-only filesystem nobody can write, so a reader needs no lock to read.
      // (A recursive mkdir there fails with ENOENT rather than EROFS.)
      const code = (error as NodeJS.ErrnoException).code;
      if (this.#readOnly && ['EROFS', 'EACCES', 'EPERM', 'ENOENT'].includes(code ?? '')) {
        await this.#catchUp();
        return;
      }
      throw error;
    }
    await using _lock = lock;
    await this.#catchUp();
  }

  /** Saves records and deletions: token, journal, then the files. The lock is held. */
  async #persist(changed: readonly Rec[], deleted: readonly string[]): Promise<void> {
    await mkdir(this.#dir, { recursive: true, mode: 0o700 });
    // #catchUp just ran under this lock, so the journal's position is current.
    await this.#journal.record([...changed.map((r) => r.id), ...deleted]);
    for (const rec of changed) {
      await writeFileAtomic(this.#recordPath(rec.id), formatRecord(rec));
    }
    for (const id of deleted) {
      await ifExists(unlink(this.#recordPath(id)));
      await rm(this.#dataDir(id), { recursive: true, force: true });
    }
    for (const rec of changed) {
      this.#unindex(rec.id);
      this.#index(rec);
    }
    for (const id of deleted) this.#unindex(id);
  }

  #writable(what: string): void {
    if (this.#readOnly) {
      fail(
        'STORE_READ_ONLY',
        `not allowed to ${what} at ${this.#dir}: called a write method on a read-only store`,
      );
    }
  }

  /** Resolves by exact ID, exact name, then unique ID prefix. */
  #lookup(key: string): Rec {
    const unknown = (reason: string): never =>
      fail('IMAGE_UNKNOWN', `locating image with ID ${JSON.stringify(truncate(key, 300))}: image not known`, {
        key: truncate(key, 300),
        reason,
      });
    const exact = this.#byId.get(key);
    if (exact) return exact;
    const named = this.#byName.get(key);
    if (named !== undefined) return this.#byId.get(named) as Rec;
    if (key === '' || key.includes(' ')) return unknown('prefix cannot be empty');
    if (!this.#sorted) this.#sorted = [...this.#byId.keys()].sort(byBytes);
    const ids = this.#sorted;
    let lo = 0;
    let hi = ids.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (byBytes(ids[mid] as string, key) < 0) lo = mid + 1;
      else hi = mid;
    }
    const first = ids[lo];
    if (first === undefined || !first.startsWith(key)) return unknown('no ID has this prefix');
    const second = ids[lo + 1];
    if (second?.startsWith(key)) return unknown('multiple IDs found with provided prefix');
    return this.#byId.get(first) as Rec;
  }

  /**
   * One write: under the lock and up to date, `work` returns the records it
   * changed (copies) and the IDs it deleted; the name listener hears which
   * names now point at which digest before the lock is released.
   */
  async #write<T>(what: string, work: () => Written<T> | Promise<Written<T>>): Promise<T> {
    this.#writable(what);
    await using _lock = await this.#locks.acquire('stowage:images');
    await this.#catchUp();
    const { changed, deleted = [], result } = await work();
    const touched = new Set<string>();
    for (const id of [...changed.map((r) => r.id), ...deleted]) {
      for (const name of this.#byId.get(id)?.names ?? []) touched.add(name);
    }
    for (const rec of changed) for (const name of rec.names) touched.add(name);
    const owners = () =>
      new Map(
        [...touched].map((name) => {
          const owner = this.#byName.get(name);
          return [name, { owner, digest: owner === undefined ? undefined : this.#byId.get(owner)?.digest }];
        }),
      );
    const before = owners();
    try {
      await this.#persist(changed, deleted);
    } catch (error) {
      // Part of it may be on disk: the next call reloads everything rather than trust memory.
      this.#loaded = false;
      throw error;
    }
    if (this.#onNames) {
      const changes: { name: string; before?: string; after?: string }[] = [];
      for (const [name, now] of owners()) {
        const was = before.get(name);
        if (was?.owner === now.owner && was?.digest === now.digest) continue;
        changes.push({
          name,
          ...(was?.digest ? { before: was.digest } : {}),
          ...(now.digest ? { after: now.digest } : {}),
        });
      }
      if (changes.length) await this.#onNames(changes);
    }
    return result;
  }

  /** Moves `names` onto `target`, taking them from whichever record has them. */
  #claim(target: Rec, names: readonly string[]): Rec[] {
    const changed = new Map<string, Rec>([[target.id, target]]);
    for (const name of names) {
      const ownerId = this.#byName.get(name);
      if (ownerId === undefined || ownerId === target.id) continue;
      const owner = changed.get(ownerId) ?? clone(this.#byId.get(ownerId) as Rec);
      owner.names = owner.names.filter((n) => n !== name);
      changed.set(owner.id, owner);
    }
    return [...changed.values()];
  }

  // --- the API ---

  async create(options: CreateImageOptions = {}): Promise<ImageRecord> {
    this.#writable('create new images');
    // An empty ID asks for a generated one, as in containers/storage.
    const givenId = options.id === '' ? undefined : options.id;
    if (givenId !== undefined && !isPlainId(givenId)) {
      fail(
        'INVALID_ID',
        `image ID ${JSON.stringify(truncate(givenId, 300))} is not [A-Za-z0-9][A-Za-z0-9_-]*`,
      );
    }
    const names = dedupe(options.names ?? []);
    for (const name of names) parseImageName(name);
    if (options.digest !== undefined && !GO_DIGEST.test(options.digest)) {
      fail('INVALID_DIGEST', `invalid image digest ${JSON.stringify(truncate(options.digest, 300))}`);
    }
    const created =
      options.created === undefined
        ? goTime(new Date())
        : typeof options.created === 'string'
          ? options.created
          : goTime(options.created);
    const rec = await this.#write('create new images', () => {
      const id = givenId ?? generateId((candidate) => this.#byId.has(candidate));
      if (this.#byId.has(id)) {
        fail(
          'DUPLICATE_ID',
          `an image with ID ${JSON.stringify(id)} already exists: that ID is already in use`,
          {
            id,
          },
        );
      }
      for (const name of names) {
        const owner = this.#byName.get(name);
        if (owner !== undefined) {
          fail(
            'DUPLICATE_NAME',
            `image name ${JSON.stringify(name)} is already associated with image ${JSON.stringify(owner)}: that name is already in use`,
            { name, id: owner },
          );
        }
      }
      const fresh: Rec = {
        id,
        ...(options.digest ? { digest: options.digest } : {}),
        names,
        namesHistory: [...(options.namesHistory ?? [])],
        ...(options.topLayer ? { layer: options.topLayer } : {}),
        mappedLayers: [],
        ...(options.metadata ? { metadata: options.metadata } : {}),
        bigDataNames: [],
        bigDataSizes: {},
        bigDataDigests: {},
        created,
        flags: structuredClone({ ...(options.flags ?? {}) }),
        digests: [],
      };
      recomputeDigests(fresh);
      return { changed: [fresh], result: fresh };
    });
    try {
      for (const item of options.bigData ?? []) await this.setBigData(rec.id, item);
    } catch (error) {
      await this.delete(rec.id).catch(() => undefined);
      throw error;
    }
    return view(this.#byId.get(rec.id) ?? rec, false);
  }

  async get(key: string): Promise<ImageRecord> {
    await this.#fresh();
    return view(this.#lookup(key), this.#readOnly);
  }

  async exists(key: string): Promise<boolean> {
    await this.#fresh();
    try {
      this.#lookup(key);
      return true;
    } catch {
      return false;
    }
  }

  async list(): Promise<ImageRecord[]> {
    await this.#fresh();
    return [...this.#byId.values()].map((rec) => view(rec, this.#readOnly));
  }

  async byDigest(digest: string): Promise<ImageRecord[]> {
    await this.#fresh();
    const ids = this.#byDigest.get(digest);
    if (!ids || ids.size === 0) {
      fail(
        'IMAGE_UNKNOWN',
        `locating image with digest ${JSON.stringify(truncate(digest, 300))}: image not known`,
      );
    }
    return [...ids].map((id) => view(this.#byId.get(id) as Rec, this.#readOnly));
  }

  async #names(
    key: string,
    names: readonly string[],
    operation: 'set' | 'add' | 'remove',
  ): Promise<ImageRecord> {
    for (const name of names) parseImageName(name);
    return this.#write('change image name assignments', () => {
      const rec = clone(this.#lookup(key));
      const next =
        operation === 'set'
          ? [...names]
          : operation === 'add'
            ? [...names, ...rec.names]
            : rec.names.filter((n) => !names.includes(n));
      rec.names = dedupe(next);
      for (const name of rec.names) rec.namesHistory = [name, ...rec.namesHistory];
      rec.namesHistory = dedupe(rec.namesHistory);
      const changed = this.#claim(rec, rec.names);
      return { changed, result: view(rec, false) };
    });
  }

  addNames(key: string, names: readonly string[]): Promise<ImageRecord> {
    return this.#names(key, names, 'add');
  }

  setNames(key: string, names: readonly string[]): Promise<ImageRecord> {
    return this.#names(key, names, 'set');
  }

  removeNames(key: string, names: readonly string[]): Promise<ImageRecord> {
    return this.#names(key, names, 'remove');
  }

  #update(key: string, what: string, change: (rec: Rec) => void): Promise<ImageRecord> {
    return this.#write(what, () => {
      const rec = clone(this.#lookup(key));
      change(rec);
      return { changed: [rec], result: view(rec, false) };
    });
  }

  setMetadata(key: string, metadata: string): Promise<ImageRecord> {
    return this.#update(key, 'modify image metadata', (rec) => {
      if (metadata) rec.metadata = metadata;
      else delete rec.metadata;
    });
  }

  setFlag(key: string, flag: string, value: unknown): Promise<ImageRecord> {
    return this.#update(key, 'set image flags', (rec) => {
      setOwn(rec.flags, flag, structuredClone(value));
    });
  }

  clearFlag(key: string, flag: string): Promise<ImageRecord> {
    return this.#update(key, 'clear image flags', (rec) => {
      delete rec.flags[flag];
    });
  }

  async setBigData(key: string, options: SetBigDataOptions): Promise<ImageRecord> {
    const { key: item, data } = options;
    this.#writable('save data items associated with images');
    requireItemName(item, 'set');
    const bytes = typeof data === 'string' ? new TextEncoder().encode(data) : data;
    const digest = item.startsWith('manifest') ? (options.digestManifest ?? sha256)(bytes) : sha256(bytes);
    if (!GO_DIGEST.test(digest)) fail('DIGEST_UNKNOWN', `could not compute digest of item ${item}`);
    // Under the lock, the data file goes first (atomically), then the record: a crash
    // between leaves unused data, and concurrent writers of one item cannot interleave.
    return this.#write('save data items associated with images', async () => {
      const rec = clone(this.#lookup(key));
      await mkdir(this.#dataDir(rec.id), { recursive: true, mode: 0o700 });
      await writeFileAtomic(join(this.#dataDir(rec.id), bigDataFileName(item)), bytes);
      setOwn(rec.bigDataSizes, item, bytes.byteLength);
      setOwn(rec.bigDataDigests, item, digest);
      if (!rec.bigDataNames.includes(item)) rec.bigDataNames.push(item);
      recomputeDigests(rec);
      return { changed: [rec], result: view(rec, false) };
    });
  }

  async getBigData(key: string, item: string): Promise<Uint8Array> {
    requireItemName(item, 'retrieve the value of');
    await this.#fresh();
    const rec = this.#lookup(key);
    const bytes = await ifExists(readFile(join(this.#dataDir(rec.id), bigDataFileName(item))));
    if (!bytes) fail('BIG_DATA_UNKNOWN', `image ${rec.id} has no big data item ${JSON.stringify(item)}`);
    return new Uint8Array(bytes);
  }

  async bigDataSize(key: string, item: string): Promise<number> {
    requireItemName(item, 'retrieve the size of');
    await this.#fresh();
    const rec = this.#lookup(key);
    if (Object.hasOwn(rec.bigDataSizes, item)) return rec.bigDataSizes[item] as number;
    const info = await ifExists(stat(join(this.#dataDir(rec.id), bigDataFileName(item))));
    if (info) return info.size;
    return fail('SIZE_UNKNOWN', `size of big data item ${JSON.stringify(item)}: size is not known`);
  }

  async bigDataDigest(key: string, item: string): Promise<string> {
    requireItemName(item, 'retrieve the digest of');
    await this.#fresh();
    const digests = this.#lookup(key).bigDataDigests;
    if (Object.hasOwn(digests, item)) return digests[item] as string;
    return fail(
      'DIGEST_UNKNOWN',
      `digest of big data item ${JSON.stringify(item)}: could not compute digest of item`,
    );
  }

  async bigDataNames(key: string): Promise<readonly string[]> {
    await this.#fresh();
    return [...this.#lookup(key).bigDataNames];
  }

  delete(key: string): Promise<void> {
    return this.#write('delete images', () => {
      const rec = this.#lookup(key);
      return { changed: [], deleted: [rec.id], result: undefined };
    });
  }

  async garbageCollect(options: { dryRun?: boolean } = {}): Promise<string[]> {
    if (options.dryRun) {
      // Nothing is removed, so the records as they are now will do: no lock, no
      // write, and it works on a read-only store and filesystem.
      await this.#fresh();
      return this.#unusedData(false);
    }
    this.#writable('remove unused image data');
    await using _lock = await this.#locks.acquire('stowage:images');
    await this.#catchUp();
    return this.#unusedData(true);
  }

  /** Data directories no record owns, removed when `remove` is set. */
  async #unusedData(remove: boolean): Promise<string[]> {
    const unused: string[] = [];
    for (const entry of (await ifExists(readdir(this.#dir, { withFileTypes: true }))) ?? []) {
      if (!entry.isDirectory() || this.#byId.has(entry.name)) continue;
      if (await ifExists(stat(this.#recordPath(entry.name)))) continue;
      unused.push(entry.name);
      if (remove) await rm(this.#dataDir(entry.name), { recursive: true, force: true });
    }
    return unused;
  }

  async exportImagesJson(): Promise<string> {
    await this.#fresh();
    const recs = [...this.#byId.values()].sort(compareCreated);
    return `[${recs.map(formatRecord).join(',')}]`;
  }

  async close(): Promise<void> {
    await this.#journal.close();
  }
}
