import type { Digest } from '@stowage/oci';
import {
  CLIENT_ID_TAG_PREFIX,
  CUSTOM_TAG_META_TAG_PREFIX,
  IMPORT_METADATA_TAG_PREFIX,
  isCleanupTag,
  isSyncServerTag,
  MANAGED_IMAGE_TAG_PREFIX,
  META_TAG_PREFIX,
  parseClientIdTag,
  parseCustomTagMetaTag,
  parseImportMetadataTag,
  parseManagedImageTag,
  parseMetaTag,
  parseReferrersTag,
  parseRejectedTag,
  REJECTED_TAG_SUFFIX,
} from './records.js';
import { isStageListingTag, parseStageTag } from './stage.js';

export type TagKind =
  | { readonly kind: 'stage'; readonly digest: string; readonly creationTs: number }
  | { readonly kind: 'multiplatform-stage'; readonly digest: string }
  | { readonly kind: 'managed-image'; readonly managedImageId: string; readonly imageName: string }
  | {
      readonly kind: 'meta';
      readonly imageMetadataId: string;
      readonly commit: string;
      readonly stageId: string;
    }
  | { readonly kind: 'custom-tag-meta'; readonly id: string }
  | { readonly kind: 'import-metadata'; readonly importSourceId: string }
  | { readonly kind: 'client-id'; readonly clientId: string; readonly timestampMs: number }
  | { readonly kind: 'rejected'; readonly digest: string; readonly creationTs: number }
  | { readonly kind: 'sync-server' }
  | { readonly kind: 'cleanup' }
  | { readonly kind: 'referrers'; readonly subject: Digest }
  | { readonly kind: 'other' };

function attempt<T>(fn: () => T): T | undefined {
  try {
    return fn();
  } catch {
    return undefined;
  }
}

/**
 * What a tag in a werf repository is, with its parsed fields. Never throws.
 * Record prefixes are tried first (as werf's stage listing excludes them),
 * then the rejected pattern, the fixed sync-server and cleanup records, the
 * OCI referrers fallback tag, and last the stage shapes. A tag that has a
 * record's prefix but not its shape is `other`, as werf skips it.
 */
export function classifyTag(tag: string): TagKind {
  if (tag.startsWith(MANAGED_IMAGE_TAG_PREFIX))
    return { kind: 'managed-image', ...parseManagedImageTag(tag) };
  if (tag.startsWith(META_TAG_PREFIX)) {
    const meta = attempt(() => parseMetaTag(tag));
    return meta ? { kind: 'meta', ...meta } : { kind: 'other' };
  }
  if (tag.startsWith(CUSTOM_TAG_META_TAG_PREFIX))
    return { kind: 'custom-tag-meta', ...parseCustomTagMetaTag(tag) };
  if (tag.startsWith(IMPORT_METADATA_TAG_PREFIX))
    return { kind: 'import-metadata', ...parseImportMetadataTag(tag) };
  if (tag.startsWith(CLIENT_ID_TAG_PREFIX)) {
    const client = attempt(() => parseClientIdTag(tag));
    return client ? { kind: 'client-id', ...client } : { kind: 'other' };
  }
  if (tag.endsWith(REJECTED_TAG_SUFFIX)) {
    const rejected = attempt(() => parseRejectedTag(tag));
    return rejected ? { kind: 'rejected', ...rejected } : { kind: 'other' };
  }
  if (isSyncServerTag(tag)) return { kind: 'sync-server' };
  if (isCleanupTag(tag)) return { kind: 'cleanup' };
  const subject = attempt(() => parseReferrersTag(tag));
  if (subject) return { kind: 'referrers', subject };
  if (isStageListingTag(tag)) {
    const stage = attempt(() => parseStageTag(tag));
    if (stage) {
      return stage.creationTs === 0 && !tag.includes('-')
        ? { kind: 'multiplatform-stage', digest: stage.digest }
        : { kind: 'stage', ...stage };
    }
  }
  return { kind: 'other' };
}
