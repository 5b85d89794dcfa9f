import {
  type Descriptor,
  type Digest,
  digestAlgorithm,
  digestHex,
  isDigest,
  isStowageError,
  MediaType,
  type Referrers,
  type ReferrersOptions,
} from '@stowage/oci';
import { RegistryProtocolError } from '../errors.js';
import {
  bareMediaType,
  checkDigest,
  checkRepository,
  LIST_BODY_LIMIT,
  MAX_PAGES,
  parseJson,
  parseJsonSafe,
  signalOf,
} from '../internal/checks.js';
import type { ClientContext } from '../internal/context.js';
import { nextLink } from '../internal/link.js';
import { pullScope } from '../internal/scope.js';
import { headerValue } from '../internal/transport.js';
import { fetchManifest, putManifestBytes } from './manifest-requests.js';

/** The tag the referrers tag schema keeps the referrers of `digest` under: `<alg>-<hex>`, truncated. */
export function referrersTag(digest: Digest): string {
  return `${digestAlgorithm(digest).slice(0, 32)}-${digestHex(digest).slice(0, 64)}`;
}

function descriptorsOf(value: unknown): Descriptor[] {
  const found = (value as { manifests?: unknown } | undefined)?.manifests;
  if (!Array.isArray(found)) return [];
  return found.filter(
    (d): d is Descriptor =>
      typeof d === 'object' &&
      d !== null &&
      typeof (d as Descriptor).mediaType === 'string' &&
      isDigest((d as Descriptor).digest) &&
      typeof (d as Descriptor).size === 'number',
  );
}

/** `GET /v2/<name>/referrers/<digest>`, or the referrers tag when the registry has no referrers API. */
export async function listReferrers(
  context: ClientContext,
  repository: string,
  digest: Digest,
  options: ReferrersOptions = {},
): Promise<Referrers> {
  const repo = checkRepository(repository);
  const subject = checkDigest(digest);
  const { artifactType } = options;
  let manifests: readonly Descriptor[] | undefined;
  let filtered = false;
  if (context.referrersApi !== false) {
    const fromApi = await referrersFromApi(context, repo, subject, artifactType, options.signal);
    if (fromApi !== undefined) ({ manifests, filtered } = fromApi);
  }
  manifests ??= await referrersFromTag(context, repo, subject, options.signal);
  if (artifactType !== undefined && !filtered)
    manifests = manifests.filter((d) => d.artifactType === artifactType);
  return { manifests, filtersApplied: artifactType !== undefined ? ['artifactType'] : [] };
}

/** Whether the registry serves the referrers API, asking it once when not yet known. */
export async function hasReferrersApi(
  context: ClientContext,
  repo: string,
  subject: Digest,
  signal?: AbortSignal,
): Promise<boolean> {
  if (context.referrersApi === undefined) await referrersFromApi(context, repo, subject, undefined, signal);
  return context.referrersApi === true;
}

/** The referrers API, every page; `undefined` when the registry does not serve it. */
async function referrersFromApi(
  context: ClientContext,
  repo: string,
  subject: Digest,
  artifactType: string | undefined,
  signal?: AbortSignal,
): Promise<{ manifests: Descriptor[]; filtered: boolean } | undefined> {
  let target = `/v2/${repo}/referrers/${subject}`;
  if (artifactType !== undefined) target += `?artifactType=${encodeURIComponent(artifactType)}`;
  const manifests: Descriptor[] = [];
  let filtered = false;
  const visited = new Set<string>([target]);
  for (let page = 0; page < MAX_PAGES; page++) {
    const response = await context.sendForBytes(
      {
        method: 'GET',
        target,
        headers: { accept: MediaType.OciIndex },
        endpoint: 'referrers',
        accept: [200, 400, 404, 405],
        scopes: [pullScope(repo)],
        ...signalOf({ signal }),
      },
      LIST_BODY_LIMIT,
    );
    const type = bareMediaType(headerValue(response.headers, 'content-type'));
    if (response.status !== 200 || (type !== MediaType.OciIndex && type !== 'application/json')) {
      if (page > 0)
        throw new RegistryProtocolError('referrers paging broke off', { status: response.status });
      const body =
        response.status === 404 ? (parseJsonSafe(response.bytes) as { errors?: { code?: unknown }[] }) : {};
      // A registry with the API answers NAME_UNKNOWN for a missing repository; only a bare 404 means "no API".
      if (!body?.errors?.some((e) => e?.code === 'NAME_UNKNOWN')) context.referrersApi = false;
      return undefined;
    }
    context.referrersApi = true;
    const applied = headerValue(response.headers, 'oci-filters-applied') ?? '';
    if (applied.split(',').some((f) => f.trim() === 'artifactType')) filtered = true;
    manifests.push(...descriptorsOf(parseJson(response.bytes, 'referrers index')));
    const link = nextLink(response.headers.link);
    if (link === undefined) break;
    const next = new URL(link, context.registry.origin);
    target = next.pathname + next.search;
    if (visited.has(target)) break;
    visited.add(target);
  }
  return { manifests, filtered: filtered && artifactType !== undefined };
}

async function referrersFromTag(
  context: ClientContext,
  repo: string,
  subject: Digest,
  signal?: AbortSignal,
): Promise<Descriptor[]> {
  try {
    const index = await fetchManifest(
      context,
      context.registry,
      repo,
      { value: referrersTag(subject) },
      { accept: [MediaType.OciIndex], ...signalOf({ signal }) },
    );
    return descriptorsOf(parseJson(index.bytes, 'referrers tag index'));
  } catch (error) {
    if (isStowageError(error, 'MANIFEST_UNKNOWN') || isStowageError(error, 'NAME_UNKNOWN')) return [];
    throw error;
  }
}

/**
 * Read-modify-write of the referrers tag index. Not atomic: two clients
 * updating the same subject at once can lose one update, as with every
 * client of the tag schema.
 */
export async function updateReferrersTag(
  context: ClientContext,
  repo: string,
  subject: Digest,
  signal: AbortSignal | undefined,
  change: (descriptors: readonly Descriptor[]) => readonly Descriptor[] | undefined,
): Promise<void> {
  const current = await referrersFromTag(context, repo, subject, signal);
  const next = change(current);
  if (next === undefined) return;
  const index = { schemaVersion: 2, mediaType: MediaType.OciIndex, manifests: next };
  const bytes = new TextEncoder().encode(JSON.stringify(index));
  await putManifestBytes(context, {
    repo,
    reference: referrersTag(subject),
    bytes,
    mediaType: MediaType.OciIndex,
    signal,
  });
}
