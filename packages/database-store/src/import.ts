// Moving a store into database mode: the tags, manifests and blob links of
// any `Registry` recorded in a database registry whose blob store already
// holds the bytes (an image-store root's content store, served in place), so
// no byte is copied. A blob the target's store lacks is copied through the
// source, verified as it streams. Children go before their index, blobs
// before their manifest, the tag last; a rerun converges.
import {
  type Digest,
  manifestReferences,
  type OperationOptions,
  parseManifest,
  type Registry,
} from '@stowage/oci';
import type { DatabaseRegistry } from './registry.js';

export interface ImportRegistryOptions extends OperationOptions {
  /** What to import from: every repository it lists, every tag of each. */
  readonly source: Registry;
  readonly target: DatabaseRegistry;
  /** Only these repositories. */
  readonly repositories?: readonly string[];
  /** Told after each tag. */
  readonly onProgress?: (progress: ImportRegistryProgress) => void;
}

export interface ImportRegistryProgress {
  readonly repository: string;
  readonly repositoriesDone: number;
  readonly tagsDone: number;
}

export interface ImportRegistryResult {
  readonly repositories: number;
  readonly tags: number;
  readonly manifests: number;
  readonly blobs: number;
  /** Blobs whose bytes the target's store lacked, copied through the source. */
  readonly blobsCopied: number;
}

interface Recorded {
  readonly bytes: Uint8Array;
  readonly mediaType: string;
  /** An index some of whose children the source does not hold. */
  readonly sparse: boolean;
}

/** Every name of a paged listing. */
async function listAll(list: (last?: string) => Promise<{ items: readonly string[]; next?: string }>) {
  const names: string[] = [];
  let last: string | undefined;
  for (;;) {
    const page = await list(last);
    names.push(...page.items);
    if (page.next === undefined || page.items.length === 0) return names;
    last = page.next;
  }
}

export async function importRegistry(options: ImportRegistryOptions): Promise<ImportRegistryResult> {
  const { source, target, signal } = options;
  const repositories =
    options.repositories ??
    (await listAll((last) =>
      source.listRepositories({ n: 1000, ...(last ? { last } : {}), ...(signal ? { signal } : {}) }),
    ));
  let tags = 0;
  let manifests = 0;
  let blobs = 0;
  let blobsCopied = 0;
  let repositoriesDone = 0;
  for (const repository of repositories) {
    const recordedBlobs = new Set<Digest>();
    const recordedManifests = new Map<Digest, Recorded>();
    const put = (reference: string, recorded: Recorded) =>
      target.putManifest(repository, reference, {
        bytes: recorded.bytes,
        mediaType: recorded.mediaType,
        ...(recorded.sparse ? { sparse: true } : {}),
        ...(signal ? { signal } : {}),
      });
    const blob = async (digest: Digest) => {
      if (recordedBlobs.has(digest)) return;
      recordedBlobs.add(digest);
      blobs++;
      if (await target.adoptBlob(repository, digest, { ...(signal ? { signal } : {}) })) return;
      // the target's store lacks the bytes: through the source, verified as they stream
      const content = await source.getBlob(repository, digest, { ...(signal ? { signal } : {}) });
      await target.putBlob(repository, content.stream, {
        digest,
        size: content.size,
        ...(signal ? { signal } : {}),
      });
      blobsCopied++;
    };
    /** Records a manifest (children and blobs first) by digest; answers its bytes and media type. */
    const manifest = async (reference: string): Promise<Recorded> => {
      const content = await source.getManifest(repository, reference, { ...(signal ? { signal } : {}) });
      const known = recordedManifests.get(content.digest);
      if (known) return known;
      const references = manifestReferences(parseManifest(content.bytes, { mediaType: content.mediaType }));
      let sparse = false;
      for (const child of references.manifests) {
        // a sparse index's absent child stays absent
        if (await source.headManifest(repository, child.digest, { ...(signal ? { signal } : {}) })) {
          await manifest(child.digest);
        } else sparse = true;
      }
      for (const descriptor of references.blobs) await blob(descriptor.digest);
      for (const descriptor of references.nonDistributable) {
        if (await source.headBlob(repository, descriptor.digest, { ...(signal ? { signal } : {}) })) {
          await blob(descriptor.digest);
        }
      }
      const recorded: Recorded = { bytes: content.bytes, mediaType: content.mediaType, sparse };
      await put(content.digest, recorded);
      recordedManifests.set(content.digest, recorded);
      manifests++;
      return recorded;
    };
    const names = await listAll((last) =>
      source.listTags(repository, { n: 1000, ...(last ? { last } : {}), ...(signal ? { signal } : {}) }),
    );
    for (const tag of names) {
      await put(tag, await manifest(tag));
      tags++;
      options.onProgress?.({ repository, repositoriesDone, tagsDone: tags });
    }
    repositoriesDone++;
  }
  return { repositories: repositoriesDone, tags, manifests, blobs, blobsCopied };
}
