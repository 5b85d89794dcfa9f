import type { Stats } from 'node:fs';
import { readdir, readFile, stat } from 'node:fs/promises';
import { dirname, join, resolve, sep } from 'node:path';
import { createFileBlobStore, type FileBlobStore } from '@stowage/blob-store';
import { type BlobContent, type Digest, isStowageError, isValidRepositoryName } from '@stowage/oci';
import { ImportError } from './errors.js';

/** What reading a link file found. */
export type LinkResult =
  | { readonly ok: true; readonly digest: Digest }
  | { readonly ok: false; readonly problem: 'missing' | 'invalid' | 'unsupported'; readonly text?: string };

const DIGEST_GRAMMAR = /^([a-z0-9]+(?:[.+_-][a-z0-9]+)*):([a-zA-Z0-9=_-]+)$/;
const HEX_LENGTH: Readonly<Record<string, number>> = { sha256: 64, sha512: 128 };

/** Strict link parsing: exactly `<alg>:<hex>`, sha256 or sha512, nothing around it. */
export function parseLink(text: string): LinkResult {
  const match = DIGEST_GRAMMAR.exec(text);
  if (!match) return { ok: false, problem: 'invalid', text: text.slice(0, 100) };
  const [, algorithm, hex] = match as unknown as [string, string, string];
  const length = HEX_LENGTH[algorithm];
  if (length === undefined) return { ok: false, problem: 'unsupported', text: text.slice(0, 100) };
  if (hex.length !== length || !/^[a-f0-9]+$/.test(hex))
    return { ok: false, problem: 'invalid', text: text.slice(0, 100) };
  return { ok: true, digest: text as Digest };
}

function code(error: unknown): string | undefined {
  return (error as NodeJS.ErrnoException)?.code;
}

async function maybe<T>(work: Promise<T>): Promise<T | undefined> {
  try {
    return await work;
  } catch (error) {
    if (code(error) === 'ENOENT' || code(error) === 'ENOTDIR') return undefined;
    throw error;
  }
}

function split(digest: Digest): [string, string] {
  const colon = digest.indexOf(':');
  return [digest.slice(0, colon), digest.slice(colon + 1)];
}

/**
 * A distribution v2 filesystem tree (what docker-registry and GitLab's registry
 * write under `<rootdirectory>/docker/registry/v2`), read the way the registry
 * reads it.
 */
export class DistributionTree {
  /** `<root>/docker/registry/v2`. */
  readonly v2: string;
  /** `<root>/docker/registry`: where GitLab's lockfiles live. */
  readonly registryDir: string;
  readonly #blobs: FileBlobStore;

  /** `root` is the storage root directory (or its `docker/registry/v2` itself). */
  constructor(root: string) {
    const absolute = resolve(root);
    this.v2 = absolute.endsWith(join('docker', 'registry', 'v2'))
      ? absolute
      : join(absolute, 'docker', 'registry', 'v2');
    this.registryDir = resolve(this.v2, '..');
    // distribution's own blob layout under the storage root, read in place and never written
    this.#blobs = createFileBlobStore({
      root: resolve(this.v2, '..', '..', '..'),
      layout: 'distribution',
      readOnly: true,
    });
  }

  #repo(repository: string, ...parts: string[]): string {
    return join(this.v2, 'repositories', ...repository.split('/'), ...parts);
  }

  async #link(path: string): Promise<LinkResult> {
    const text = await maybe(readFile(path, 'utf8'));
    return text === undefined ? { ok: false, problem: 'missing' } : parseLink(text);
  }

  /**
   * Every repository, in sorted order: a directory holding `_manifests` or
   * `_layers` (2.8 lists only those with `_layers`, newer releases those with
   * `_manifests`); `_`-directories are not entered, nested repositories are found.
   */
  async *repositories(): AsyncGenerator<string> {
    const walk = async function* (dir: string, prefix: string): AsyncGenerator<string> {
      const entries = (await maybe(readdir(dir, { withFileTypes: true }))) ?? [];
      const names = entries.filter((e) => e.isDirectory()).map((e) => e.name);
      if (prefix && (names.includes('_manifests') || names.includes('_layers'))) yield prefix.slice(0, -1);
      for (const name of names.sort()) {
        if (name.startsWith('_')) continue;
        yield* walk(join(dir, name), `${prefix}${name}/`);
      }
    };
    for await (const name of walk(join(this.v2, 'repositories'), '')) {
      if (isValidRepositoryName(name)) yield name;
    }
  }

  /** Whether `repository` is one `repositories()` lists: a valid name whose directory holds `_manifests` or `_layers`. */
  async hasRepository(repository: string): Promise<boolean> {
    if (!isValidRepositoryName(repository)) return false;
    for (const marker of ['_manifests', '_layers']) {
      if ((await maybe(stat(this.#repo(repository, marker))))?.isDirectory()) return true;
    }
    return false;
  }

  /** Tag names (sorted); none when the repository has no `_manifests/tags`. */
  async tags(repository: string): Promise<string[]> {
    const entries =
      (await maybe(readdir(this.#repo(repository, '_manifests', 'tags'), { withFileTypes: true }))) ?? [];
    return entries
      .filter((e) => e.isDirectory())
      .map((e) => e.name)
      .sort();
  }

  tagLink(repository: string, tag: string): Promise<LinkResult> {
    return this.#link(this.#repo(repository, '_manifests', 'tags', tag, 'current', 'link'));
  }

  /** The revision link of a manifest in a repository, which must name that same digest. */
  async revision(repository: string, digest: Digest): Promise<LinkResult> {
    const [algorithm, hex] = split(digest);
    const result = await this.#link(
      this.#repo(repository, '_manifests', 'revisions', algorithm, hex, 'link'),
    );
    if (result.ok && result.digest !== digest) return { ok: false, problem: 'invalid', text: result.digest };
    return result;
  }

  /** The `_layers` link of a blob in a repository. */
  async layerLink(repository: string, digest: Digest): Promise<LinkResult> {
    const [algorithm, hex] = split(digest);
    const result = await this.#link(this.#repo(repository, '_layers', algorithm, hex, 'link'));
    if (result.ok && result.digest !== digest) return { ok: false, problem: 'invalid', text: result.digest };
    return result;
  }

  /** A blob's bytes (manifests and configs); `undefined` when the data file is missing. */
  async blob(digest: Digest): Promise<Buffer | undefined> {
    let content: BlobContent;
    try {
      content = await this.#blobs.read(digest);
    } catch (error) {
      if (isStowageError(error, 'BLOB_UNKNOWN')) return undefined;
      throw error;
    }
    // a file's read stream yields Buffers
    const chunks: Buffer[] = [];
    for await (const chunk of content.stream) chunks.push(chunk as Buffer);
    return Buffer.concat(chunks);
  }

  async blobSize(digest: Digest): Promise<number | undefined> {
    return (await this.#blobs.stat(digest))?.size;
  }

  /** Every blob in the blob store, with its size, in the order the directories list them. */
  async *blobs(): AsyncGenerator<{ digest: Digest; size: number }> {
    for await (const blob of this.#blobs.list()) yield { digest: blob.digest, size: blob.size };
  }
}

const GIVE_ROOT =
  "give the registry's storage root (storage.filesystem.rootdirectory, the directory holding docker/registry/v2)";

/** What `path` is: its stats, or `undefined` when it does not exist (or a parent is a file). */
async function statOf(path: string): Promise<Stats | undefined> {
  return maybe(stat(path));
}

/**
 * A `DistributionTree` on `root`, once `root` is known to be one: the
 * registry's storage root (or its `docker/registry/v2`) holding
 * `docker/registry/v2/repositories` or `docker/registry/v2/blobs`. Anything
 * else throws `NOT_A_DISTRIBUTION_TREE`, naming what was found and what to
 * give instead. It only reads.
 */
export async function openDistributionTree(root: string): Promise<DistributionTree> {
  const tree = new DistributionTree(root);
  const absolute = resolve(root);
  const refuse = (reason: string, message: string): never => {
    throw new ImportError('NOT_A_DISTRIBUTION_TREE', message, { details: { root: absolute, reason } });
  };
  const top = await statOf(absolute);
  if (!top) return refuse('missing', `${absolute} does not exist: ${GIVE_ROOT}`);
  if (!top.isDirectory())
    return refuse('not-a-directory', `${absolute} is a file, not a directory: ${GIVE_ROOT}`);
  const v2 = await statOf(tree.v2);
  if (!v2?.isDirectory()) {
    if ((await statOf(join(absolute, 'oci-layout')))?.isFile()) {
      return refuse(
        'oci-layout',
        `${absolute} is an OCI image layout, not a registry's storage tree (copy its images into a registry first, with skopeo copy): ${GIVE_ROOT}`,
      );
    }
    // <root>/docker or <root>/docker/registry: point at the root above it
    for (const [suffix, v2Below, parent] of [
      ['docker', join(absolute, 'registry', 'v2'), dirname(absolute)],
      [join('docker', 'registry'), join(absolute, 'v2'), dirname(dirname(absolute))],
    ] as const) {
      if (absolute.endsWith(`${sep}${suffix}`) && (await statOf(v2Below))?.isDirectory()) {
        return refuse(
          'inside-the-tree',
          `${absolute} is inside a registry's storage tree, not its root: give ${parent} (the directory holding docker/registry/v2)`,
        );
      }
    }
    return refuse(
      v2 ? 'not-a-directory' : 'no-v2',
      `${absolute} holds no docker/registry/v2 directory, so it is not a registry's storage tree: ${GIVE_ROOT}`,
    );
  }
  const repositories = await statOf(join(tree.v2, 'repositories'));
  const blobs = await statOf(join(tree.v2, 'blobs'));
  if (!repositories?.isDirectory() && !blobs?.isDirectory()) {
    return refuse(
      'empty-v2',
      `${tree.v2} holds neither repositories/ nor blobs/, so it is not a registry's storage tree: ${GIVE_ROOT}`,
    );
  }
  return tree;
}
