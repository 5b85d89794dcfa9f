import { type Digest, isDigest } from './digest.js';
import { compareBytes } from './paging.js';
import type { Referrers } from './registry.js';
import type { Descriptor } from './types.js';

/** What a referrers listing needs to know of one stored manifest. */
export interface ReferrerSource {
  readonly digest: Digest;
  readonly mediaType: string;
  readonly size: number;
  /** The manifest's JSON (parsed or raw bytes). */
  readonly manifest: unknown;
}

const isRecord = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

function manifestObject(manifest: unknown): Record<string, unknown> | undefined {
  if (manifest instanceof Uint8Array) {
    try {
      const value: unknown = JSON.parse(Buffer.from(manifest).toString('utf8'));
      return isRecord(value) ? value : undefined;
    } catch {
      return undefined;
    }
  }
  return isRecord(manifest) ? manifest : undefined;
}

/** The digest a manifest names as its `subject`, when it has a valid one. */
export function subjectOf(manifest: unknown): Digest | undefined {
  const value = manifestObject(manifest);
  const subject = isRecord(value?.subject) ? value.subject.digest : undefined;
  return isDigest(subject) ? subject : undefined;
}

/**
 * The descriptor a referrers listing shows for a manifest: its own media type,
 * digest and size, its `artifactType` (the config media type for an image
 * manifest that has none, as the distribution spec asks) and its annotations.
 */
export function referrerDescriptor(source: ReferrerSource): Descriptor {
  const value = manifestObject(source.manifest) ?? {};
  const config = isRecord(value.config) ? value.config : undefined;
  const artifactType =
    typeof value.artifactType === 'string'
      ? value.artifactType
      : typeof config?.mediaType === 'string'
        ? config.mediaType
        : undefined;
  const annotations = isRecord(value.annotations) ? (value.annotations as Record<string, string>) : undefined;
  return {
    mediaType: typeof value.mediaType === 'string' ? value.mediaType : source.mediaType,
    digest: source.digest,
    size: source.size,
    ...(artifactType !== undefined ? { artifactType } : {}),
    ...(annotations !== undefined ? { annotations } : {}),
  };
}

/** A referrers answer: the descriptors sorted by digest, filtered by `artifactType` when one is given. */
export function filterReferrers(descriptors: Iterable<Descriptor>, artifactType?: string): Referrers {
  const manifests = [...descriptors]
    .filter((d) => artifactType === undefined || d.artifactType === artifactType)
    .sort((a, b) => compareBytes(a.digest, b.digest));
  return { manifests, filtersApplied: artifactType === undefined ? [] : ['artifactType'] };
}
