/**
 * An upstream for sync tests and the sync bench: a real docker-registry filled
 * by skopeo (not by our client, so a bug in our push cannot hide a bug in our
 * pull). Images are built with `randomImage` into a temporary image store (one
 * OCI layout per repository), then each tag is copied with
 * `skopeo copy --all --preserve-digests oci:… docker://…`, several at a time.
 *
 * `populateUpstream` returns what is there: per repository and tag the manifest
 * digest and media type, whether it is an index, its platforms, and every blob
 * (config and layers, per child for an index), so a test can check a mirror
 * against it without asking the upstream.
 */
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, open, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { createImageStore } from '@stowage/image-store';
import { type Digest, digestOf, formatPlatform, MediaType } from '@stowage/oci';
import {
  type DockerRegistry,
  pushImage,
  type RandomBlob,
  type RandomImage,
  randomBlob,
  randomImage,
} from '@stowage/testing';

const execFileAsync = promisify(execFile);

/** One image (or index) of the upstream, under one or more tags of one repository. */
export interface UpstreamImageSpec {
  readonly repository: string;
  /** Every tag that points at this image (aliases share the manifest). */
  readonly tags: readonly string[];
  /** One platform (or none): a single image; two or more: an index of one image per platform. */
  readonly platforms?: readonly string[];
  /** Layers of each image besides the shared ones. Default 1. */
  readonly layers?: number;
  /** Bytes per own layer. Default `options.layerSize` (1 KiB). */
  readonly layerSize?: number;
  /** Layers put first, the same bytes in every spec naming the same group. */
  readonly shared?: { readonly group: string; readonly layers: number; readonly layerSize?: number };
  /** `docker`: Docker schema 2 manifests (and a manifest list for an index). Default `oci`. */
  readonly format?: 'oci' | 'docker';
}

export interface PopulateUpstreamOptions {
  /** Same seed, same bytes and digests. Default 1. */
  readonly seed?: number;
  /** Bytes per layer where a spec does not say. Default 1 KiB. */
  readonly layerSize?: number;
  /** What to push; default `defaultUpstreamSpecs()`. */
  readonly specs?: readonly UpstreamImageSpec[];
  /** skopeo copies at once. Default 6. */
  readonly concurrency?: number;
}

/** One platform image: its manifest and its blobs. */
export interface UpstreamImage {
  readonly digest: Digest;
  readonly mediaType: string;
  readonly size: number;
  /** `linux/amd64` */
  readonly platform: string;
  readonly config: Digest;
  readonly layers: readonly Digest[];
  /** Config then layers. */
  readonly blobs: readonly Digest[];
}

/** What one tag points at. */
export interface UpstreamTag {
  readonly repository: string;
  readonly tag: string;
  readonly digest: Digest;
  readonly mediaType: string;
  readonly size: number;
  readonly isIndex: boolean;
  /** `linux/amd64`, …: one for a single image. */
  readonly platforms: readonly string[];
  /** The image itself (one) or an index's children, in index order. */
  readonly images: readonly UpstreamImage[];
  /** Every distinct blob digest (configs and layers of every child). */
  readonly blobs: readonly Digest[];
  /** Bytes of every distinct blob plus the manifests. */
  readonly bytes: number;
}

export interface UpstreamPopulation {
  /** Repository → tag → what it points at. */
  readonly repositories: Readonly<Record<string, Readonly<Record<string, UpstreamTag>>>>;
  /** Every tag, in spec order. */
  readonly tags: readonly UpstreamTag[];
  /** Blob sizes by digest (each blob once, whichever repositories hold it). */
  readonly blobSizes: ReadonlyMap<Digest, number>;
  /** Bytes of all distinct blobs. */
  readonly totalBlobBytes: number;
  /** The description of one tag; throws when the fixture has no such tag. */
  tag(repository: string, tag: string): UpstreamTag;
}

/** The many-tags repository of the default population and its tags, split by kind. */
export const MANY_TAGS_REPOSITORY = 'many/tags';
/** Semver tags (with or without a `v`, short forms and pre-releases). */
export const SEMVER_TAGS: readonly string[] = [
  'v0.1.0',
  'v1.0.0',
  'v1.1.0',
  'v1.2.0',
  'v1.2.3',
  'v1.2.4',
  'v2.0.0',
  'v2.1.0-beta.1',
  '0.9.0',
  '1.2',
  '1.2.3',
  '1.2.3-rc.1',
  '2.0',
  '3.0.0-alpha',
  '10.20.30',
];
/** Tags that are not semver. */
export const NON_SEMVER_TAGS: readonly string[] = [
  'latest',
  'dev-abc',
  'nightly-2026',
  'main',
  'stable',
  'edge',
  'sha-1a2b3c4',
  'feature_x',
  '2026-01-15',
  'canary',
  'build-42',
  'pr-17',
  'old',
  'test',
  'release',
];
/** Aliases in the many-tags repository: tag → the tag whose manifest it shares. */
export const MANY_TAGS_ALIASES: Readonly<Record<string, string>> = {
  latest: 'v2.0.0',
  stable: 'v1.2.3',
  '1.2.3': 'v1.2.3',
};

/**
 * The default population: single images (OCI and Docker), two two-platform
 * indexes (an OCI index and a Docker manifest list, linux/amd64 + linux/arm64,
 * children sharing a layer), images sharing layers across repositories, one
 * repository with 30 tags (semver and not, some aliases), and nested names.
 */
export function defaultUpstreamSpecs(): UpstreamImageSpec[] {
  const aliased = new Set(Object.keys(MANY_TAGS_ALIASES));
  const manyTags: UpstreamImageSpec[] = [...SEMVER_TAGS, ...NON_SEMVER_TAGS]
    .filter((tag) => !aliased.has(tag))
    .map((tag) => ({
      repository: MANY_TAGS_REPOSITORY,
      tags: [tag, ...Object.keys(MANY_TAGS_ALIASES).filter((alias) => MANY_TAGS_ALIASES[alias] === tag)],
      shared: { group: 'many', layers: 1 },
    }));
  return [
    { repository: 'single/oci', tags: ['v1'], layers: 2 },
    { repository: 'single/docker', tags: ['v1', 'latest'], layers: 2, format: 'docker' },
    {
      repository: 'multi/oci',
      tags: ['v1', 'latest'],
      platforms: ['linux/amd64', 'linux/arm64'],
      shared: { group: 'multi-oci', layers: 1 },
    },
    {
      repository: 'multi/docker',
      tags: ['v1'],
      platforms: ['linux/amd64', 'linux/arm64'],
      format: 'docker',
      shared: { group: 'multi-docker', layers: 1 },
    },
    { repository: 'shared/base', tags: ['v1'], layers: 0, shared: { group: 'base', layers: 2 } },
    { repository: 'shared/derived', tags: ['v1'], layers: 1, shared: { group: 'base', layers: 2 } },
    ...manyTags,
    { repository: 'team/app/api', tags: ['v1.0.0', 'latest'], shared: { group: 'team', layers: 1 } },
    { repository: 'team/app/web', tags: ['v1.0.0'], shared: { group: 'team', layers: 1 } },
    { repository: 'other/tool', tags: ['1.0'] },
  ];
}

interface Built {
  readonly spec: UpstreamImageSpec;
  readonly images: readonly RandomImage[];
  /** Set for an index. */
  readonly index?: { readonly digest: Digest; readonly mediaType: string; readonly bytes: Uint8Array };
}

const encoder = new TextEncoder();

function build(
  spec: UpstreamImageSpec,
  seed: number,
  defaultSize: number,
  shared: Map<string, RandomBlob[]>,
): Built {
  const format = spec.format ?? 'oci';
  const layerType = format === 'oci' ? MediaType.OciLayer : MediaType.DockerLayer;
  let sharedLayers: RandomBlob[] = [];
  if (spec.shared) {
    const key = `${spec.shared.group}/${format}`;
    let layers = shared.get(key);
    if (!layers) {
      const groupSeed = Number.parseInt(digestOf(`${seed}/${key}`).slice(7, 15), 16);
      layers = Array.from({ length: spec.shared.layers }, (_, i) =>
        randomBlob(spec.shared?.layerSize ?? defaultSize, {
          seed: (groupSeed + 7 * (i + 1)) >>> 0,
          mediaType: layerType,
        }),
      );
      shared.set(key, layers);
    }
    sharedLayers = layers.slice(0, spec.shared.layers);
  }
  const platforms = spec.platforms && spec.platforms.length > 0 ? spec.platforms : ['linux/amd64'];
  const images = platforms.map((platform, i) =>
    randomImage({
      seed: (seed + 104_729 * (i + 1)) >>> 0,
      format,
      platform,
      sharedLayers,
      layers: spec.layers ?? 1,
      layerSize: spec.layerSize ?? defaultSize,
    }),
  );
  if (platforms.length < 2) return { spec, images };
  const mediaType = format === 'oci' ? MediaType.OciIndex : MediaType.DockerManifestList;
  const bytes = encoder.encode(
    JSON.stringify({ schemaVersion: 2, mediaType, manifests: images.map((image) => image.descriptor) }),
  );
  return { spec, images, index: { digest: digestOf(bytes), mediaType, bytes } };
}

function describeImage(image: RandomImage): UpstreamImage {
  return {
    digest: image.manifest.digest,
    mediaType: image.manifest.mediaType,
    size: image.manifest.size,
    platform: formatPlatform(image.platform),
    config: image.config.descriptor.digest,
    layers: image.layers.map((l) => l.descriptor.digest),
    blobs: image.blobs.map((b) => b.descriptor.digest),
  };
}

async function inParallel<T>(
  items: readonly T[],
  limit: number,
  fn: (item: T) => Promise<void>,
): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, items.length) }, async () => {
      while (next < items.length) {
        const item = items[next++] as T;
        await fn(item);
      }
    }),
  );
}

function specSeed(seed: number, position: number, spec: UpstreamImageSpec): number {
  // stable per spec content and position, so adding a spec at the end changes no other image
  return Number.parseInt(
    digestOf(`${seed}/${position}/${spec.repository}/${spec.tags.join(',')}`).slice(7, 15),
    16,
  );
}

/**
 * Writes what skopeo copies from, and returns per spec the skopeo source of a tag.
 * OCI specs go into an image store (one OCI layout per repository, every tag in
 * it). skopeo 1.9's `oci:` transport skips Docker media types in `index.json`,
 * so a Docker-format spec is written as a `dir:` image instead (blobs named by
 * their hex digest, `manifest.json`, a `<hex>.manifest.json` per child).
 */
async function writeSources(root: string, built: readonly Built[]): Promise<((tag: string) => string)[]> {
  const layouts = join(root, 'layouts');
  const store = await createImageStore({ root: layouts });
  const sources: ((tag: string) => string)[] = [];
  try {
    for (const [position, { spec, images, index }] of built.entries()) {
      const top = index ?? (images[0] as RandomImage).manifest;
      if ((spec.format ?? 'oci') === 'docker') {
        const dir = join(root, 'dir', String(position));
        await mkdir(dir, { recursive: true });
        await writeFile(join(dir, 'version'), 'Directory Transport Version: 1.1\n');
        for (const image of images) {
          for (const blob of image.blobs)
            await writeFile(join(dir, blob.descriptor.digest.slice(7)), blob.bytes);
          if (index)
            await writeFile(
              join(dir, `${image.manifest.digest.slice(7)}.manifest.json`),
              image.manifest.bytes,
            );
        }
        await writeFile(join(dir, 'manifest.json'), top.bytes);
        sources.push(() => `dir:${dir}`);
        continue;
      }
      for (const image of images) await pushImage(store, spec.repository, image);
      for (const tag of spec.tags)
        await store.putManifest(spec.repository, tag, { bytes: top.bytes, mediaType: top.mediaType });
      sources.push((tag) => `oci:${join(layouts, spec.repository)}:${tag}`);
    }
    await store.flush();
  } finally {
    await store.close();
  }
  return sources;
}

/**
 * Fills `registry` with the specs (default `defaultUpstreamSpecs()`) by skopeo
 * and describes what is there. Tags are pushed several at a time; a repository
 * or tag named twice is refused before anything is pushed.
 */
export async function populateUpstream(
  registry: DockerRegistry,
  options: PopulateUpstreamOptions = {},
): Promise<UpstreamPopulation> {
  const seed = options.seed ?? 1;
  const specs = options.specs ?? defaultUpstreamSpecs();
  const seen = new Set<string>();
  for (const spec of specs) {
    if (spec.tags.length === 0)
      throw new Error(`populateUpstream: ${spec.repository} has a spec without tags`);
    for (const tag of spec.tags) {
      const key = `${spec.repository}:${tag}`;
      if (seen.has(key)) throw new Error(`populateUpstream: ${key} is named twice`);
      seen.add(key);
    }
  }
  const shared = new Map<string, RandomBlob[]>();
  const built = specs.map((spec, i) =>
    build(spec, specSeed(seed, i, spec), options.layerSize ?? 1024, shared),
  );

  const root = await mkdtemp(join(tmpdir(), 'stowage-upstream-fixture-'));
  try {
    const sources = await writeSources(root, built);
    // One skopeo per tag. The first tag of each spec goes before its aliases, so
    // an alias finds every blob there and costs only its manifest.
    type Job = { readonly repository: string; readonly tag: string; readonly source: string };
    const firsts: Job[] = [];
    const aliases: Job[] = [];
    for (const [i, b] of built.entries()) {
      const source = sources[i] as (tag: string) => string;
      for (const [t, tag] of b.spec.tags.entries())
        (t === 0 ? firsts : aliases).push({ repository: b.spec.repository, tag, source: source(tag) });
    }
    const copy = async ({ repository, tag, source }: Job) => {
      try {
        await execFileAsync(
          'skopeo',
          [
            'copy',
            '--quiet',
            '--all',
            '--preserve-digests',
            '--dest-tls-verify=false',
            source,
            `docker://${registry.host}/${repository}:${tag}`,
          ],
          { maxBuffer: 16 << 20 },
        );
      } catch (error) {
        const stderr = (error as { stderr?: string }).stderr ?? '';
        throw new Error(`populateUpstream: skopeo copy of ${repository}:${tag} failed: ${stderr.trim()}`, {
          cause: error,
        });
      }
    };
    // distribution 2.8 writes a repository's blob links in place, so a skopeo that HEADs a
    // blob while another links that blob into the same repository can read a half-written
    // link and get a 500 (seen once in CI). One repository's copies therefore go one after
    // another, and repositories go in parallel.
    const byRepository = (jobs: readonly Job[]): Job[][] => {
      const groups = new Map<string, Job[]>();
      for (const job of jobs) groups.set(job.repository, [...(groups.get(job.repository) ?? []), job]);
      return [...groups.values()];
    };
    const inTurn = async (group: Job[]) => {
      for (const job of group) await copy(job);
    };
    const concurrency = options.concurrency ?? 6;
    await inParallel(byRepository(firsts), concurrency, inTurn);
    await inParallel(byRepository(aliases), concurrency, inTurn);
  } finally {
    await rm(root, { recursive: true, force: true });
  }
  return describePopulation(built);
}

function describePopulation(built: readonly Built[]): UpstreamPopulation {
  const repositories: Record<string, Record<string, UpstreamTag>> = {};
  const tags: UpstreamTag[] = [];
  const blobSizes = new Map<Digest, number>();
  for (const { spec, images, index } of built) {
    const described = images.map(describeImage);
    const sizes = new Map<Digest, number>();
    for (const image of images)
      for (const blob of image.blobs) sizes.set(blob.descriptor.digest, blob.descriptor.size);
    for (const [digest, size] of sizes) blobSizes.set(digest, size);
    const manifestBytes =
      images.reduce((sum, image) => sum + image.manifest.size, 0) + (index ? index.bytes.byteLength : 0);
    const first = images[0] as RandomImage;
    for (const tag of spec.tags) {
      const entry: UpstreamTag = {
        repository: spec.repository,
        tag,
        digest: index ? index.digest : first.manifest.digest,
        mediaType: index ? index.mediaType : first.manifest.mediaType,
        size: index ? index.bytes.byteLength : first.manifest.size,
        isIndex: index !== undefined,
        platforms: described.map((image) => image.platform),
        images: described,
        blobs: [...sizes.keys()],
        bytes: [...sizes.values()].reduce((a, b) => a + b, 0) + manifestBytes,
      };
      repositories[spec.repository] ??= {};
      (repositories[spec.repository] as Record<string, UpstreamTag>)[tag] = entry;
      tags.push(entry);
    }
  }
  return {
    repositories,
    tags,
    blobSizes,
    totalBlobBytes: [...blobSizes.values()].reduce((a, b) => a + b, 0),
    tag(repository, tag) {
      const entry = repositories[repository]?.[tag];
      if (!entry) throw new Error(`the upstream fixture has no ${repository}:${tag}`);
      return entry;
    },
  };
}

/** Where distribution keeps a blob's bytes under its data dir. */
export function blobDataPath(registry: DockerRegistry, digest: Digest | string): string {
  const hex = digest.replace(/^sha256:/, '');
  if (!/^[a-f0-9]{64}$/.test(hex)) throw new Error(`not a sha256 digest: ${digest}`);
  return join(registry.dataDir, 'docker/registry/v2/blobs/sha256', hex.slice(0, 2), hex, 'data');
}

/**
 * Overwrites a blob's bytes in the registry's storage with other bytes of the
 * same length (every byte inverted): docker-registry serves them under the old
 * digest without checking, as a broken upstream or a tampering proxy would.
 */
export async function corruptBlob(registry: DockerRegistry, digest: Digest | string): Promise<void> {
  const file = await open(blobDataPath(registry, digest), 'r+');
  try {
    const chunk = Buffer.alloc(1 << 20);
    for (let position = 0; ; ) {
      const { bytesRead } = await file.read(chunk, 0, chunk.byteLength, position);
      if (bytesRead === 0) break;
      for (let i = 0; i < bytesRead; i++) chunk[i] = (chunk[i] as number) ^ 0xff;
      await file.write(chunk, 0, bytesRead, position);
      position += bytesRead;
    }
  } finally {
    await file.close();
  }
}
