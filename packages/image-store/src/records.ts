import { createHash, randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import { type FileHandle, mkdir, open, readdir, readFile, rm, stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { isValidRepositoryName, isValidTag, StowageError } from '@stowage/oci';
import { ifExists, writeFileAtomic } from './fs-utils.js';
import { byBytes, goJson, goString } from './go-json.js';
import type { StoreLocks } from './lock.js';

/** The failures of the image-record view; messages follow containers/storage's sentinels. */
export type ImageRecordErrorCode =
  | 'IMAGE_UNKNOWN'
  | 'DUPLICATE_ID'
  | 'DUPLICATE_NAME'
  | 'DUPLICATE_IMAGE_NAMES'
  | 'STORE_READ_ONLY'
  | 'INVALID_BIG_DATA_NAME'
  | 'BIG_DATA_UNKNOWN'
  | 'SIZE_UNKNOWN'
  | 'DIGEST_UNKNOWN'
  | 'INVALID_ID'
  | 'INVALID_NAME'
  | 'INVALID_DIGEST'
  | 'CORRUPT_RECORD';

export class ImageRecordError extends StowageError<ImageRecordErrorCode> {}

/** One image record, as containers/storage keeps it (images.json), plus the derived `digests`. */
export interface ImageRecord {
  readonly id: string;
  /** The primary digest: the given one, else the first `manifest*` big-data digest (then kept). */
  readonly digest?: string;
  /** `digest` and every `manifest*` big-data digest, without repeats. */
  readonly digests: readonly string[];
  /** Unique names: each is `repository:tag`, the same name as the store's tag. */
  readonly names: readonly string[];
  /** Past names, newest first, no repeats. */
  readonly namesHistory: readonly string[];
  readonly topLayer?: string;
  readonly mappedTopLayers: readonly string[];
  readonly metadata?: string;
  readonly bigDataNames: readonly string[];
  readonly bigDataSizes: Readonly<Record<string, number>>;
  readonly bigDataDigests: Readonly<Record<string, string>>;
  /** RFC 3339 with up to nanoseconds, as Go writes it. */
  readonly created: string;
  readonly flags: Readonly<Record<string, unknown>>;
  /** Loaded from a read-only store. */
  readonly readOnly: boolean;
}

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

export interface SetBigDataOptions {
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
  setBigData(
    idOrName: string,
    key: string,
    data: Uint8Array | string,
    options?: SetBigDataOptions,
  ): Promise<ImageRecord>;
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

interface Rec {
  id: string;
  digest?: string;
  names: string[];
  namesHistory: string[];
  layer?: string;
  mappedLayers: string[];
  metadata?: string;
  bigDataNames: string[];
  bigDataSizes: Record<string, number>;
  bigDataDigests: Record<string, string>;
  created: string;
  flags: Record<string, unknown>;
  digests: string[];
}

const ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$/;
const GO_DIGEST = /^(sha256:[a-f0-9]{64}|sha384:[a-f0-9]{96}|sha512:[a-f0-9]{128})$/;
const JOURNAL_MAGIC = 'stowage image journal ';
const COMPACT_AT = 8 << 20;

/** The outcome of one record write: the records to save and delete, and what to return. */
interface Written<T> {
  changed: Rec[];
  deleted?: string[];
  result: T;
}

/** Sets an own property, whatever the key (`__proto__` included). */
function setOwn(target: Record<string, unknown>, key: string, value: unknown): void {
  Object.defineProperty(target, key, { value, enumerable: true, writable: true, configurable: true });
}

function fail(code: ImageRecordErrorCode, message: string, details?: Record<string, unknown>): never {
  throw new ImageRecordError(code, message, details ? { details } : {});
}

/** Big-data items are named: an empty name is refused, whatever the operation. */
function requireItemName(item: string, operation: string): void {
  if (item === '') {
    fail(
      'INVALID_BIG_DATA_NAME',
      `can't ${operation} an image big data item with an empty name: not a valid name for a big data item`,
    );
  }
}

/** `repository:tag`, both by the OCI grammar; the tag is what follows the last colon. */
export function parseImageName(name: string): { repository: string; tag: string } {
  const colon = name.lastIndexOf(':');
  const repository = colon < 0 ? '' : name.slice(0, colon);
  const tag = colon < 0 ? '' : name.slice(colon + 1);
  if (!isValidRepositoryName(repository) || !isValidTag(tag)) {
    fail('INVALID_NAME', `image name ${JSON.stringify(name.slice(0, 300))} is not repository:tag`, {
      name: name.slice(0, 300),
    });
  }
  return { repository, tag };
}

/**
 * The file name of a big-data item: the key itself while it is only `.0-9a-z`
 * (containers/storage lets one last other character through), else `=` and
 * its base64. Unlike containers/storage, a key that would name `.`, `..` or
 * contain `/` is encoded too, and a `/` inside the base64 becomes `_`.
 */
export function bigDataFileName(key: string): string {
  let consumed = 0;
  let stopped = false;
  for (const char of key) {
    consumed += char.length;
    const code = char.codePointAt(0) as number;
    const plain = code === 0x2e || (code >= 0x30 && code <= 0x39) || (code >= 0x61 && code <= 0x7a);
    if (!plain) {
      stopped = true;
      break;
    }
  }
  const raw = !stopped || consumed === key.length;
  if (raw && key !== '.' && key !== '..' && !key.includes('/') && !key.includes('\0')) return key;
  return `=${Buffer.from(key, 'utf8').toString('base64').replaceAll('/', '_')}`;
}

function isPlainId(id: string): boolean {
  return ID_PATTERN.test(id);
}

function generateId(taken: (id: string) => boolean): string {
  for (;;) {
    const id = randomBytes(32).toString('hex');
    if (/^[0-9]{12}/.test(id) || taken(id)) continue;
    return id;
  }
}

/** Go's time.RFC3339Nano of a JS date: UTC, trailing zeros of the fraction dropped. */
function goTime(date: Date): string {
  const iso = date.toISOString();
  const [head, fraction] = iso.slice(0, -1).split('.') as [string, string];
  const trimmed = fraction.replace(/0+$/, '');
  return `${head}${trimmed ? `.${trimmed}` : ''}Z`;
}

/** Nanoseconds since the epoch, for ordering; unparseable times sort first. */
function timeKey(created: string): bigint {
  const match = /^(.*?)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)$/.exec(created);
  const ms = Date.parse(match ? `${match[1]}${match[3]}` : created);
  if (Number.isNaN(ms)) return -1n;
  const fraction = (match?.[2] ?? '').padEnd(9, '0').slice(0, 9);
  return BigInt(ms) * 1_000_000n + BigInt(fraction || '0');
}

function dedupe(items: readonly string[]): string[] {
  return [...new Set(items)];
}

function recomputeDigests(rec: Rec): void {
  const list: string[] = [];
  const check = (digest: string, where: string) => {
    if (!GO_DIGEST.test(digest)) {
      fail('INVALID_DIGEST', `image ${rec.id}: ${where} has an invalid digest ${JSON.stringify(digest)}`, {
        id: rec.id,
      });
    }
  };
  if (rec.digest) {
    check(rec.digest, 'digest');
    list.push(rec.digest);
  }
  for (const name of rec.bigDataNames) {
    const digest = Object.hasOwn(rec.bigDataDigests, name) ? rec.bigDataDigests[name] : undefined;
    if (!name.startsWith('manifest') || digest === undefined) continue;
    check(digest, `big data ${name}`);
    if (!list.includes(digest)) list.push(digest);
  }
  if (!rec.digest && list.length > 0) rec.digest = list[0];
  rec.digests = list;
}

/** One record as an element of images.json: Go struct order, omitempty, Go escaping. */
function formatRecord(rec: Rec): string {
  const parts = [`"id":${goString(rec.id)}`];
  if (rec.digest) parts.push(`"digest":${goString(rec.digest)}`);
  if (rec.names.length) parts.push(`"names":${goJson(rec.names)}`);
  if (rec.namesHistory.length) parts.push(`"names-history":${goJson(rec.namesHistory)}`);
  if (rec.layer) parts.push(`"layer":${goString(rec.layer)}`);
  if (rec.mappedLayers.length) parts.push(`"mapped-layers":${goJson(rec.mappedLayers)}`);
  if (rec.metadata) parts.push(`"metadata":${goString(rec.metadata)}`);
  if (rec.bigDataNames.length) parts.push(`"big-data-names":${goJson(rec.bigDataNames)}`);
  if (Object.keys(rec.bigDataSizes).length) parts.push(`"big-data-sizes":${goJson(rec.bigDataSizes)}`);
  if (Object.keys(rec.bigDataDigests).length) parts.push(`"big-data-digests":${goJson(rec.bigDataDigests)}`);
  parts.push(`"created":${goString(rec.created)}`);
  if (Object.keys(rec.flags).length) parts.push(`"flags":${goJson(rec.flags)}`);
  return `{${parts.join(',')}}`;
}

function strings(value: unknown): string[] {
  return Array.isArray(value) ? value.filter((v): v is string => typeof v === 'string') : [];
}

function record(value: unknown): Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
    ? { ...(value as Record<string, unknown>) }
    : {};
}

/** Reads one images.json element; throws `CORRUPT_RECORD` for anything that is not one. */
function parseRecord(value: unknown, where: string): Rec {
  if (typeof value !== 'object' || value === null || typeof (value as { id?: unknown }).id !== 'string') {
    fail('CORRUPT_RECORD', `${where}: not an image record`, { where });
  }
  const v = value as Record<string, unknown>;
  const text = (key: string) =>
    typeof v[key] === 'string' && v[key] !== '' ? (v[key] as string) : undefined;
  const rec: Rec = {
    id: v.id as string,
    names: strings(v.names),
    namesHistory: strings(v['names-history']),
    mappedLayers: strings(v['mapped-layers']),
    bigDataNames: strings(v['big-data-names']),
    bigDataSizes: record(v['big-data-sizes']) as Record<string, number>,
    bigDataDigests: record(v['big-data-digests']) as Record<string, string>,
    created: text('created') ?? '0001-01-01T00:00:00Z',
    flags: record(v.flags),
    digests: [],
  };
  const digest = text('digest');
  const layer = text('layer');
  const metadata = text('metadata');
  if (digest) rec.digest = digest;
  if (layer) rec.layer = layer;
  if (metadata) rec.metadata = metadata;
  recomputeDigests(rec);
  return rec;
}

/** Parses a containers/storage images.json (an empty file is no images). */
export function parseImagesJson(text: string): ImageRecord[] {
  if (text.trim() === '') return [];
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    fail('CORRUPT_RECORD', `images.json is not JSON: ${(error as Error).message}`);
  }
  if (!Array.isArray(value)) fail('CORRUPT_RECORD', 'images.json is not an array');
  return value.map((item, i) => view(parseRecord(item, `images.json[${i}]`), false));
}

/** Writes records as containers/storage's images.json, byte for byte. */
export function formatImagesJson(records: readonly ImageRecord[]): string {
  return `[${records.map((r) => formatRecord(fromView(r))).join(',')}]`;
}

function fromView(r: ImageRecord): Rec {
  return {
    id: r.id,
    ...(r.digest ? { digest: r.digest } : {}),
    names: [...r.names],
    namesHistory: [...r.namesHistory],
    ...(r.topLayer ? { layer: r.topLayer } : {}),
    mappedLayers: [...r.mappedTopLayers],
    ...(r.metadata ? { metadata: r.metadata } : {}),
    bigDataNames: [...r.bigDataNames],
    bigDataSizes: { ...r.bigDataSizes },
    bigDataDigests: { ...r.bigDataDigests },
    created: r.created,
    flags: { ...r.flags },
    digests: [...r.digests],
  };
}

function view(rec: Rec, readOnly: boolean): ImageRecord {
  return Object.freeze({
    id: rec.id,
    ...(rec.digest ? { digest: rec.digest } : {}),
    digests: Object.freeze([...rec.digests]),
    names: Object.freeze([...rec.names]),
    namesHistory: Object.freeze([...rec.namesHistory]),
    ...(rec.layer ? { topLayer: rec.layer } : {}),
    mappedTopLayers: Object.freeze([...rec.mappedLayers]),
    ...(rec.metadata ? { metadata: rec.metadata } : {}),
    bigDataNames: Object.freeze([...rec.bigDataNames]),
    bigDataSizes: Object.freeze({ ...rec.bigDataSizes }),
    bigDataDigests: Object.freeze({ ...rec.bigDataDigests }),
    created: rec.created,
    flags: Object.freeze(structuredClone(rec.flags)),
    readOnly,
  });
}

function clone(rec: Rec): Rec {
  return structuredClone(rec);
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
  #token: Buffer = Buffer.alloc(0);
  #generation = '';
  #offset = 0;
  #counter = 0n;
  #tokenHandle: FileHandle | undefined;

  constructor(options: RecordStoreOptions) {
    this.#dir = options.dir;
    this.#locks = options.locks;
    this.#readOnly = options.readOnly;
    this.#onNames = options.onNames;
  }

  // --- paths ---

  #recordPath(id: string): string {
    return join(this.#dir, `${id}.json`);
  }

  #dataDir(id: string): string {
    return join(this.#dir, id);
  }

  get #tokenPath(): string {
    return join(this.#dir, '..', 'images.lock');
  }

  get #journalPath(): string {
    return join(this.#dir, '..', 'images.journal');
  }

  // --- the change token ---

  async #readToken(): Promise<Buffer> {
    if (!this.#tokenHandle) {
      const flags = this.#readOnly ? constants.O_RDONLY : constants.O_RDWR | constants.O_CREAT;
      try {
        this.#tokenHandle = await open(this.#tokenPath, flags, 0o644);
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === 'ENOENT') return Buffer.alloc(0);
        throw error;
      }
    }
    const buffer = Buffer.alloc(64);
    const { bytesRead } = await this.#tokenHandle.read(buffer, 0, 64, 0);
    return buffer.subarray(0, bytesRead);
  }

  async #writeToken(): Promise<void> {
    await this.#readToken();
    const token = Buffer.alloc(64);
    const now = BigInt(Date.now()) * 1_000_000n + (process.hrtime.bigint() % 1_000_000n);
    token.writeBigUInt64LE(now, 0);
    this.#counter++;
    token.writeBigUInt64LE(this.#counter, 8);
    token.writeUInt32LE(process.pid >>> 0, 16);
    randomBytes(44).copy(token, 20);
    await (this.#tokenHandle as FileHandle).write(token, 0, 64, 0);
    this.#token = token;
  }

  async changeToken(): Promise<Uint8Array> {
    return new Uint8Array(await this.#readToken());
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
    const ordered = [...recs].sort((a, b) => {
      const ta = timeKey(a.created);
      const tb = timeKey(b.created);
      return ta < tb ? -1 : ta > tb ? 1 : byBytes(a.id, b.id);
    });
    for (const rec of ordered) {
      for (const name of rec.names) {
        const ownerId = this.#byName.get(name);
        const owner = ownerId === undefined ? undefined : this.#byId.get(ownerId);
        if (!owner || owner.id === rec.id) continue;
        const ownerFirst = timeKey(owner.created) <= timeKey(rec.created);
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

  async #readJournalHeader(): Promise<{ generation: string; size: number } | undefined> {
    const handle = await ifExists(open(this.#journalPath, 'r'));
    if (!handle) return undefined;
    try {
      const buffer = Buffer.alloc(128);
      const { bytesRead } = await handle.read(buffer, 0, 128, 0);
      const line = buffer.subarray(0, bytesRead).toString('utf8').split('\n')[0] ?? '';
      const size = (await handle.stat()).size;
      return line.startsWith(JOURNAL_MAGIC) ? { generation: line, size } : undefined;
    } finally {
      await handle.close();
    }
  }

  async #newJournal(): Promise<void> {
    const header = `${JOURNAL_MAGIC}${randomBytes(16).toString('hex')}\n`;
    await writeFileAtomic(this.#journalPath, header);
    this.#generation = header.slice(0, -1);
    this.#offset = Buffer.byteLength(header);
  }

  /** Reads every record (under the lock). */
  async #loadAll(): Promise<Rec[]> {
    this.#byId.clear();
    this.#byName.clear();
    this.#byDigest.clear();
    this.#sorted = undefined;
    const header = await this.#readJournalHeader();
    this.#generation = header?.generation ?? '';
    this.#offset = header?.size ?? 0;
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
    const token = await this.#readToken();
    if (this.#loaded && token.equals(this.#token)) return;
    let losers: Rec[];
    const header = await this.#readJournalHeader();
    if (!this.#loaded || !header || header.generation !== this.#generation || header.size < this.#offset) {
      losers = await this.#loadAll();
    } else {
      const handle = await open(this.#journalPath, 'r');
      let text: string;
      try {
        const buffer = Buffer.alloc(header.size - this.#offset);
        await handle.read(buffer, 0, buffer.length, this.#offset);
        const end = buffer.lastIndexOf(0x0a) + 1;
        text = buffer.subarray(0, end).toString('utf8');
        this.#offset += end;
      } finally {
        await handle.close();
      }
      const ids = dedupe(text.split('\n').filter(Boolean));
      const recs: Rec[] = [];
      for (const id of ids) {
        const rec = isPlainId(id) ? await this.#readRecord(id) : undefined;
        if (rec) recs.push(rec);
        else this.#unindex(id);
      }
      losers = this.#absorb(recs);
    }
    this.#token = token;
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
    if (this.#loaded && (await this.#readToken()).equals(this.#token)) return;
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
    await this.#writeToken();
    // #catchUp just ran under this lock, so the generation and offset are current.
    if (!this.#generation || this.#offset > COMPACT_AT) await this.#newJournal();
    const lines = [...changed.map((r) => r.id), ...deleted].map((id) => `${id}\n`).join('');
    const journal = await open(this.#journalPath, 'a');
    try {
      await journal.write(lines);
    } finally {
      await journal.close();
    }
    this.#offset += Buffer.byteLength(lines);
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
      fail('IMAGE_UNKNOWN', `locating image with ID ${JSON.stringify(key.slice(0, 300))}: image not known`, {
        key: key.slice(0, 300),
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
        `image ID ${JSON.stringify(givenId.slice(0, 300))} is not [A-Za-z0-9][A-Za-z0-9_-]*`,
      );
    }
    const names = dedupe(options.names ?? []);
    for (const name of names) parseImageName(name);
    if (options.digest !== undefined && !GO_DIGEST.test(options.digest)) {
      fail('INVALID_DIGEST', `invalid image digest ${JSON.stringify(options.digest.slice(0, 300))}`);
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
      for (const item of options.bigData ?? []) await this.setBigData(rec.id, item.key, item.data);
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
        `locating image with digest ${JSON.stringify(digest.slice(0, 300))}: image not known`,
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

  async setBigData(
    key: string,
    item: string,
    data: Uint8Array | string,
    options: SetBigDataOptions = {},
  ): Promise<ImageRecord> {
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
    const recs = [...this.#byId.values()].sort((a, b) => {
      const ta = timeKey(a.created);
      const tb = timeKey(b.created);
      return ta < tb ? -1 : ta > tb ? 1 : byBytes(a.id, b.id);
    });
    return `[${recs.map(formatRecord).join(',')}]`;
  }

  async close(): Promise<void> {
    await this.#tokenHandle?.close();
    this.#tokenHandle = undefined;
  }
}

function sha256(bytes: Uint8Array): string {
  return `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
}
