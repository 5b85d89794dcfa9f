import { type Digest, isDigest } from '@stowage/oci';
import { TagParseError } from './errors.js';
import { legacyMurmurHash, reverseString, sha256Hash } from './hash.js';
import { parseGoInt64 } from './int64.js';
import { DOCKER_TAG_MAX_SIZE, isValidDockerTag, limitedSlug } from './slug.js';

export const MANAGED_IMAGE_TAG_PREFIX = 'managed-image-';
export const META_TAG_PREFIX = 'meta-';
export const CUSTOM_TAG_META_TAG_PREFIX = 'custom-tag-meta-';
export const IMPORT_METADATA_TAG_PREFIX = 'import-metadata-';
export const CLIENT_ID_TAG_PREFIX = 'client-id-';
export const REJECTED_TAG_SUFFIX = '-rejected';
export const SYNC_SERVER_TAG = 'sync-server';
export const CLEANUP_TAG = 'cleanup';
/** The managed-image ID of the nameless (`""`) image. */
export const NAMELESS_IMAGE = '__nameless__';
/** Longest slug of a custom tag inside a custom-tag-meta record. */
export const CUSTOM_TAG_SLUG_MAX = 48;

/** Label keys of werf images and records. */
export const Labels = {
  /** Project name, on every stage and record. */
  werf: 'werf',
  werfVersion: 'werf-version',
  stageContentDigest: 'werf-stage-content-digest',
  projectRepoCommit: 'werf-project-repo-commit',
  importChecksumPrefix: 'werf-import-checksum-',
  importSourceStageIdPrefix: 'werf-import-source-stage-id-',
  dependencyStageIdPrefix: 'werf-dependency-stage-id-',
  baseImageId: 'werf.io/base-image-id',
  parentStageId: 'werf.io/parent-stage-id',
  /** custom-tag-meta records */
  stageId: 'stage-id',
  tag: 'tag',
  /** import-metadata records */
  importSourceId: 'import-source-id',
  sourceStageId: 'source-stage-id',
  /** Before werf v2.23 the import record used this key. */
  legacySourceImageId: 'source-image-id',
  checksum: 'checksum',
  /** sync-server record */
  syncServer: 'syncserver',
  syncServerTimestamp: 'syncservertimestamp',
  /** cleanup record */
  lastCleanupTimestamp: 'lastcleanuptimestamp',
  /** Removed in v2.34.1; old stage images still carry them. */
  legacyCacheVersion: 'werf-cache-version',
  legacyImage: 'werf-image',
  legacyStageDigest: 'werf-stage-digest',
} as const;

function stripPrefix(tag: string, prefix: string): string {
  if (!tag.startsWith(prefix)) throw new TagParseError(tag, `expected the prefix ${prefix}`);
  return tag.slice(prefix.length);
}

// --- managed images ---

/** `" "`, `/` and `+` spelled out; the empty name becomes `__nameless__`. */
export function slugImageName(imageName: string): string {
  if (imageName === '') return NAMELESS_IMAGE;
  return imageName.replaceAll(' ', '__space__').replaceAll('/', '__slash__').replaceAll('+', '__plus__');
}

/** The reverse of `slugImageName`. */
export function unslugImageName(id: string): string {
  const name = id.replaceAll('__space__', ' ').replaceAll('__slash__', '/').replaceAll('__plus__', '+');
  return name === NAMELESS_IMAGE ? '' : name;
}

/** The ID of a werf image name in its managed-image record (slugged again when not a valid tag). */
export function managedImageId(imageName: string): string {
  const id = slugImageName(imageName);
  return isValidDockerTag(id) ? id : limitedSlug(id, DOCKER_TAG_MAX_SIZE - MANAGED_IMAGE_TAG_PREFIX.length);
}

export function encodeManagedImageTag(imageName: string): string {
  return MANAGED_IMAGE_TAG_PREFIX + managedImageId(imageName);
}

export function parseManagedImageTag(tag: string): { managedImageId: string; imageName: string } {
  const id = stripPrefix(tag, MANAGED_IMAGE_TAG_PREFIX);
  return { managedImageId: id, imageName: unslugImageName(id) };
}

// --- meta (image metadata by commit) ---

/** The metadata ID werf groups meta records by: murmur of the managed image name. */
export function imageMetadataId(imageName: string): string {
  return legacyMurmurHash(unslugImageName(managedImageId(imageName)));
}

export interface MetaRecord {
  readonly imageMetadataId: string;
  readonly commit: string;
  /** `StageID.String()` of the image's last stage. */
  readonly stageId: string;
}

/** `meta-<imageMetadataID>_<commit>_<stageID>`; give `imageName` or `imageMetadataId`. */
export function encodeMetaTag(
  record: { commit: string; stageId: string } & ({ imageName: string } | { imageMetadataId: string }),
): string {
  const id = 'imageName' in record ? imageMetadataId(record.imageName) : record.imageMetadataId;
  return `${META_TAG_PREFIX}${id}_${record.commit}_${record.stageId}`;
}

export function parseMetaTag(tag: string): MetaRecord {
  const parts = stripPrefix(tag, META_TAG_PREFIX).split('_');
  if (parts.length !== 3) throw new TagParseError(tag, 'a meta tag has exactly three "_"-separated parts');
  const [imageMetadataId, commit, stageId] = parts as [string, string, string];
  return { imageMetadataId, commit, stageId };
}

// --- custom tag metadata ---

export function customTagMetaId(tag: string): string {
  return limitedSlug(tag, CUSTOM_TAG_SLUG_MAX);
}

export function encodeCustomTagMetaTag(tag: string): string {
  return CUSTOM_TAG_META_TAG_PREFIX + customTagMetaId(tag);
}

export function parseCustomTagMetaTag(tag: string): { id: string } {
  return { id: stripPrefix(tag, CUSTOM_TAG_META_TAG_PREFIX) };
}

// --- import metadata ---

export interface ImportSourceInput {
  /** The source stage's content digest; or give `externalImage`. */
  readonly sourceImageContentDigest?: string;
  /** An external image name, hashed as `external-image:<name>`. */
  readonly externalImage?: string;
  readonly add: string;
  readonly includePaths?: readonly string[];
  readonly excludePaths?: readonly string[];
  /** werf's WERF_EXPERIMENTAL_STAPEL_IMPORT_PERMISSIONS. */
  readonly cacheVersion?: boolean;
}

/** The 64-hex ID of an import source. */
export function importSourceId(input: ImportSourceInput): string {
  const source = input.sourceImageContentDigest ?? `external-image:${input.externalImage ?? ''}`;
  const args = [
    'SourceImageContentDigest',
    source,
    'Add',
    input.add,
    'IncludePaths',
    (input.includePaths ?? []).join('///'),
    'ExcludePaths',
    (input.excludePaths ?? []).join('///'),
  ];
  if (input.cacheVersion) args.push('CacheVersion', 'true');
  return sha256Hash(...args);
}

export function encodeImportMetadataTag(id: string): string {
  return IMPORT_METADATA_TAG_PREFIX + id;
}

export function parseImportMetadataTag(tag: string): { importSourceId: string } {
  return { importSourceId: stripPrefix(tag, IMPORT_METADATA_TAG_PREFIX) };
}

// --- client IDs ---

export interface ClientIdRecord {
  readonly clientId: string;
  readonly timestampMs: number;
}

export function encodeClientIdTag(record: ClientIdRecord): string {
  return `${CLIENT_ID_TAG_PREFIX}${record.clientId}-${record.timestampMs}`;
}

/** The client ID may contain dashes: the timestamp is what follows the last one. */
export function parseClientIdTag(tag: string): ClientIdRecord {
  const reversed = reverseString(stripPrefix(tag, CLIENT_ID_TAG_PREFIX));
  const dash = reversed.indexOf('-');
  if (dash < 0) throw new TagParseError(tag, 'a client-id tag ends with -<timestamp>');
  const timestampMs = parseGoInt64(reverseString(reversed.slice(0, dash)), tag);
  return { clientId: reverseString(reversed.slice(dash + 1)), timestampMs };
}

/** werf keeps the oldest client ID record (smallest timestamp); `undefined` for none. */
export function oldestClientId(records: Iterable<ClientIdRecord>): ClientIdRecord | undefined {
  let oldest: ClientIdRecord | undefined;
  for (const record of records) if (!oldest || record.timestampMs < oldest.timestampMs) oldest = record;
  return oldest;
}

// --- rejected stages ---

const rejectedPattern = /^([0-9a-f]{56})-([0-9]+)-rejected$/;

export function encodeRejectedTag(stage: { digest: string; creationTs: number }): string {
  return `${stage.digest}-${stage.creationTs}${REJECTED_TAG_SUFFIX}`;
}

export function parseRejectedTag(tag: string): { digest: string; creationTs: number } {
  const match = rejectedPattern.exec(tag);
  if (!match) throw new TagParseError(tag, 'a rejected stage tag is <56 hex>-<timestamp>-rejected');
  return { digest: match[1] as string, creationTs: parseGoInt64(match[2] as string, tag) };
}

// --- fixed records ---

export function isSyncServerTag(tag: string): boolean {
  return tag.startsWith(SYNC_SERVER_TAG);
}

export function isCleanupTag(tag: string): boolean {
  return tag.startsWith(CLEANUP_TAG);
}

// --- OCI referrers fallback ---

/** The referrers tag schema's tag for a subject: `<alg>-<hex>`. */
export function referrersTag(digest: Digest): string {
  return digest.replace(':', '-');
}

export function parseReferrersTag(tag: string): Digest {
  const dash = tag.indexOf('-');
  const digest = dash < 0 ? '' : `${tag.slice(0, dash)}:${tag.slice(dash + 1)}`;
  if (!isDigest(digest)) throw new TagParseError(tag, 'a referrers tag is <algorithm>-<hex>');
  return digest;
}
