import { createReadStream } from 'node:fs';
import { dirname } from 'node:path';
import { stat } from '@stowage/blob-store';
import {
  type BlobBody,
  type BlobContent,
  type BlobInfo,
  type Digest,
  type GetBlobOptions,
  type MountBlobOptions,
  type OperationOptions,
  type PutBlobOptions,
  parseDigest,
  type Registry,
  RegistryError,
  resolveRange,
} from '@stowage/oci';
import { ifExists, syncDir, unlinkIfExists } from './fs-utils.js';
import type { StoreParts } from './parts.js';

export type BlobApi = Pick<Registry, 'headBlob' | 'getBlob' | 'putBlob' | 'mountBlob' | 'deleteBlob'>;

/**
 * Blobs as a repository sees them: the links in its `blobs/`. Writes go
 * through the content store, which verifies them and links them in.
 */
export function blobApi(parts: StoreParts): BlobApi {
  const { paths, content, writable, readable } = parts;
  return {
    async headBlob(repository: string, digest: Digest, opts: OperationOptions = {}) {
      readable();
      opts.signal?.throwIfAborted();
      const info = await ifExists(stat(paths.repoBlob(repository, digest)));
      return info ? { digest, size: info.size } : undefined;
    },

    async getBlob(repository: string, digest: Digest, opts: GetBlobOptions = {}): Promise<BlobContent> {
      readable();
      opts.signal?.throwIfAborted();
      const path = paths.repoBlob(repository, digest);
      const info = await ifExists(stat(path));
      if (!info) {
        throw new RegistryError('BLOB_UNKNOWN', `blob ${digest} is not in ${repository}`, {
          details: { repository, digest },
        });
      }
      const size = info.size;
      const range = resolveRange(opts.range, size);
      if (!range) return { digest, size, stream: createReadStream(path, { highWaterMark: 1 << 20 }) };
      return { digest, size, range, stream: createReadStream(path, { ...range, highWaterMark: 1 << 20 }) };
    },

    async putBlob(repository: string, body: BlobBody, opts: PutBlobOptions): Promise<BlobInfo> {
      writable();
      paths.repository(repository);
      const digest = parseDigest(opts.digest);
      opts.signal?.throwIfAborted();
      return content.put(repository, body, {
        digest,
        ...(opts.size === undefined ? {} : { size: opts.size }),
        ...(opts.signal === undefined ? {} : { signal: opts.signal }),
      });
    },

    async mountBlob(repository: string, digest: Digest, opts: MountBlobOptions = {}) {
      writable();
      paths.repository(repository);
      parseDigest(digest);
      if (opts.from !== undefined) {
        if (!(await ifExists(stat(paths.repoBlob(opts.from, digest))))) return undefined;
      }
      const stored = await content.blobs.stat(digest);
      if (!stored) return undefined;
      await content.link(repository, digest);
      return { digest, size: stored.size };
    },

    async deleteBlob(repository: string, digest: Digest, opts: OperationOptions = {}) {
      writable();
      opts.signal?.throwIfAborted();
      const path = paths.repoBlob(repository, digest);
      if (!(await unlinkIfExists(path))) {
        throw new RegistryError('BLOB_UNKNOWN', `blob ${digest} is not in ${repository}`);
      }
      await syncDir(dirname(path));
    },
  };
}
