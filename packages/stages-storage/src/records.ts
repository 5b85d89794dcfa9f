// Record images: managed images, image metadata by commit, custom-tag metadata, import
// metadata, client IDs, sync-server and cleanup records, rejected stages, custom tags.
// Every record is a record image (record-image.ts) labelled `werf=<project>`, in the
// stages repository, named by a tag werf's encoders give (@stowage/tags).
import { type Digest, isStowageError, type OperationOptions, parseManifest } from '@stowage/oci';
import {
  CLEANUP_TAG,
  CLIENT_ID_TAG_PREFIX,
  CUSTOM_TAG_META_TAG_PREFIX,
  encodeClientIdTag,
  encodeCustomTagMetaTag,
  encodeImportMetadataTag,
  encodeManagedImageTag,
  encodeMetaTag,
  encodeRejectedTag,
  encodeStageTag,
  IMPORT_METADATA_TAG_PREFIX,
  imageMetadataId,
  isCleanupTag,
  isSyncServerTag,
  isValidDockerTag,
  Labels,
  MANAGED_IMAGE_TAG_PREFIX,
  META_TAG_PREFIX,
  parseClientIdTag,
  parseManagedImageTag,
  parseMetaTag,
  SYNC_SERVER_TAG,
  stageIdString,
} from '@stowage/tags';
import type { RepoContext } from './context.js';
import { removeImage } from './delete.js';
import { StagesStorageError } from './errors.js';
import { isNotFound, pushRecord, readRecordLabels, signalOf } from './record-image.js';
import type {
  CleanupRecord,
  ClientIdRecord,
  CustomTagMetadata,
  ImageMetadataGroups,
  ImageMetadataKey,
  ImageMetadataListing,
  ImportMetadata,
  ListingOptions,
  PutImportMetadataOptions,
  StageDesc,
  StageID,
  SyncServerRecord,
} from './types.js';

type StageRef = Pick<StageID, 'digest' | 'creationTs'>;

/** The labels every record carries, plus its own. */
function recordLabels(ctx: RepoContext, labels: Record<string, string> = {}): Record<string, string> {
  return { ...labels, [Labels.werf]: ctx.project };
}

async function headDigest(
  ctx: RepoContext,
  tag: string,
  options: OperationOptions,
): Promise<Digest | undefined> {
  try {
    return (await ctx.registry.headManifest(ctx.repository, tag, signalOf(options)))?.digest;
  } catch (error) {
    if (isStowageError(error, 'NAME_UNKNOWN')) return undefined;
    throw error;
  }
}

/** A tag's presence: from the listing with `cache`, else asked of the registry. */
async function tagExists(ctx: RepoContext, tag: string, options: ListingOptions): Promise<boolean> {
  if (options.cache) return (await ctx.tags(options)).has(tag);
  return (await headDigest(ctx, tag, options)) !== undefined;
}

/** Pushes a record; a `DENIED` push only warns (werf's handling of a 403 on metadata). */
async function pushRecordWarnOnDenied(
  ctx: RepoContext,
  tag: string,
  labels: Record<string, string>,
  options: OperationOptions,
): Promise<void> {
  try {
    await pushRecord(ctx, tag, labels, options);
  } catch (error) {
    if (!isStowageError(error, 'DENIED')) throw error;
    ctx.logger.warn(
      { repository: ctx.repository, tag, err: error },
      'registry denied the record push; carrying on',
    );
  }
}

async function idsWithPrefix(ctx: RepoContext, prefix: string, options: ListingOptions): Promise<string[]> {
  return (await ctx.tags(options)).withPrefix(prefix).map((tag) => tag.slice(prefix.length));
}

/** Go's `strconv.ParseInt(s, 10, 64)` within the safe integers; `undefined` otherwise. */
function parseTimestamp(text: string | undefined): number | undefined {
  if (text === undefined || !/^[+-]?[0-9]+$/.test(text)) return undefined;
  const value = Number(text);
  return Number.isSafeInteger(value) ? value : undefined;
}

// --- rejected stages ---

export async function rejectStage(
  ctx: RepoContext,
  stage: StageRef,
  options: OperationOptions = {},
): Promise<void> {
  await pushRecord(ctx, encodeRejectedTag(stage), recordLabels(ctx), options);
  ctx.logger.info({ digest: stage.digest, creationTs: stage.creationTs }, 'rejected stage');
}

// --- custom tags ---

/** The manifest digest in `<repository>@<digest>`, when there is one. */
function repoDigestOf(desc: StageDesc): Digest | undefined {
  const at = desc.info.repoDigest.lastIndexOf('@');
  return at < 0 ? undefined : (desc.info.repoDigest.slice(at + 1) as Digest);
}

/** Pushes the stage's manifest again under `tag` (same bytes, same digest), as werf's TagRepoImage. */
export async function addCustomTag(
  ctx: RepoContext,
  desc: StageDesc,
  tag: string,
  options: OperationOptions = {},
): Promise<void> {
  const signal = signalOf(options);
  const reference = repoDigestOf(desc) ?? encodeStageTag(desc.stageID);
  let manifest: Awaited<ReturnType<typeof ctx.registry.getManifest>>;
  try {
    manifest = await ctx.registry.getManifest(ctx.repository, reference, signal);
  } catch (error) {
    if (isNotFound(error)) {
      throw new StagesStorageError(
        'STAGE_NOT_FOUND',
        `stage ${stageIdString(desc.stageID)} is not in ${ctx.address}: cannot tag it ${tag}`,
        { cause: error, details: { stage: stageIdString(desc.stageID), tag } },
      );
    }
    throw error;
  }
  await ctx.registry.putManifest(ctx.repository, tag, {
    ...signal,
    bytes: manifest.bytes,
    mediaType: manifest.mediaType,
  });
  ctx.noteTag(tag, true);
}

/** The image ID of a manifest: its config digest, or its own digest for an index. */
async function imageIdOf(ctx: RepoContext, reference: string, options: OperationOptions): Promise<string> {
  const content = await ctx.registry.getManifest(ctx.repository, reference, signalOf(options));
  const parsed = parseManifest(content.bytes, { mediaType: content.mediaType });
  return parsed.kind === 'image' ? parsed.manifest.config.digest : content.digest;
}

/** Throws `CUSTOM_TAG_NOT_FOUND` when the tag is absent, `CUSTOM_TAG_MISMATCH` when it is another image. */
export async function checkCustomTag(
  ctx: RepoContext,
  desc: StageDesc,
  tag: string,
  options: OperationOptions = {},
): Promise<void> {
  const details = { tag, stage: stageIdString(desc.stageID) };
  const digest = await headDigest(ctx, tag, options);
  if (digest === undefined) {
    throw new StagesStorageError('CUSTOM_TAG_NOT_FOUND', `custom tag ${tag} not found in ${ctx.address}`, {
      details,
    });
  }
  if (desc.info.repoDigest.endsWith(`@${digest}`)) return;
  let id: string;
  try {
    id = await imageIdOf(ctx, tag, options);
  } catch (error) {
    if (!isStowageError(error, 'MANIFEST_UNKNOWN')) throw error;
    throw new StagesStorageError('CUSTOM_TAG_NOT_FOUND', `custom tag ${tag} not found in ${ctx.address}`, {
      cause: error,
      details,
    });
  }
  if (id !== desc.info.id) {
    throw new StagesStorageError(
      'CUSTOM_TAG_MISMATCH',
      `custom tag ${tag} image must be the same as the image of stage ${details.stage}`,
      { details: { ...details, tagImageId: id, stageImageId: desc.info.id } },
    );
  }
}

/** Removes the tag only (the stage shares its manifest); absent is success. */
export async function deleteCustomTag(
  ctx: RepoContext,
  tag: string,
  options: OperationOptions = {},
): Promise<void> {
  const digest = await headDigest(ctx, tag, options);
  if (digest === undefined) {
    ctx.noteTag(tag, false);
    return;
  }
  await removeImage(ctx, { tag, digest, keepManifest: true, what: 'custom tag' }, options);
}

export async function registerCustomTag(
  ctx: RepoContext,
  desc: StageDesc,
  tag: string,
  options: OperationOptions = {},
): Promise<void> {
  const labels = recordLabels(ctx, { [Labels.stageId]: stageIdString(desc.stageID), [Labels.tag]: tag });
  await pushRecord(ctx, encodeCustomTagMetaTag(tag), labels, options);
}

/** Removes the custom-tag-meta record of a tag or of a record ID (the slug is idempotent on an ID); absent is success. */
export async function unregisterCustomTag(
  ctx: RepoContext,
  tagOrId: string,
  options: OperationOptions = {},
): Promise<void> {
  await removeImage(ctx, { tag: encodeCustomTagMetaTag(tagOrId), what: 'custom-tag-meta record' }, options);
}

export async function getCustomTagMetadata(
  ctx: RepoContext,
  tagOrId: string,
  options: OperationOptions = {},
): Promise<CustomTagMetadata | null> {
  const labels = await readRecordLabels(ctx, encodeCustomTagMetaTag(tagOrId), options);
  if (labels === null) return null;
  return { stageId: labels[Labels.stageId] ?? '', tag: labels[Labels.tag] ?? '' };
}

export async function listCustomTagMetadataIds(
  ctx: RepoContext,
  options: ListingOptions = {},
): Promise<string[]> {
  return await idsWithPrefix(ctx, CUSTOM_TAG_META_TAG_PREFIX, options);
}

// --- managed images ---

export async function addManagedImage(
  ctx: RepoContext,
  imageName: string,
  options: OperationOptions = {},
): Promise<void> {
  await pushRecord(ctx, encodeManagedImageTag(imageName), recordLabels(ctx), options);
}

export async function removeManagedImage(
  ctx: RepoContext,
  imageName: string,
  options: OperationOptions = {},
): Promise<void> {
  await removeImage(ctx, { tag: encodeManagedImageTag(imageName), what: 'managed-image record' }, options);
}

export async function managedImageExists(
  ctx: RepoContext,
  imageName: string,
  options: ListingOptions = {},
): Promise<boolean> {
  return await tagExists(ctx, encodeManagedImageTag(imageName), options);
}

/** The image names of every managed-image record, unslugged (`__nameless__` is `""`). */
export async function listManagedImages(ctx: RepoContext, options: ListingOptions = {}): Promise<string[]> {
  return (await ctx.tags(options))
    .withPrefix(MANAGED_IMAGE_TAG_PREFIX)
    .map((tag) => parseManagedImageTag(tag).imageName);
}

// --- image metadata by commit ---

export async function putImageMetadata(
  ctx: RepoContext,
  key: ImageMetadataKey,
  options: OperationOptions = {},
): Promise<void> {
  const tag = encodeMetaTag({ imageName: key.imageName, commit: key.commit, stageId: key.stageId });
  await pushRecordWarnOnDenied(ctx, tag, recordLabels(ctx), options);
}

/**
 * Removes the record by image name, else (as werf falls back) by taking the
 * name as a raw metadata ID when that gives a valid tag; absent is success.
 */
export async function removeImageMetadata(
  ctx: RepoContext,
  key: ImageMetadataKey,
  options: OperationOptions = {},
): Promise<void> {
  const { commit, stageId } = key;
  const candidates = [encodeMetaTag({ imageName: key.imageName, commit, stageId })];
  const byId = encodeMetaTag({ imageMetadataId: key.imageName, commit, stageId });
  if (byId !== candidates[0] && isValidDockerTag(byId)) candidates.push(byId);
  for (const tag of candidates) {
    const digest = await headDigest(ctx, tag, options);
    if (digest === undefined) continue;
    await removeImage(ctx, { tag, digest, what: 'image metadata record' }, options);
    return;
  }
}

export async function imageMetadataExists(
  ctx: RepoContext,
  key: ImageMetadataKey,
  options: ListingOptions = {},
): Promise<boolean> {
  const tag = encodeMetaTag({ imageName: key.imageName, commit: key.commit, stageId: key.stageId });
  return await tagExists(ctx, tag, options);
}

function addToGroup(groups: ImageMetadataGroups, name: string, stageId: string, commit: string): void {
  let byStage = groups.get(name);
  if (!byStage) {
    byStage = new Map();
    groups.set(name, byStage);
  }
  const commits = byStage.get(stageId);
  if (commits) commits.push(commit);
  else byStage.set(stageId, [commit]);
}

/**
 * werf's GetAllAndGroupImageMetadataByImageName: meta records grouped by the
 * image name whose metadata ID they carry, the rest under their raw ID in
 * `notManaged`. Tags that are not exactly three `_` parts are skipped.
 */
export async function listImageMetadata(
  ctx: RepoContext,
  imageNames: readonly string[],
  options: ListingOptions = {},
): Promise<ImageMetadataListing> {
  const nameById = new Map<string, string>();
  for (const name of imageNames) nameById.set(imageMetadataId(name), name);
  const managed: ImageMetadataGroups = new Map();
  const notManaged: ImageMetadataGroups = new Map();
  for (const tag of (await ctx.tags(options)).withPrefix(META_TAG_PREFIX)) {
    let record: ReturnType<typeof parseMetaTag>;
    try {
      record = parseMetaTag(tag);
    } catch {
      continue;
    }
    const name = nameById.get(record.imageMetadataId);
    if (name === undefined) addToGroup(notManaged, record.imageMetadataId, record.stageId, record.commit);
    else addToGroup(managed, name, record.stageId, record.commit);
  }
  return { managed, notManaged };
}

// --- import metadata ---

export async function getImportMetadata(
  ctx: RepoContext,
  id: string,
  options: OperationOptions = {},
): Promise<ImportMetadata | null> {
  const labels = await readRecordLabels(ctx, encodeImportMetadataTag(id), options);
  if (labels === null) return null;
  return {
    importSourceId: labels[Labels.importSourceId] ?? '',
    sourceStageId: labels[Labels.sourceStageId] ?? labels[Labels.legacySourceImageId] ?? '',
    checksum: labels[Labels.checksum] ?? '',
  };
}

/** Writes the record unless it exists (`force` writes anyway); a `DENIED` push only warns. */
export async function putImportMetadata(
  ctx: RepoContext,
  metadata: ImportMetadata,
  options: PutImportMetadataOptions = {},
): Promise<void> {
  const tag = encodeImportMetadataTag(metadata.importSourceId);
  if (!options.force && (await headDigest(ctx, tag, options)) !== undefined) {
    ctx.noteTag(tag, true);
    return;
  }
  const labels = recordLabels(ctx, {
    [Labels.importSourceId]: metadata.importSourceId,
    [Labels.sourceStageId]: metadata.sourceStageId,
    [Labels.checksum]: metadata.checksum,
  });
  await pushRecordWarnOnDenied(ctx, tag, labels, options);
}

export async function removeImportMetadata(
  ctx: RepoContext,
  id: string,
  options: OperationOptions = {},
): Promise<void> {
  await removeImage(ctx, { tag: encodeImportMetadataTag(id), what: 'import-metadata record' }, options);
}

export async function listImportMetadataIds(
  ctx: RepoContext,
  options: ListingOptions = {},
): Promise<string[]> {
  return await idsWithPrefix(ctx, IMPORT_METADATA_TAG_PREFIX, options);
}

// --- client IDs ---

/** Every client-id record (spec A.5.5); tags that do not parse are skipped, as werf skips them. */
export async function listClientIdRecords(
  ctx: RepoContext,
  options: ListingOptions = {},
): Promise<ClientIdRecord[]> {
  const records: ClientIdRecord[] = [];
  for (const tag of (await ctx.tags(options)).withPrefix(CLIENT_ID_TAG_PREFIX)) {
    try {
      const { clientId, timestampMs } = parseClientIdTag(tag);
      records.push({ clientId, timestampMillisec: timestampMs });
    } catch {
      ctx.logger.debug({ tag }, 'skipped a client-id tag of unexpected format');
    }
  }
  return records;
}

export async function postClientIdRecord(
  ctx: RepoContext,
  record: ClientIdRecord,
  options: OperationOptions = {},
): Promise<void> {
  const tag = encodeClientIdTag({ clientId: record.clientId, timestampMs: record.timestampMillisec });
  await pushRecord(ctx, tag, recordLabels(ctx), options);
}

// --- sync server and cleanup ---

/** The first tag starting with `sync-server` whose labels name a server and a timestamp. */
export async function getSyncServerRecord(
  ctx: RepoContext,
  options: ListingOptions = {},
): Promise<SyncServerRecord | null> {
  for (const tag of (await ctx.tags(options)).withPrefix(SYNC_SERVER_TAG)) {
    if (!isSyncServerTag(tag)) continue;
    const labels = await readRecordLabels(ctx, tag, options);
    const server = labels?.[Labels.syncServer];
    const timestampMillisec = parseTimestamp(labels?.[Labels.syncServerTimestamp]);
    if (server === undefined || timestampMillisec === undefined) continue;
    return { server, timestampMillisec };
  }
  return null;
}

export async function postSyncServerRecord(
  ctx: RepoContext,
  record: SyncServerRecord,
  options: OperationOptions = {},
): Promise<void> {
  const labels = recordLabels(ctx, {
    [Labels.syncServer]: record.server,
    [Labels.syncServerTimestamp]: String(record.timestampMillisec),
  });
  await pushRecord(ctx, SYNC_SERVER_TAG, labels, options);
}

/** The first tag starting with `cleanup` that has the `lastcleanuptimestamp` label. */
export async function getCleanupRecord(
  ctx: RepoContext,
  options: ListingOptions = {},
): Promise<CleanupRecord | null> {
  for (const tag of (await ctx.tags(options)).withPrefix(CLEANUP_TAG)) {
    if (!isCleanupTag(tag)) continue;
    const labels = await readRecordLabels(ctx, tag, options);
    const timestampMillisec = parseTimestamp(labels?.[Labels.lastCleanupTimestamp]);
    if (timestampMillisec === undefined) continue;
    return { timestampMillisec };
  }
  return null;
}

export async function postCleanupRecord(
  ctx: RepoContext,
  record: CleanupRecord,
  options: OperationOptions = {},
): Promise<void> {
  const labels = recordLabels(ctx, { [Labels.lastCleanupTimestamp]: String(record.timestampMillisec) });
  await pushRecord(ctx, CLEANUP_TAG, labels, options);
}
