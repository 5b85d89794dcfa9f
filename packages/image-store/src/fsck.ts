import { readdir, readFile } from 'node:fs/promises';
import {
  type Descriptor,
  digestAlgorithm,
  digestStream,
  manifestReferences,
  type OperationOptions,
  parseManifest,
} from '@stowage/oci';
import type { ContentStore } from './content-store.js';
import { ifExists } from './fs-utils.js';
import type { Layouts } from './layout.js';
import type { ManifestMeta, ManifestMetas } from './manifest-meta.js';
import type { StorePaths } from './paths.js';
import type { TagFiles } from './tags.js';

/** One thing `fsck` found wrong. */
export interface FsckProblem {
  readonly kind: 'corrupt-blob' | 'missing-blob' | 'missing-manifest' | 'invalid-manifest' | 'dangling-tag';
  readonly path: string;
  readonly repository?: string;
  readonly digest?: string;
  readonly detail?: string;
}

export interface FsckReport {
  readonly blobsChecked: number;
  readonly manifestsChecked: number;
  readonly problems: readonly FsckProblem[];
  /** Unfinished writes left by a crash: never visible as content; garbage collection removes them. */
  readonly leftovers: readonly string[];
}

export interface FsckOptions {
  readonly paths: StorePaths;
  readonly content: ContentStore;
  readonly layouts: Layouts;
  readonly metas: ManifestMetas;
  readonly tags: TagFiles;
}

/**
 * Re-hashes every blob of the content store, checks that every manifest of
 * every repository parses and has what it references linked, and that every
 * tag points at a manifest; reports, never repairs. The child manifests an
 * index stored with `sparse: true` lacked are not problems: they were never
 * asked for.
 */
export async function fsck(o: FsckOptions, opts: OperationOptions = {}): Promise<FsckReport> {
  const { paths, content, layouts, metas, tags } = o;
  const problems: FsckProblem[] = [];
  let blobsChecked = 0;
  let manifestsChecked = 0;
  for await (const blob of content.blobs.list()) {
    opts.signal?.throwIfAborted();
    blobsChecked++;
    const stored = await content.blobs.read(blob.digest);
    const actual = await digestStream(stored.stream, digestAlgorithm(blob.digest));
    if (actual.digest !== blob.digest) {
      problems.push({
        kind: 'corrupt-blob',
        path: content.blobs.path(blob.digest),
        digest: blob.digest,
        detail: `content hashes to ${actual.digest}`,
      });
    }
  }
  const leftovers = ((await ifExists(readdir(paths.internal('tmp')))) ?? []).map((name) => paths.tmp(name));
  for (const repository of await layouts.repositories()) {
    await layouts.sync(repository);
    const linked = await content.repositoryBlobs(repository);
    for (const digest of await metas.digests(repository)) {
      manifestsChecked++;
      const path = paths.repoBlob(repository, digest);
      const bytes = await ifExists(readFile(path));
      if (!bytes) {
        problems.push({ kind: 'missing-manifest', path, repository, digest });
        continue;
      }
      let meta: ManifestMeta | undefined;
      let references: ReturnType<typeof manifestReferences>;
      try {
        meta = await metas.read(repository, digest);
        references = manifestReferences(
          parseManifest(bytes, {
            ...(meta ? { mediaType: meta.mediaType } : {}),
            digest,
            maxSize: Number.MAX_SAFE_INTEGER,
          }),
        );
      } catch (error) {
        problems.push({
          kind: 'invalid-manifest',
          path,
          repository,
          digest,
          detail: (error as Error).message,
        });
        continue;
      }
      // non-distributable layers may be absent (the store accepted the manifest without them)
      const needed: readonly Descriptor[] = meta?.sparse
        ? references.blobs
        : [...references.blobs, ...references.manifests];
      for (const blob of needed) {
        if (!linked.has(blob.digest)) {
          problems.push({
            kind: 'missing-blob',
            path: paths.repoBlob(repository, blob.digest),
            repository,
            digest: blob.digest,
          });
        }
      }
    }
    for (const [tag, digest] of await tags.list(repository)) {
      if (!(await metas.read(repository, digest))) {
        problems.push({
          kind: 'dangling-tag',
          path: paths.tag(repository, tag),
          repository,
          digest,
          detail: `tag ${tag}`,
        });
      }
    }
  }
  return { blobsChecked, manifestsChecked, problems, leftovers };
}
