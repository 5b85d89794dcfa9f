import { createReadStream, createWriteStream } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { createFileBlobStore, type FileBlobStore, link, mkdir, rename, rm, stat } from '@stowage/blob-store';
import {
  type BlobBody,
  type BlobInfo,
  type Digest,
  DigestMismatchError,
  digestAlgorithm,
  digestStream,
  isDigest,
} from '@stowage/oci';
import { fsyncPath, ifExists, syncDir, tempBeside, touch } from './fs-utils.js';
import type { StorePaths } from './paths.js';

export interface ContentStoreOptions {
  readonly paths: StorePaths;
  readonly readOnly: boolean;
  /** Runs before the first blob is linked into a repository (makes its OCI layout). */
  readonly beforeFirstLink: (repository: string) => Promise<void>;
}

/**
 * The blobs of a store: the content-addressed store under `.stowage/blobs`
 * (a `@stowage/blob-store` file store in the `stowage` layout, writing through
 * `.stowage/tmp`) and the hard links into each repository's `blobs/`.
 */
export interface ContentStore {
  /** The content-addressed store itself: stat, read, list, delete. */
  readonly blobs: FileBlobStore;
  /** Stores a body after verifying it (nothing visible on a mismatch) and links it into `repository`. */
  put(
    repository: string,
    body: BlobBody,
    options: { digest: Digest; size?: number; signal?: AbortSignal },
  ): Promise<BlobInfo>;
  /** Hard-links a stored blob into a repository (a copy where links are impossible), refreshing its age. */
  link(repository: string, digest: Digest): Promise<void>;
  /** Verifies a blob another tool wrote into a repository and shares its inode with the content store. */
  adoptRepositoryBlob(repository: string, digest: Digest): Promise<void>;
  /** The blob files a repository links, by digest. */
  repositoryBlobs(repository: string): Promise<Map<Digest, string>>;
}

export function createContentStore(options: ContentStoreOptions): ContentStore {
  const { paths } = options;
  const blobs = createFileBlobStore({
    root: paths.internal('blobs'),
    layout: 'stowage',
    tmpDir: paths.internal('tmp'),
    readOnly: options.readOnly,
  });

  async function linkInto(repository: string, digest: Digest): Promise<void> {
    const target = paths.repoBlob(repository, digest);
    if (await ifExists(stat(target))) {
      // A fresh push refreshes the time garbage collection's grace period counts from.
      await touch(target);
      return;
    }
    await options.beforeFirstLink(repository);
    await mkdir(dirname(target), { recursive: true });
    const temp = tempBeside(target);
    try {
      await link(blobs.path(digest), temp);
      // The link shares the content store's inode and its old mtime: make it young, or
      // garbage collection could take the blob before the manifest that needs it arrives.
      await touch(temp);
    } catch {
      await rm(temp, { force: true });
      await pipeline(createReadStream(blobs.path(digest)), createWriteStream(temp));
      await fsyncPath(temp);
    }
    await rename(temp, target);
    await syncDir(dirname(target));
  }

  return {
    blobs,
    link: linkInto,

    async put(repository, body, opts) {
      const written = await blobs.write(body, opts);
      await linkInto(repository, opts.digest);
      return { digest: written.digest, size: written.size };
    },

    async adoptRepositoryBlob(repository, digest) {
      const path = paths.repoBlob(repository, digest);
      const info = await stat(path);
      const stored = await ifExists(stat(blobs.path(digest)));
      if (stored?.ino === info.ino) return;
      const actual = await digestStream(
        createReadStream(path, { highWaterMark: 1 << 20 }),
        digestAlgorithm(digest),
      );
      if (actual.digest !== digest) throw new DigestMismatchError(digest, actual.digest);
      if (!stored && (await blobs.adopt(path, { digest, size: info.size })).created) {
        // Without hard links the file was moved into the content store: put a copy back.
        if (!(await ifExists(stat(path)))) await linkInto(repository, digest);
        return;
      }
      // The content store has it already: replace the repository's copy with a link to it.
      const temp = tempBeside(path);
      try {
        await link(blobs.path(digest), temp);
        await rename(temp, path);
      } catch {
        await rm(temp, { force: true });
      }
    },

    async repositoryBlobs(repository) {
      const dir = join(paths.repoDir(repository), 'blobs');
      const found = new Map<Digest, string>();
      for (const algorithm of (await ifExists(readdir(dir))) ?? []) {
        for (const hex of (await ifExists(readdir(join(dir, algorithm)))) ?? []) {
          const digest = `${algorithm}:${hex}`;
          if (isDigest(digest)) found.set(digest, join(dir, algorithm, hex));
        }
      }
      return found;
    },
  };
}
