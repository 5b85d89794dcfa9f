import { TagParseError } from './errors.js';
import { byteLength, sha3_224Hash } from './hash.js';
import { parseGoInt64 } from './int64.js';
import {
  MANAGED_IMAGE_TAG_PREFIX,
  META_TAG_PREFIX,
  parseRejectedTag,
  REJECTED_TAG_SUFFIX,
} from './records.js';

/** werf's build cache version, the second argument of every stage digest. */
export const BUILD_CACHE_VERSION = '1.2';
/** Length of a stage digest (sha3-224 in hex). */
export const STAGE_DIGEST_LENGTH = 56;

/** A stage: its digest and creation time in ms (0 for a multiplatform stage). */
export interface StageId {
  readonly digest: string;
  readonly creationTs: number;
}

/** `<digest>-<creationTs>`, or the bare digest when creationTs is 0 (a multiplatform stage). */
export function encodeStageTag(stage: StageId): string {
  return stage.creationTs === 0 ? stage.digest : `${stage.digest}-${stage.creationTs}`;
}

/** The same string as `encodeStageTag`: werf's `StageID.String()`. */
export const stageIdString = encodeStageTag;

/**
 * Parses a stage tag as werf does: split on the first `-`; without one, the
 * tag is a multiplatform stage when it is exactly 56 characters (the hex is not
 * checked); otherwise the right part is a Go int64 creation timestamp.
 */
export function parseStageTag(tag: string): StageId {
  const dash = tag.indexOf('-');
  if (dash < 0) {
    if (byteLength(tag) !== STAGE_DIGEST_LENGTH) throw new TagParseError(tag, 'sha3-224 hash expected');
    return { digest: tag, creationTs: 0 };
  }
  return { digest: tag.slice(0, dash), creationTs: parseGoInt64(tag.slice(dash + 1), tag) };
}

/**
 * werf's pre-filter when it lists every stage of a repository: 70 bytes with
 * exactly one `-`, or 56 bytes; never a managed-image or meta record, never a
 * rejected stage. (A user tag of that shape is taken for a stage, as in werf.)
 */
export function isStageListingTag(tag: string): boolean {
  const length = byteLength(tag);
  const shaped = (length === 70 && tag.split('-').length === 2) || length === STAGE_DIGEST_LENGTH;
  if (!shaped) return false;
  return (
    !tag.startsWith(MANAGED_IMAGE_TAG_PREFIX) &&
    !tag.startsWith(META_TAG_PREFIX) &&
    !tag.endsWith(REJECTED_TAG_SUFFIX)
  );
}

/** Every stage in a tag listing, exactly as werf's GetStagesIDs selects them. */
export function listStages(tags: Iterable<string>): StageId[] {
  const stages: StageId[] = [];
  for (const tag of tags) {
    if (!isStageListingTag(tag)) continue;
    try {
      stages.push(parseStageTag(tag));
    } catch {
      // werf skips tags of an unexpected format
    }
  }
  return stages;
}

/**
 * The stages of one digest in a tag listing, as werf's GetStagesIDsByDigest:
 * tags starting with the digest, not rejected, not older than
 * `parentCreationTs`. werf's quirk is kept: a rejected record counts for the
 * queried digest whatever digest its tag names.
 */
export function listStagesByDigest(
  tags: Iterable<string>,
  digest: string,
  options: { parentCreationTs?: number } = {},
): StageId[] {
  const all = [...tags];
  const rejected = new Set<number>();
  for (const tag of all) {
    if (!tag.endsWith(REJECTED_TAG_SUFFIX)) continue;
    try {
      rejected.add(parseRejectedTag(tag).creationTs);
    } catch {
      // not a rejected record werf recognises
    }
  }
  const stages: StageId[] = [];
  for (const tag of all) {
    if (!tag.startsWith(digest) || tag.endsWith(REJECTED_TAG_SUFFIX)) continue;
    let parsed: StageId;
    try {
      parsed = parseStageTag(tag);
    } catch {
      continue;
    }
    if (rejected.has(parsed.creationTs)) continue;
    if (options.parentCreationTs !== undefined && options.parentCreationTs > parsed.creationTs) continue;
    stages.push({ digest, creationTs: parsed.creationTs });
  }
  return stages;
}

export interface StageDigestInput {
  /** `os/arch[/variant]`; left out of the hash when empty or `linux/amd64`. */
  readonly targetPlatform?: string;
  readonly stageName: string;
  /** The stage's dependencies string (computed by werf per stage type). */
  readonly dependencies: string;
  /** The previous non-empty stage, when there is one. */
  readonly previous?: { readonly digest: string; readonly dependenciesForNext: string };
  /** The legacy `BaseImage` option. */
  readonly baseImage?: string;
}

/** A stage digest: sha3-224 over platform, build cache version, name, dependencies and the previous stage. */
export function computeStageDigest(input: StageDigestInput): string {
  const args: string[] = [];
  if (input.targetPlatform && input.targetPlatform !== 'linux/amd64') args.push(input.targetPlatform);
  args.push(BUILD_CACHE_VERSION, input.stageName, input.dependencies);
  if (input.previous) args.push(input.previous.digest, input.previous.dependenciesForNext);
  if (input.baseImage) args.push(input.baseImage);
  return sha3_224Hash(...args);
}

/**
 * The digest (and tag) of a multiplatform stage: sha3-224 over the stage IDs
 * of each platform's last stage, ordered by platform string in byte order.
 */
export function multiplatformStageDigest(entries: readonly { platform: string; stageId: string }[]): string {
  const sorted = [...entries].sort((a, b) =>
    Buffer.compare(Buffer.from(a.platform), Buffer.from(b.platform)),
  );
  return sha3_224Hash(...sorted.map((e) => e.stageId));
}
