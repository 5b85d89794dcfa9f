// Writes distribution v2 trees directly, in exactly docker-registry's layout,
// for cases a real registry will not produce (corruption) and for large trees.
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

/** Writes a distribution v2 tree (docker-registry's on-disk layout) file by file. */
export class DistributionTreeWriter {
  readonly root: string;
  readonly v2: string;
  constructor(root: string) {
    this.root = root;
    this.v2 = join(root, 'docker/registry/v2');
  }

  async #file(path: string, content: string | Uint8Array): Promise<void> {
    await mkdir(join(path, '..'), { recursive: true });
    await writeFile(path, content);
  }

  /** Stores a blob in the blob store; returns its digest. */
  async blob(content: string | Uint8Array): Promise<string> {
    const hex = createHash('sha256').update(content).digest('hex');
    await this.#file(join(this.v2, 'blobs/sha256', hex.slice(0, 2), hex, 'data'), content);
    return `sha256:${hex}`;
  }

  /** Writes a blob's data file with other content than its digest says (an empty manifest, say). */
  async blobData(digest: string, content: string | Uint8Array): Promise<void> {
    const hex = digest.slice(7);
    await this.#file(join(this.v2, 'blobs/sha256', hex.slice(0, 2), hex, 'data'), content);
  }

  #repo(repository: string, ...parts: string[]): string {
    return join(this.v2, 'repositories', ...repository.split('/'), ...parts);
  }

  async layerLink(repository: string, digest: string, content = digest): Promise<void> {
    const [alg, hex] = digest.split(':') as [string, string];
    await this.#file(this.#repo(repository, '_layers', alg, hex, 'link'), content);
  }

  async revision(repository: string, digest: string, content = digest): Promise<void> {
    const [alg, hex] = digest.split(':') as [string, string];
    await this.#file(this.#repo(repository, '_manifests/revisions', alg, hex, 'link'), content);
  }

  /** A tag: `current/link` holds `content` (a digest, or garbage), plus the index entry. */
  async tag(repository: string, tag: string, content: string): Promise<void> {
    await this.#file(this.#repo(repository, '_manifests/tags', tag, 'current/link'), content);
    if (/^sha256:[a-f0-9]{64}$/.test(content)) {
      await this.#file(
        this.#repo(repository, '_manifests/tags', tag, 'index/sha256', content.slice(7), 'link'),
        content,
      );
    }
  }

  /** A tag directory without `current/link`. */
  async tagWithoutLink(repository: string, tag: string): Promise<void> {
    await mkdir(this.#repo(repository, '_manifests/tags', tag, 'index'), { recursive: true });
  }

  /**
   * A complete image as docker-registry stores it after a push: config and
   * layers in the blob store with `_layers` links, the manifest as a blob with
   * a revision link. Returns the digests.
   */
  async image(
    repository: string,
    options: {
      layers?: (string | { digest: string; size: number; mediaType?: string })[];
      configMediaType?: string;
      config?: string;
      linkConfig?: boolean;
    } = {},
  ) {
    const config =
      options.config ??
      JSON.stringify({ architecture: 'amd64', os: 'linux', n: randomBytes(4).toString('hex') });
    const configDigest = await this.blob(config);
    if (options.linkConfig !== false) await this.layerLink(repository, configDigest);
    const layers = [];
    for (const layer of options.layers ?? [randomBytes(64).toString('hex')]) {
      if (typeof layer === 'string') {
        const digest = await this.blob(layer);
        await this.layerLink(repository, digest);
        layers.push({
          mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip',
          digest,
          size: Buffer.byteLength(layer),
        });
      } else {
        layers.push({
          mediaType: layer.mediaType ?? 'application/vnd.oci.image.layer.v1.tar+gzip',
          digest: layer.digest,
          size: layer.size,
        });
      }
    }
    const manifest = JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: {
        mediaType: options.configMediaType ?? 'application/vnd.oci.image.config.v1+json',
        digest: configDigest,
        size: Buffer.byteLength(config),
      },
      layers,
    });
    const digest = await this.blob(manifest);
    await this.revision(repository, digest);
    return { digest, configDigest, layers: layers.map((l) => l.digest), size: Buffer.byteLength(manifest) };
  }

  /** An OCI index over manifests already in the repository (children may be missing on purpose). */
  async index(repository: string, children: { digest: string; size: number }[], mediaTypes?: string[]) {
    const manifest = JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.index.v1+json',
      manifests: children.map((c, i) => ({
        mediaType: mediaTypes?.[i] ?? 'application/vnd.oci.image.manifest.v1+json',
        digest: c.digest,
        size: c.size,
        platform: { os: 'linux', architecture: `arch${i}` },
      })),
    });
    const digest = await this.blob(manifest);
    await this.revision(repository, digest);
    return { digest, size: Buffer.byteLength(manifest) };
  }

  /** A raw manifest payload stored and linked as a revision. */
  async rawManifest(repository: string, payload: string): Promise<string> {
    const digest = await this.blob(payload);
    await this.revision(repository, digest);
    return digest;
  }
}

export interface PopulateOptions {
  readonly repositories: number;
  readonly tagsPerRepository: number;
  /** Images per repository the tags point at (round robin). Default 4. */
  readonly imagesPerRepository?: number;
  /** Layers every image shares (across all repositories). Default 2. */
  readonly sharedLayers?: number;
}

/**
 * Fills a tree the way many pushes would: `repositories` repositories named
 * `team<k>/app<i>`, each with a few images (shared base layers plus one of
 * their own) and `tagsPerRepository` tags. Returns the repository names.
 */
export async function populateTree(
  writer: DistributionTreeWriter,
  options: PopulateOptions,
): Promise<string[]> {
  const shared: string[] = [];
  for (let i = 0; i < (options.sharedLayers ?? 2); i++) shared.push(`shared base layer ${i}`);
  const sharedDigests = await Promise.all(shared.map((s) => writer.blob(s)));
  const names: string[] = [];
  for (let r = 0; r < options.repositories; r++) {
    const repository = `team${r % 10}/app${r}`;
    names.push(repository);
    for (const digest of sharedDigests) await writer.layerLink(repository, digest);
    const images = [];
    for (let i = 0; i < (options.imagesPerRepository ?? 4); i++) {
      images.push(
        await writer.image(repository, {
          layers: [
            ...sharedDigests.map((digest, k) => ({ digest, size: Buffer.byteLength(shared[k] as string) })),
            `own layer of ${repository} image ${i}`,
          ],
        }),
      );
    }
    for (let t = 0; t < options.tagsPerRepository; t++) {
      await writer.tag(repository, `v${t}`, (images[t % images.length] as { digest: string }).digest);
    }
  }
  return names;
}
