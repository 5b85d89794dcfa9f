import { dirname } from 'node:path';
import { readFile, stat } from '@stowage/blob-store';
import {
  type Descriptor,
  type Digest,
  filterReferrers,
  type GetManifestOptions,
  type ListOptions,
  type ManifestContent,
  manifestReferences,
  type OperationOptions,
  type PutManifestOptions,
  type PutManifestResult,
  pageOf,
  parseDigest,
  parseManifest,
  parseManifestReference,
  type Referrers,
  type ReferrersOptions,
  type Registry,
  RegistryError,
} from '@stowage/oci';
import { ifExists, syncDir, touch, unlinkIfExists } from './fs-utils.js';
import { descriptorOf, metaOf } from './manifest-meta.js';
import type { StoreParts } from './parts.js';

export type ManifestApi = Pick<
  Registry,
  | 'listTags'
  | 'deleteTag'
  | 'getManifest'
  | 'headManifest'
  | 'putManifest'
  | 'deleteManifest'
  | 'listReferrers'
>;

/**
 * Tags, manifests and referrers. A manifest is held by a repository while its
 * metadata file is there; its bytes are a blob linked into the repository. A
 * tag write or delete runs through the index flusher, so `index.json` follows.
 */
export function manifestApi(parts: StoreParts): ManifestApi {
  const { options: o, paths, caches, metas, tags, content, layouts, flusher, writable, readable } = parts;

  async function resolve(repository: string, reference: string): Promise<Digest | undefined> {
    paths.repository(repository);
    await layouts.sync(repository);
    return tags.resolve(repository, reference);
  }

  async function manifestBytes(repository: string, digest: Digest): Promise<Uint8Array | undefined> {
    const hit = caches.bytes(digest);
    if (hit) return hit;
    const bytes = await ifExists(readFile(paths.repoBlob(repository, digest)));
    if (bytes) caches.keepBytes(digest, bytes);
    return bytes;
  }

  return {
    async listTags(repository: string, opts: ListOptions = {}) {
      readable();
      paths.repository(repository);
      if (!(await layouts.isRepository(repository))) {
        throw new RegistryError('NAME_UNKNOWN', `repository ${repository} is not known`, {
          details: { repository },
        });
      }
      return pageOf(await tags.names(repository), opts);
    },

    async deleteTag(repository: string, tag: string, opts: OperationOptions = {}) {
      writable();
      opts.signal?.throwIfAborted();
      paths.tag(repository, tag);
      await flusher.changing(repository, async () => {
        if (!(await tags.remove(repository, tag))) {
          throw new RegistryError('MANIFEST_UNKNOWN', `tag ${tag} is not in ${repository}`);
        }
      });
    },

    async getManifest(repository: string, reference: string, opts: GetManifestOptions = {}) {
      readable();
      opts.signal?.throwIfAborted();
      const digest = await resolve(repository, reference);
      const meta = digest && (await metas.present(repository, digest));
      const bytes = digest && meta && (await manifestBytes(repository, digest));
      if (!digest || !meta || !bytes) {
        throw new RegistryError('MANIFEST_UNKNOWN', `manifest ${reference} is not in ${repository}`);
      }
      const found: ManifestContent = {
        digest,
        mediaType: meta.mediaType,
        size: bytes.byteLength,
        bytes: new Uint8Array(bytes),
      };
      return found;
    },

    async headManifest(repository: string, reference: string, opts: GetManifestOptions = {}) {
      readable();
      opts.signal?.throwIfAborted();
      const digest = await resolve(repository, reference);
      const meta = digest && (await metas.present(repository, digest));
      return digest && meta ? { digest, mediaType: meta.mediaType, size: meta.size } : undefined;
    },

    async putManifest(repository: string, reference: string, opts: PutManifestOptions) {
      const { bytes } = opts;
      writable();
      opts.signal?.throwIfAborted();
      paths.repository(repository);
      const target = parseManifestReference(reference);
      const parsed = parseManifest(bytes, {
        mediaType: opts.mediaType,
        ...(o.maxManifestSize === undefined ? {} : { maxSize: o.maxManifestSize }),
        ...('digest' in target ? { digest: target.digest } : {}),
      });
      const references = manifestReferences(parsed);
      // config and distributable layers; a non-distributable layer may be absent
      for (const blob of references.blobs) {
        if (!(await ifExists(stat(paths.repoBlob(repository, blob.digest))))) {
          throw new RegistryError('MANIFEST_BLOB_UNKNOWN', `blob ${blob.digest} is not in ${repository}`, {
            details: { repository, digest: blob.digest },
          });
        }
      }
      // A sparse index may lack its child manifests; anything else must have them all.
      let absentChildren = false;
      for (const child of references.manifests) {
        if (await metas.present(repository, child.digest)) continue;
        if (!opts.sparse) {
          throw new RegistryError(
            'MANIFEST_BLOB_UNKNOWN',
            `manifest ${child.digest} is not in ${repository}`,
            {
              details: { repository, digest: child.digest },
            },
          );
        }
        absentChildren = true;
      }
      const meta = metaOf(parsed, absentChildren);
      // Re-tagging a manifest the repository already holds only writes the tag, and
      // refreshes the manifest's age, which untagged-manifest collection counts from
      // (one syscall that also tells whether the repository holds it).
      const known =
        (await touch(paths.manifestMeta(repository, parsed.digest))) &&
        (await metas.cached(repository, parsed.digest));
      if (!known || !(await ifExists(stat(paths.repoBlob(repository, parsed.digest))))) {
        await content.put(repository, bytes, { digest: parsed.digest, size: bytes.byteLength });
        await metas.write(repository, parsed.digest, meta);
      } else if ((known.sparse ?? false) !== absentChildren) {
        // an index whose children all arrived is whole now (or one that lost some is sparse)
        await metas.write(repository, parsed.digest, meta);
      }
      if ('tag' in target) {
        await flusher.changing(repository, () => tags.write(repository, target.tag, parsed.digest));
      }
      const result: PutManifestResult = {
        digest: parsed.digest,
        ...(meta.subject ? { subject: meta.subject } : {}),
      };
      return result;
    },

    async deleteManifest(repository: string, digest: Digest, opts: OperationOptions = {}) {
      writable();
      opts.signal?.throwIfAborted();
      parseDigest(digest);
      if (!(await ifExists(stat(paths.manifestMeta(repository, digest))))) {
        throw new RegistryError('MANIFEST_UNKNOWN', `manifest ${digest} is not in ${repository}`);
      }
      await flusher.changing(repository, async () => {
        // Tags first, so a crash part-way leaves an untagged manifest, never a tag to nothing.
        for (const [tag, target] of await tags.list(repository)) {
          if (target === digest) await tags.remove(repository, tag);
        }
        const metaPath = paths.manifestMeta(repository, digest);
        if (!(await unlinkIfExists(metaPath))) {
          throw new RegistryError('MANIFEST_UNKNOWN', `manifest ${digest} is not in ${repository}`);
        }
        await syncDir(dirname(metaPath));
        await unlinkIfExists(paths.repoBlob(repository, digest));
        caches.manifestDeleted(repository, digest);
      });
    },

    async listReferrers(repository: string, digest: Digest, opts: ReferrersOptions = {}): Promise<Referrers> {
      readable();
      parseDigest(digest);
      paths.repository(repository);
      const descriptors: Descriptor[] = [];
      for (const candidate of await metas.digests(repository)) {
        const meta = await metas.read(repository, candidate);
        if (meta?.subject === digest) descriptors.push(descriptorOf(candidate, meta));
      }
      return filterReferrers(descriptors, opts.artifactType);
    },
  };
}
