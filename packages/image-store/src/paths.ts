import { createHash } from 'node:crypto';
import { resolve, sep } from 'node:path';
import {
  type Digest,
  digestAlgorithm,
  digestHex,
  parseDigest,
  parseRepositoryName,
  parseTag,
  RegistryError,
} from '@stowage/oci';

/**
 * Names a repository path component may not take below the first level: a
 * repository directory is an OCI image layout, so `a/blobs` would land inside
 * repository `a`'s `blobs/`.
 */
const reservedComponents: ReadonlySet<string> = new Set(['blobs', 'index.json', 'oci-layout']);

/** Every path the store builds, each validated and confined to the root. */
export class StorePaths {
  readonly root: string;
  constructor(root: string) {
    this.root = resolve(root);
  }

  #inside(...parts: string[]): string {
    const path = resolve(this.root, ...parts);
    if (path !== this.root && !path.startsWith(this.root + sep)) {
      throw new RegistryError('NAME_INVALID', 'path escapes the store root');
    }
    return path;
  }

  /** Validates a repository name (OCI grammar plus the reserved layout names). */
  repository(name: string): string {
    parseRepositoryName(name);
    const components = name.split('/');
    for (const component of components.slice(1)) {
      if (reservedComponents.has(component)) {
        throw new RegistryError(
          'NAME_INVALID',
          `repository ${name}: "${component}" is reserved for the OCI layout below the first level`,
          {
            details: { repository: name },
          },
        );
      }
    }
    return name;
  }

  internal(...parts: string[]): string {
    return this.#inside('.stowage', ...parts);
  }

  tmp(name: string): string {
    return this.internal('tmp', name);
  }

  /** A session's file: `uploads/<id>-<16 hex of the repository name's sha256>` (see `uploads.ts`). */
  upload(id: string, repository: string): string {
    this.repository(repository);
    if (!/^[a-f0-9]{40}$/.test(id)) throw new RegistryError('BLOB_UPLOAD_UNKNOWN', 'unknown upload session');
    const key = createHash('sha256').update(repository).digest('hex').slice(0, 16);
    return this.internal('uploads', `${id}-${key}`);
  }

  repoDir(repository: string): string {
    return this.#inside(...this.repository(repository).split('/'));
  }

  repoBlob(repository: string, digest: Digest): string {
    const d = parseDigest(digest);
    return this.#inside(...this.repository(repository).split('/'), 'blobs', digestAlgorithm(d), digestHex(d));
  }

  repoMeta(repository: string, ...parts: string[]): string {
    return this.#inside(...this.repository(repository).split('/'), '.stowage', ...parts);
  }

  tag(repository: string, tag: string): string {
    return this.repoMeta(repository, 'tags', parseTag(tag));
  }

  manifestMeta(repository: string, digest: Digest): string {
    const d = parseDigest(digest);
    return this.repoMeta(repository, 'manifests', digestAlgorithm(d), `${digestHex(d)}.json`);
  }
}
