import { type Digest, isStowageError, type OperationOptions, type RegistryCapabilities } from '@stowage/oci';
import { classifyTag, Labels } from '@stowage/tags';
import type { RepoContext } from './context.js';
import { StagesStorageError } from './errors.js';
import type { TagListing } from './listing.js';
import { isNotFound, pushRecord, readRecordConfig, signalOf } from './record-image.js';

/** What to remove: a tag, and the manifest it points at unless another tag still needs it. */
export interface RemoveImageTarget {
  readonly tag: string;
  /** The manifest digest, when known (saves a HEAD). */
  readonly digest?: Digest;
  /**
   * Keep the manifest: only the tag goes (a custom tag shares its stage's
   * digest). Without a tag delete, the tag is retired by pointing it at a
   * unique throwaway manifest that is then deleted by digest.
   */
  readonly keepManifest?: boolean;
  /** Named in errors: `stage`, `rejected record`, `managed-image record`… */
  readonly what: string;
}

/** The label of the throwaway record a retired tag is pointed at before it is deleted. */
export const RETIRED_TAG_LABEL = 'stowage.io/retired';

const isRefusal = (error: unknown): boolean =>
  isStowageError(error, 'DENIED') || isStowageError(error, 'UNSUPPORTED');

async function ignoreNotFound(action: () => Promise<unknown>): Promise<void> {
  try {
    await action();
  } catch (error) {
    if (!isNotFound(error)) throw error;
  }
}

const STAGE_KINDS: ReadonlySet<string> = new Set(['stage', 'multiplatform-stage']);

/** A time with a fraction of a second: a push time of werf's or ours, unique to one record. */
const PRECISE_TIME = /T\d{2}:\d{2}:\d{2}\.\d+/;

/**
 * Whether the record image at `digest` is provably its record's alone: its
 * config was written at a push time with sub-second precision (werf's and
 * ours). A record without one (created missing or whole seconds, as older
 * tools may write them) may share its manifest with a record of the same labels.
 */
async function isUniqueRecord(ctx: RepoContext, digest: Digest, options: OperationOptions): Promise<boolean> {
  try {
    const config = await readRecordConfig(ctx, digest, options);
    return config === null || (config.created !== undefined && PRECISE_TIME.test(config.created));
  } catch (error) {
    if (isStowageError(error, 'BLOB_UNKNOWN')) return false;
    throw error;
  }
}

/**
 * Whether a tag other than `tag` points at `digest`. A stage can share its
 * digest with the user's custom tags (werf's "other" tags); a record with
 * other records of the same labels, unless its push time makes it unique
 * (every record werf or Stowage writes), which one config read settles.
 * The candidates come from the cached listing when there is one, so a batch
 * of deletes lists the repository once.
 */
async function digestNeededElsewhere(
  ctx: RepoContext,
  tag: string,
  digest: Digest,
  options: OperationOptions,
): Promise<boolean> {
  let candidate: (kind: string) => boolean;
  if (STAGE_KINDS.has(classifyTag(tag).kind)) {
    candidate = isUserTagKind;
  } else {
    if (await isUniqueRecord(ctx, digest, options)) return false;
    candidate = isRecordTagKind;
  }
  const listing = await ctx.tags({ ...signalOf(options), cache: true });
  for (const other of candidatesOf(listing, candidate === isUserTagKind ? 'user' : 'record')) {
    if (other === tag || !listing.has(other)) continue;
    const pointsAt = await digestOf(ctx, listing, other, options);
    if (pointsAt === digest) {
      ctx.logger.debug({ tag, digest, sharedWith: other }, 'manifest kept: another tag needs it');
      return true;
    }
  }
  return false;
}

const isUserTagKind = (kind: string): boolean => kind === 'other';
const isRecordTagKind = (kind: string): boolean => !STAGE_KINDS.has(kind) && kind !== 'referrers';

/**
 * Per listing (until a tag is added), the tags that may share a stage's digest (user tags)
 * or a record's: classified once, not once per delete, so deleting 1,000 stages of a
 * 60,000-tag repository does not classify 60 million tags.
 */
const candidateLists = new WeakMap<TagListing, { additions: number; user?: string[]; record?: string[] }>();

function candidatesOf(listing: TagListing, which: 'user' | 'record'): readonly string[] {
  let entry = candidateLists.get(listing);
  if (!entry || entry.additions !== listing.additions) {
    entry = { additions: listing.additions };
    candidateLists.set(listing, entry);
  }
  const known = entry[which];
  if (known) return known;
  const test = which === 'user' ? isUserTagKind : isRecordTagKind;
  const found = listing.all().filter((t) => test(classifyTag(t).kind));
  entry[which] = found;
  return found;
}

/**
 * What a tag points at, HEADed once per listing until a tag is written through the
 * storage: a batch of deletes asks each user tag once. (Like every cached read, a tag
 * moved by someone else since is not seen.)
 */
const headsOf = new WeakMap<TagListing, { additions: number; heads: Map<string, Digest | undefined> }>();

async function digestOf(
  ctx: RepoContext,
  listing: TagListing,
  tag: string,
  options: OperationOptions,
): Promise<Digest | undefined> {
  let entry = headsOf.get(listing);
  if (!entry || entry.additions !== listing.additions) {
    entry = { additions: listing.additions, heads: new Map() };
    headsOf.set(listing, entry);
  }
  const { heads } = entry;
  if (heads.has(tag)) return heads.get(tag);
  const digest = (await ctx.registry.headManifest(ctx.repository, tag, signalOf(options)))?.digest;
  heads.set(tag, digest);
  return digest;
}

/**
 * Removes a tag from a store that cannot delete tags, the way regclient does:
 * the tag is moved to a unique throwaway record image, which is then deleted
 * by digest (taking the tag with it). The manifest the tag pointed at stays.
 */
async function retireTag(
  ctx: RepoContext,
  tag: string,
  capabilities: RegistryCapabilities,
  options: OperationOptions,
): Promise<void> {
  if (!capabilities.deleteManifest) {
    throw new StagesStorageError('UNSUPPORTED', 'the registry deletes neither tags nor manifests');
  }
  const throwaway = await pushRecord(
    ctx,
    tag,
    { [Labels.werf]: ctx.project, [RETIRED_TAG_LABEL]: tag },
    options,
  );
  await ignoreNotFound(() => ctx.registry.deleteManifest(ctx.repository, throwaway, signalOf(options)));
}

/** Deletes the tag; falls back to retiring it when the store turns out not to delete tags. */
async function dropTag(
  ctx: RepoContext,
  tag: string,
  capabilities: RegistryCapabilities,
  options: OperationOptions,
): Promise<void> {
  if (!capabilities.deleteTag) return await retireTag(ctx, tag, capabilities, options);
  try {
    await ignoreNotFound(() => ctx.registry.deleteTag(ctx.repository, tag, signalOf(options)));
  } catch (error) {
    if (!isStowageError(error, 'UNSUPPORTED')) throw error;
    await retireTag(ctx, tag, { ...capabilities, deleteTag: false }, options);
  }
}

/** Deletes the tag; a refusal is only logged (the manifest delete that follows removes it). */
async function tryDeleteTag(ctx: RepoContext, tag: string, options: OperationOptions): Promise<void> {
  try {
    await ignoreNotFound(() => ctx.registry.deleteTag(ctx.repository, tag, signalOf(options)));
  } catch (error) {
    if (!isRefusal(error)) throw error;
    ctx.logger.debug(
      { repository: ctx.repository, tag, err: error },
      'tag delete refused; deleting the manifest',
    );
  }
}

/**
 * Removes an image the way werf does (the tag, then the manifest by digest;
 * not-found is success), without ever deleting a digest another tag still
 * needs. A refusal is `DELETE_REFUSED` naming the registry and the record.
 */
export async function removeImage(
  ctx: RepoContext,
  target: RemoveImageTarget,
  options: OperationOptions = {},
): Promise<void> {
  const { tag } = target;
  const signal = signalOf(options);
  try {
    const digest = target.digest ?? (await ctx.registry.headManifest(ctx.repository, tag, signal))?.digest;
    if (digest !== undefined) {
      const capabilities = await ctx.registry.capabilities(signal);
      if (target.keepManifest) {
        await dropTag(ctx, tag, capabilities, options);
      } else if (await digestNeededElsewhere(ctx, tag, digest, options)) {
        await dropTag(ctx, tag, capabilities, options);
      } else {
        // werf's order: the tag, then the manifest. A refused tag delete is
        // only noted, as werf does: deleting the manifest takes its tags too.
        if (capabilities.deleteTag) await tryDeleteTag(ctx, tag, options);
        await ignoreNotFound(() => ctx.registry.deleteManifest(ctx.repository, digest, signal));
      }
    }
  } catch (error) {
    if (isNotFound(error)) {
      // Gone already (a concurrent delete): what was asked for holds.
    } else if (isRefusal(error)) {
      const registry = ctx.address;
      throw new StagesStorageError(
        'DELETE_REFUSED',
        `registry ${registry} refused to delete the ${target.what} ${tag}`,
        { cause: error, details: { registry, origin: ctx.registry.origin, what: target.what, tag } },
      );
    } else {
      throw error;
    }
  }
  ctx.noteTag(tag, false);
  ctx.logger.debug({ repository: ctx.repository, tag, what: target.what }, 'removed image');
}
