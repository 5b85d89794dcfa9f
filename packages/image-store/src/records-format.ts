/**
 * The image-record format: containers/storage's `images.json` element (Go
 * struct order, omitempty, Go's escaping), the record as the API shows it, and
 * the rules every record keeps (IDs, names, derived digests).
 */
import { createHash, randomBytes } from 'node:crypto';
import { byBytes, goJson, goString, isValidRepositoryName, isValidTag, truncate } from '@stowage/oci';
import { ImageRecordError, type ImageRecordErrorCode } from './errors.js';

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

export interface Rec {
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

export const ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$/;
export const GO_DIGEST = /^(sha256:[a-f0-9]{64}|sha384:[a-f0-9]{96}|sha512:[a-f0-9]{128})$/;

/** Sets an own property, whatever the key (`__proto__` included). */
export function setOwn(target: Record<string, unknown>, key: string, value: unknown): void {
  Object.defineProperty(target, key, { value, enumerable: true, writable: true, configurable: true });
}

export function fail(code: ImageRecordErrorCode, message: string, details?: Record<string, unknown>): never {
  throw new ImageRecordError(code, message, details ? { details } : {});
}

/** Big-data items are named: an empty name is refused, whatever the operation. */
export function requireItemName(item: string, operation: string): void {
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
    fail('INVALID_NAME', `image name ${JSON.stringify(truncate(name, 300))} is not repository:tag`, {
      name: truncate(name, 300),
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

export function isPlainId(id: string): boolean {
  return ID_PATTERN.test(id);
}

export function generateId(taken: (id: string) => boolean): string {
  for (;;) {
    const id = randomBytes(32).toString('hex');
    if (/^[0-9]{12}/.test(id) || taken(id)) continue;
    return id;
  }
}

/** Go's time.RFC3339Nano of a JS date: UTC, trailing zeros of the fraction dropped. */
export function goTime(date: Date): string {
  const iso = date.toISOString();
  const [head, fraction] = iso.slice(0, -1).split('.') as [string, string];
  const trimmed = fraction.replace(/0+$/, '');
  return `${head}${trimmed ? `.${trimmed}` : ''}Z`;
}

/** Nanoseconds since the epoch, for ordering; unparseable times sort first. */
export function timeKey(created: string): bigint {
  const match = /^(.*?)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)$/.exec(created);
  const ms = Date.parse(match ? `${match[1]}${match[3]}` : created);
  if (Number.isNaN(ms)) return -1n;
  const fraction = (match?.[2] ?? '').padEnd(9, '0').slice(0, 9);
  return BigInt(ms) * 1_000_000n + BigInt(fraction || '0');
}

export function dedupe(items: readonly string[]): string[] {
  return [...new Set(items)];
}

export function recomputeDigests(rec: Rec): void {
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
export function formatRecord(rec: Rec): string {
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
export function parseRecord(value: unknown, where: string): Rec {
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

export function fromView(r: ImageRecord): Rec {
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

export function view(rec: Rec, readOnly: boolean): ImageRecord {
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

export function clone(rec: Rec): Rec {
  return structuredClone(rec);
}

/** Records in the order images.json lists them: by creation time, then by ID. */
export function compareCreated(a: Rec, b: Rec): number {
  const ta = timeKey(a.created);
  const tb = timeKey(b.created);
  return ta < tb ? -1 : ta > tb ? 1 : byBytes(a.id, b.id);
}

export function sha256(bytes: Uint8Array): string {
  return `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
}
