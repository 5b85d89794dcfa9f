// Stage operations: listing, descriptions, delete, repo create/delete, multiplatform lists.
import { type Digest, isStowageError, MediaType, type OperationOptions, type Platform } from '@stowage/oci';
import {
  encodeRejectedTag,
  encodeStageTag,
  listStages,
  listStagesByDigest,
  multiplatformStageDigest,
  parseRejectedTag,
  REJECTED_TAG_SUFFIX,
  stageIdString,
} from '@stowage/tags';
import type { RepoContext } from './context.js';
import { removeImage } from './delete.js';
import { StagesStorageError } from './errors.js';
import { describeImage, digestOfRepoDigest, readConfig, readManifest } from './image-info.js';
import type { TagListing } from './listing.js';
import type {
  ListingOptions,
  PostMultiplatformImageOptions,
  StageDesc,
  StageID,
  StagesStorageCapabilities,
} from './types.js';

type StageRef = Pick<StageID, 'digest' | 'creationTs'>;

const signalOf = (options: OperationOptions = {}) => (options.signal ? { signal: options.signal } : {});

/** A `StageID` as werf's `NewStageID` makes it: multiplatform when creationTs is 0. */
export function stageID(stage: StageRef): StageID {
  return { digest: stage.digest, creationTs: stage.creationTs, isMultiplatform: stage.creationTs === 0 };
}

/**
 * The multiplatform stage over one stage per platform (spec A.3): sha3-224
 * over the platforms' stage IDs, platforms in byte order; creationTs 0, so
 * its tag is the bare digest.
 */
export function multiplatformStageID(
  stages: readonly { readonly platform: string; readonly stageID: StageRef }[],
): StageID {
  if (stages.length === 0) {
    throw new StagesStorageError('OPTIONS_INVALID', 'a multiplatform stage needs at least one platform');
  }
  const digest = multiplatformStageDigest(
    stages.map((s) => ({ platform: s.platform, stageId: stageIdString(s.stageID) })),
  );
  return stageID({ digest, creationTs: 0 });
}

export async function capabilities(
  ctx: RepoContext,
  options?: OperationOptions,
): Promise<StagesStorageCapabilities> {
  const registry = await ctx.registry.capabilities(signalOf(options));
  return {
    createRepo: 'implicit',
    deleteRepo: registry.deleteManifest,
    deleteTag: registry.deleteTag,
    deleteManifest: registry.deleteManifest,
    records: true,
  };
}

/** Every stage of the repository, selected from the tag listing as werf's GetStagesIDs does. */
export async function listStageIDs(ctx: RepoContext, options?: ListingOptions): Promise<StageID[]> {
  const listing = await ctx.tags(options);
  return listStages(listing.all()).map(stageID);
}

/** The rejected records of one listing, by creation time (werf counts them for any digest). */
interface RejectedIndex {
  /** The listing's version when built: a listing changed since is indexed again. */
  readonly version: number;
  readonly byCreationTs: ReadonlyMap<number, readonly string[]>;
}

const rejectedIndexes = new WeakMap<TagListing, RejectedIndex>();

/** Every rejected record of the listing as werf recognises them, indexed once per listing. */
function rejectedRecords(listing: TagListing): RejectedIndex {
  const cached = rejectedIndexes.get(listing);
  if (cached && cached.version === listing.version) return cached;
  const byCreationTs = new Map<number, string[]>();
  for (const tag of listing.all()) {
    if (!tag.endsWith(REJECTED_TAG_SUFFIX)) continue;
    let creationTs: number;
    try {
      creationTs = parseRejectedTag(tag).creationTs;
    } catch {
      continue;
    }
    const tags = byCreationTs.get(creationTs);
    if (tags) tags.push(tag);
    else byCreationTs.set(creationTs, [tag]);
  }
  const index = { version: listing.version, byCreationTs };
  rejectedIndexes.set(listing, index);
  return index;
}

/**
 * The stages of one digest that are not rejected (and not older than
 * `parentCreationTs`), exactly as werf's GetStagesIDsByDigest (including its
 * quirk: a rejected record counts for the queried digest whatever digest it
 * names), answered from indexes of the listing: its tags by digest and its
 * rejected records by creation time, so many digests cost one listing and
 * a few lookups each.
 */
export async function listStageIDsByDigest(
  ctx: RepoContext,
  digest: string,
  options: ListingOptions & { parentCreationTs?: number } = {},
): Promise<StageID[]> {
  const listing = await ctx.tags(options);
  const own = listing.withPrefix(digest);
  const index = rejectedRecords(listing);
  const rejected: string[] = [];
  for (const tag of own) {
    if (tag.endsWith(REJECTED_TAG_SUFFIX)) continue;
    const dash = tag.indexOf('-');
    const creationTs = dash < 0 ? 0 : Number(tag.slice(dash + 1));
    // This digest's own records are in `own`; another digest's is in the index, which is
    // built again whenever the listing changed (its version).
    for (const record of index.byCreationTs.get(creationTs) ?? []) {
      if (listing.has(record)) rejected.push(record);
    }
  }
  return listStagesByDigest([...own, ...rejected], digest, {
    ...(options.parentCreationTs === undefined ? {} : { parentCreationTs: options.parentCreationTs }),
  }).map(stageID);
}

/** The stage's description without the rejected check (`null` when absent; `BROKEN_IMAGE` propagates). */
export async function describeStage(
  ctx: RepoContext,
  stage: StageRef,
  options?: OperationOptions,
): Promise<StageDesc | null> {
  const info = await describeImage(ctx, encodeStageTag(stage), options);
  return info ? { stageID: stageID(stage), info } : null;
}

/** Whether a tag is in the repository: from the listing when one is cached or asked for, else a HEAD. */
async function hasTag(ctx: RepoContext, tag: string, options: ListingOptions = {}): Promise<boolean> {
  const listing = options.cache ? await ctx.tags(options) : ctx.cached();
  if (listing) return listing.has(tag);
  try {
    return (await ctx.registry.headManifest(ctx.repository, tag, signalOf(options))) !== undefined;
  } catch (error) {
    if (isStowageError(error, 'NAME_UNKNOWN')) return false;
    throw error;
  }
}

/**
 * The stage's description; `null` when absent or rejected; `BROKEN_IMAGE` when its
 * config or a child is gone. The rejected record is looked for first (werf reads the
 * image first): from a cached listing it costs nothing and spares the manifest and
 * config reads of a rejected stage, and a stage rejected for being broken reads as
 * rejected, not broken again.
 */
export async function getStageDesc(
  ctx: RepoContext,
  stage: StageRef,
  options?: ListingOptions,
): Promise<StageDesc | null> {
  if (await hasTag(ctx, encodeRejectedTag(stage), options)) {
    ctx.logger.info(
      { digest: stage.digest, creationTs: stage.creationTs },
      'stage image is rejected: ignoring it',
    );
    return null;
  }
  return await describeStage(ctx, stage, options);
}

/** Removes a stage's image (its tag, then its manifest unless another tag needs it). */
export async function removeStageImage(
  ctx: RepoContext,
  desc: StageDesc,
  options?: OperationOptions,
): Promise<void> {
  const digest = digestOfRepoDigest(desc.info.repoDigest);
  await removeImage(
    ctx,
    { tag: encodeStageTag(desc.stageID), ...(digest ? { digest } : {}), what: 'stage' },
    options,
  );
}

/** Deletes the stage image, then its rejected record when there is one; absent is success. */
export async function deleteStage(
  ctx: RepoContext,
  desc: StageDesc,
  options?: OperationOptions,
): Promise<void> {
  await removeStageImage(ctx, desc, options);
  const rejected = encodeRejectedTag(desc.stageID);
  if (ctx.cached()?.has(rejected) === false) return;
  await removeImage(ctx, { tag: rejected, what: 'rejected record' }, options);
}

/** A first push creates a repository in every OCI registry: nothing to do. */
export async function createRepo(_ctx: RepoContext, options?: OperationOptions): Promise<void> {
  options?.signal?.throwIfAborted();
}

/** Runs `task` over `items`, at most `limit` at once; the first failure rejects once the others settle. */
async function eachLimited<T>(items: readonly T[], limit: number, task: (item: T) => Promise<void>) {
  let next = 0;
  let failed = false;
  const worker = async () => {
    while (!failed && next < items.length) {
      const item = items[next++] as T;
      try {
        await task(item);
      } catch (error) {
        failed = true;
        throw error;
      }
    }
  };
  const settled = await Promise.allSettled(Array.from({ length: Math.min(limit, items.length) }, worker));
  const rejected = settled.find((s): s is PromiseRejectedResult => s.status === 'rejected');
  if (rejected) throw rejected.reason;
}

/**
 * Removes every manifest a tag of the repository points at (each digest once;
 * not-found is success). A registry that cannot delete manifests is
 * `UNSUPPORTED`, before anything is removed.
 */
export async function deleteRepo(ctx: RepoContext, options?: OperationOptions): Promise<void> {
  const registry = await ctx.registry.capabilities(signalOf(options));
  if (!registry.deleteManifest) {
    throw new StagesStorageError(
      'UNSUPPORTED',
      `cannot delete repository ${ctx.address}: registry ${ctx.registry.origin} does not delete manifests`,
      { details: { address: ctx.address, origin: ctx.registry.origin } },
    );
  }
  const tags = (await ctx.tags({ ...signalOf(options) })).all();
  const digests = new Set<Digest>();
  await eachLimited(tags, 8, async (tag) => {
    const head = await ctx.registry.headManifest(ctx.repository, tag, signalOf(options));
    if (head) digests.add(head.digest);
  });
  await eachLimited([...digests], 8, async (digest) => {
    try {
      await ctx.registry.deleteManifest(ctx.repository, digest, signalOf(options));
    } catch (error) {
      if (isStowageError(error, 'MANIFEST_UNKNOWN') || isStowageError(error, 'NAME_UNKNOWN')) return;
      throw error;
    }
  });
  for (const tag of tags) ctx.noteTag(tag, false);
  ctx.logger.info({ address: ctx.address, manifests: digests.size }, 'deleted stages repository');
}

/**
 * Pushes a Docker manifest list over per-platform stages (in the order given,
 * each with the platform of its config) under `tag`, and describes it.
 */
export async function postMultiplatformImage(
  ctx: RepoContext,
  options: PostMultiplatformImageOptions,
): Promise<StageDesc> {
  const manifests = await Promise.all(
    options.images.map(async (desc) => {
      const tag = encodeStageTag(desc.stageID);
      const read = await readManifest(ctx, tag, options);
      if (!read) {
        throw new StagesStorageError('STAGE_NOT_FOUND', `stage ${ctx.imageName(tag)} is not in the storage`, {
          details: { image: ctx.imageName(tag) },
        });
      }
      if (read.parsed.kind !== 'image') {
        throw new StagesStorageError(
          'OPTIONS_INVALID',
          `stage ${ctx.imageName(tag)} is a manifest list, not one platform's image`,
        );
      }
      const config = await readConfig(ctx, ctx.imageName(tag), read.parsed.manifest.config, options);
      const platform: Platform = {
        architecture: typeof config.architecture === 'string' ? config.architecture : '',
        os: typeof config.os === 'string' ? config.os : '',
        ...(typeof config.variant === 'string' && config.variant !== '' ? { variant: config.variant } : {}),
      };
      return {
        mediaType: read.content.mediaType,
        size: read.content.size,
        digest: read.content.digest,
        platform,
      };
    }),
  );
  const list = {
    schemaVersion: 2,
    mediaType: MediaType.DockerManifestList,
    manifests,
  };
  await ctx.registry.putManifest(ctx.repository, options.tag, {
    bytes: new TextEncoder().encode(JSON.stringify(list)),
    mediaType: MediaType.DockerManifestList,
    ...signalOf(options),
  });
  ctx.noteTag(options.tag, true);
  ctx.logger.info({ image: ctx.imageName(options.tag), platforms: manifests.length }, 'posted manifest list');
  const desc = await getStageDesc(ctx, { digest: options.tag, creationTs: 0 }, options);
  if (!desc) {
    throw new StagesStorageError(
      'STAGE_NOT_FOUND',
      `manifest list ${ctx.imageName(options.tag)} is not readable as a stage after its push`,
      { details: { image: ctx.imageName(options.tag) } },
    );
  }
  return desc;
}
