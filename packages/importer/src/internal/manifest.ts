// One manifest (and, for an index, its children) into one repository's rows.
import type { MetadataStore, RepositoryRow } from '@stowage/metadata-db';
import {
  type Digest,
  isDigest,
  isImageManifestMediaType,
  isIndexMediaType,
  isNonDistributableMediaType,
  MediaType,
} from '@stowage/oci';
import { ImportError } from '../errors.js';
import { type Attempt, linkSkip, note, Skip } from './attempt.js';
import type { ImportRun } from './run.js';

const BUILDKIT_CACHE_CONFIG = 'application/vnd.buildkit.cacheconfig.v0';
/** Indexes inside indexes deeper than this are refused as broken children. */
const MAX_INDEX_DEPTH = 8;

/** Where a manifest goes: a repository's rows, in one attempt's transaction. */
export interface ManifestTarget {
  readonly store: MetadataStore;
  readonly repository: string;
  readonly repo: RepositoryRow;
  readonly attempt: Attempt;
  /** The repository's manifests already in the database, by digest (an earlier run's). */
  readonly known: ReadonlyMap<Digest, number>;
}

interface Descriptor {
  mediaType?: unknown;
  digest?: unknown;
  size?: unknown;
}

interface ManifestJson {
  schemaVersion?: unknown;
  mediaType?: unknown;
  config?: Descriptor;
  layers?: Descriptor[];
  manifests?: Descriptor[];
  subject?: Descriptor;
  artifactType?: unknown;
}

/**
 * Imports one manifest into a repository; returns its id. A manifest already
 * imported in this attempt is not read again, and one already found
 * unimportable throws the same `Skip`.
 */
export async function importManifest(
  run: ImportRun,
  target: ManifestTarget,
  digest: Digest,
  depth = 0,
): Promise<number> {
  const { attempt } = target;
  const known = attempt.done.get(digest);
  if (known !== undefined) return known;
  const skipped = attempt.skipped.get(digest);
  if (skipped) throw skipped;
  const imported = target.known.get(digest);
  if (imported !== undefined) {
    // Imported by an earlier run: content-addressed, so unchanged. Only its revision link is
    // checked again (a manifest deleted since is not tagged anew); nothing is read or written.
    const revision = await run.tree.revision(target.repository, digest);
    if (!revision.ok) {
      const skip = linkSkip(revision, 'unknown-revision', digest);
      attempt.skipped.set(digest, skip);
      throw skip;
    }
    attempt.done.set(digest, imported);
    return imported;
  }
  try {
    const id = await importManifestOnce(run, target, digest, depth);
    attempt.done.set(digest, id);
    attempt.manifests++;
    return id;
  } catch (error) {
    if (error instanceof Skip) attempt.skipped.set(digest, error);
    throw error;
  }
}

async function readManifest(run: ImportRun, target: ManifestTarget, digest: Digest) {
  const { tree } = run;
  const { repository } = target;
  const revision = await tree.revision(repository, digest);
  if (!revision.ok) throw linkSkip(revision, 'unknown-revision', digest);
  const payload = await tree.blob(digest);
  if (payload === undefined) throw new Skip('unknown-revision', digest, 'the manifest blob is missing');
  if (payload.byteLength === 0) throw new Skip('empty-manifest', digest);
  let manifest: ManifestJson;
  try {
    manifest = JSON.parse(payload.toString('utf8'));
  } catch (error) {
    throw new ImportError(
      'MANIFEST_NOT_JSON',
      `manifest ${digest} in ${repository} is not JSON: ${(error as Error).message}`,
      { details: { repository, digest } },
    );
  }
  if (typeof manifest !== 'object' || manifest === null) {
    throw new ImportError('MANIFEST_NOT_JSON', `manifest ${digest} in ${repository} is not a JSON object`, {
      details: { repository, digest },
    });
  }
  if (manifest.schemaVersion === 1) throw new Skip('schema1-manifest', digest);
  if (manifest.schemaVersion !== 2) throw new Skip('unknown-revision', digest, 'unknown schemaVersion');
  return { payload, manifest };
}

async function importManifestOnce(
  run: ImportRun,
  target: ManifestTarget,
  digest: Digest,
  depth: number,
): Promise<number> {
  const { payload, manifest } = await readManifest(run, target, digest);
  let mediaType = typeof manifest.mediaType === 'string' ? manifest.mediaType : '';
  if (mediaType === '')
    mediaType = Array.isArray(manifest.manifests) ? MediaType.OciIndex : MediaType.OciManifest;
  const children = Array.isArray(manifest.manifests) ? manifest.manifests : [];
  const buildkitCache =
    isIndexMediaType(mediaType) && children.some((c) => c?.mediaType === BUILDKIT_CACHE_CONFIG);
  if (isIndexMediaType(mediaType) && !buildkitCache) {
    return importIndex(run, target, { digest, payload, mediaType, children, depth });
  }
  if (isImageManifestMediaType(mediaType) || buildkitCache) {
    return importImage(run, target, { digest, payload, mediaType, manifest, children, buildkitCache });
  }
  throw new ImportError(
    'MANIFEST_UNKNOWN_MEDIA_TYPE',
    `manifest ${digest} in ${target.repository} has the unknown media type ${JSON.stringify(mediaType.slice(0, 200))}`,
    { details: { repository: target.repository, digest, mediaType: mediaType.slice(0, 200) } },
  );
}

/** An index: its children first (a broken one is left out, with a warning), then the index and its references. */
async function importIndex(
  run: ImportRun,
  target: ManifestTarget,
  index: {
    digest: Digest;
    payload: Buffer;
    mediaType: string;
    children: readonly Descriptor[];
    depth: number;
  },
): Promise<number> {
  const { store, repository, repo, attempt } = target;
  const { digest, payload, depth } = index;
  if (depth > MAX_INDEX_DEPTH) throw new Skip('broken-index-child', digest, 'indexes nested too deep');
  const childIds: number[] = [];
  for (const child of index.children) {
    const childDigest = child?.digest;
    if (!isDigest(childDigest)) {
      note(attempt, {
        reason: 'broken-index-child',
        repository,
        digest,
        detail: 'a child has no valid digest',
      });
      continue;
    }
    try {
      childIds.push(await importManifest(run, target, childDigest, depth + 1));
    } catch (error) {
      if (!(error instanceof Skip)) throw error;
      note(attempt, { reason: error.reason, repository, digest: childDigest, detail: error.message });
      note(attempt, {
        reason: 'broken-index-child',
        repository,
        digest,
        detail: `child ${childDigest} skipped`,
      });
    }
  }
  const id = await store.manifest(repo, {
    digest,
    payload,
    schemaVersion: 2,
    mediaType: index.mediaType,
    totalSize: payload.byteLength,
  });
  for (const childId of childIds) if (childId !== id) await store.reference(repo, id, childId);
  return id;
}

/**
 * An image manifest (or a buildx cache "index", stored as one and marked
 * non-conformant): every link is checked before anything is written, then
 * config, layers and the manifest.
 */
async function importImage(
  run: ImportRun,
  target: ManifestTarget,
  image: {
    digest: Digest;
    payload: Buffer;
    mediaType: string;
    manifest: ManifestJson;
    children: readonly Descriptor[];
    buildkitCache: boolean;
  },
): Promise<number> {
  const { tree } = run;
  const { store, repository, repo, attempt } = target;
  const { digest, payload, manifest, children, buildkitCache } = image;
  const config = buildkitCache
    ? children.find((c) => c?.mediaType === BUILDKIT_CACHE_CONFIG)
    : manifest.config;
  const layers = buildkitCache
    ? children.filter((c) => c?.mediaType !== BUILDKIT_CACHE_CONFIG)
    : Array.isArray(manifest.layers)
      ? manifest.layers
      : [];
  const configDigest = config?.digest;
  if (!isDigest(configDigest)) throw new Skip('unlinked-config', digest, 'no valid config descriptor');
  const configLink = await tree.layerLink(repository, configDigest);
  if (!configLink.ok) throw linkSkip(configLink, 'unlinked-config', digest);
  const configSize = await tree.blobSize(configDigest);
  if (configSize === undefined)
    throw new Skip('unlinked-config', digest, `config ${configDigest} has no data`);
  // every layer's link is checked before anything is written: a broken one skips the manifest
  const usable: { digest: Digest; size: number; mediaType: string }[] = [];
  let nonDistributable = false;
  for (const layer of layers) {
    const layerDigest = layer?.digest;
    const layerType = typeof layer?.mediaType === 'string' ? layer.mediaType : '';
    if (isNonDistributableMediaType(layerType)) {
      nonDistributable = true;
      continue;
    }
    if (!isDigest(layerDigest)) throw new Skip('invalid-digest-link', digest, 'a layer has no valid digest');
    const link = await tree.layerLink(repository, layerDigest);
    if (!link.ok && link.problem !== 'missing') throw linkSkip(link, 'unlinked-layer', digest);
    const size = link.ok ? await tree.blobSize(layerDigest) : undefined;
    if (!link.ok || size === undefined) {
      note(attempt, {
        reason: 'unlinked-layer',
        repository,
        digest,
        detail: `layer ${layerDigest} not imported`,
      });
      continue;
    }
    usable.push({ digest: layerDigest, size, mediaType: layerType });
  }
  // one statement each for the blob rows and their links, however many layers
  await store.blobs([{ digest: configDigest, size: configSize }, ...usable]);
  await store.linkBlobs(repo, [configDigest, ...usable.map((layer) => layer.digest)]);
  const configPayload =
    configSize <= run.options.configPayloadLimit ? await tree.blob(configDigest) : undefined;
  const configMediaType =
    typeof config?.mediaType === 'string' && config.mediaType !== ''
      ? config.mediaType
      : 'application/octet-stream';
  const id = await store.manifest(repo, {
    digest,
    payload,
    schemaVersion: 2,
    mediaType: buildkitCache ? MediaType.OciManifest : image.mediaType,
    totalSize: payload.byteLength + configSize + usable.reduce((sum, l) => sum + l.size, 0),
    configuration: {
      digest: configDigest,
      mediaType: configMediaType,
      ...(configPayload ? { payload: configPayload } : {}),
    },
    nonConformant: buildkitCache,
    nonDistributableLayers: nonDistributable,
  });
  const layerRows = [];
  for (const layer of usable) {
    const known = await store.knownMediaType(layer.mediaType);
    layerRows.push({ ...layer, mediaType: known ? layer.mediaType : 'application/octet-stream' });
  }
  await store.layers(repo, id, layerRows);
  return id;
}
