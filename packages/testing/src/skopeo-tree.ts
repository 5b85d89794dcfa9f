// A registry tree pushed with real skopeo: the mix of shapes an "import, then
// serve" check is about (single OCI and Docker images, a two-platform OCI index
// and a Docker manifest list, layers shared across repositories, several tags on
// one manifest, nested names, a moved tag), the sources skopeo copies them
// from, and a reading of everything the registry then reports.
import { execFile } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import {
  type Descriptor,
  type ListOptions,
  type ListPage,
  type ManifestContent,
  MediaType,
  manifestReferences,
  parseManifest,
  type Registry,
} from '@stowage/oci';
import {
  type RandomImage,
  type RandomIndex,
  type RandomManifest,
  randomImage,
  randomIndex,
  randomTarLayer,
} from './random.js';

const run = promisify(execFile);

/** One image or index, pushed by skopeo under each of `tags` in turn. */
export interface SkopeoPush {
  readonly repository: string;
  readonly tags: readonly string[];
  readonly content: RandomImage | RandomIndex;
}

/** Whether a push is an index (an OCI index or a Docker manifest list). */
export const isRandomIndex = (content: RandomImage | RandomIndex): content is RandomIndex =>
  'index' in content;

/** The manifest a push's tags point at: the index of an index, else the image's manifest. */
export const pushedManifest = (content: RandomImage | RandomIndex): RandomManifest =>
  isRandomIndex(content) ? content.index : content.manifest;

/** The images of a push: an index's children, or the one image. */
export const pushedImages = (content: RandomImage | RandomIndex): readonly RandomImage[] =>
  isRandomIndex(content) ? content.images : [content];

/**
 * What is pushed, in order: single OCI and Docker images, a two-platform OCI
 * index and a Docker manifest list (children sharing a layer), images sharing
 * layers across repositories, several tags on one manifest, a nested name, and
 * a tag moved to another image (its first manifest left untagged). Every layer
 * is a real (uncompressed) tar, so podman can pull and unpack each image too.
 */
export function skopeoTreePlan(): SkopeoPush[] {
  const base = [2048, 1536].map((size) => randomTarLayer(size, { mediaType: MediaType.OciLayer }));
  const app = randomImage({ layers: 1, sharedLayers: base, tarLayers: true });
  return [
    {
      repository: 'single/oci',
      tags: ['v1', 'latest'],
      content: randomImage({ layers: 2, tarLayers: true }),
    },
    {
      repository: 'single/docker',
      tags: ['v1', 'stable'],
      content: randomImage({ layers: 2, format: 'docker', tarLayers: true }),
    },
    {
      repository: 'multi/oci',
      tags: ['v1', 'latest'],
      content: randomIndex({ platforms: ['linux/amd64', 'linux/arm64'], sharedLayers: 1, tarLayers: true }),
    },
    {
      repository: 'multi/docker',
      tags: ['v1'],
      content: randomIndex({
        platforms: ['linux/amd64', 'linux/arm64'],
        sharedLayers: 1,
        format: 'docker',
        tarLayers: true,
      }),
    },
    {
      repository: 'shared/base',
      tags: ['v1'],
      content: randomImage({ layers: 0, sharedLayers: base, tarLayers: true }),
    },
    {
      repository: 'shared/derived',
      tags: ['v1'],
      content: randomImage({ layers: 1, sharedLayers: base, tarLayers: true }),
    },
    {
      repository: 'team/sub/app',
      tags: ['moved'],
      content: randomImage({ layers: 1, sharedLayers: base, tarLayers: true }),
    },
    { repository: 'team/sub/app', tags: ['1.0', '1.0.0', 'latest', 'moved'], content: app },
  ];
}

/** What each `repository:tag` holds once every push is done: the last push of a tag wins. */
export function expectedTags(pushes: readonly SkopeoPush[]): Map<string, RandomImage | RandomIndex> {
  const expected = new Map<string, RandomImage | RandomIndex>();
  for (const push of pushes)
    for (const tag of push.tags) expected.set(`${push.repository}:${tag}`, push.content);
  return expected;
}

const OCI_REF_NAME = 'org.opencontainers.image.ref.name';

/**
 * Writes each push where skopeo reads it, under `dir`, and answers each push's
 * source (in push order): OCI content as an OCI image layout of its own (tag
 * `source`), Docker content as a `dir:` image (skopeo 1.9's `oci:` transport
 * skips Docker media types in `index.json`, as the sync fixture found).
 */
export async function writeSkopeoSources(dir: string, pushes: readonly SkopeoPush[]): Promise<string[]> {
  const sources: string[] = [];
  for (const [position, { content }] of pushes.entries()) {
    const top = pushedManifest(content);
    if (top.mediaType === MediaType.DockerManifest || top.mediaType === MediaType.DockerManifestList) {
      const image = join(dir, 'dir', String(position));
      await mkdir(image, { recursive: true });
      await writeFile(join(image, 'version'), 'Directory Transport Version: 1.1\n');
      for (const child of pushedImages(content)) {
        for (const blob of child.blobs)
          await writeFile(join(image, blob.descriptor.digest.slice(7)), blob.bytes);
        if (isRandomIndex(content)) {
          await writeFile(
            join(image, `${child.manifest.digest.slice(7)}.manifest.json`),
            child.manifest.bytes,
          );
        }
      }
      await writeFile(join(image, 'manifest.json'), top.bytes);
      sources.push(`dir:${image}`);
      continue;
    }
    const layout = join(dir, 'oci', String(position));
    const blobs = join(layout, 'blobs', 'sha256');
    await mkdir(blobs, { recursive: true });
    const put = (digest: string, bytes: Uint8Array) => writeFile(join(blobs, digest.slice(7)), bytes);
    for (const child of pushedImages(content)) {
      for (const blob of child.blobs) await put(blob.descriptor.digest, blob.bytes);
      if (isRandomIndex(content)) await put(child.manifest.digest, child.manifest.bytes);
    }
    await put(top.digest, top.bytes);
    await writeFile(join(layout, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
    const index = {
      schemaVersion: 2,
      mediaType: MediaType.OciIndex,
      manifests: [
        {
          mediaType: top.mediaType,
          digest: top.digest,
          size: top.size,
          annotations: { [OCI_REF_NAME]: 'source' },
        },
      ],
    };
    await writeFile(join(layout, 'index.json'), JSON.stringify(index));
    sources.push(`oci:${layout}:source`);
  }
  return sources;
}

/** Runs skopeo and answers its stdout; a failure says the command and what skopeo printed. */
export async function skopeo(args: readonly string[]): Promise<Buffer> {
  try {
    const { stdout } = await run('skopeo', [...args], { encoding: 'buffer', maxBuffer: 64 << 20 });
    return stdout;
  } catch (error) {
    const stderr = String((error as { stderr?: Buffer }).stderr ?? '').trim();
    throw new Error(`skopeo ${args.join(' ')} failed: ${stderr}`, { cause: error });
  }
}

/** What a push with skopeo may add to each `skopeo copy`. */
export interface SkopeoCopyOptions {
  /** More `skopeo copy` options (`--dest-creds user:password`, say), before the source. */
  readonly args?: readonly string[];
}

/**
 * `skopeo copy --all --preserve-digests` (every platform of an index, no
 * manifest rewritten), TLS verification off on both sides: the test
 * registries speak plain HTTP on loopback.
 */
export async function skopeoCopy(
  source: string,
  destination: string,
  options: SkopeoCopyOptions = {},
): Promise<void> {
  await skopeo([
    'copy',
    '--quiet',
    '--all',
    '--preserve-digests',
    '--src-tls-verify=false',
    '--dest-tls-verify=false',
    ...(options.args ?? []),
    source,
    destination,
  ]);
}

/**
 * Pushes every push under each of its tags into the registry at `host`, from
 * `sources` (as `writeSkopeoSources` answers them). docker-registry 2.8 writes
 * blob links in place, so one repository's copies go in turn (a concurrent
 * HEAD could read a torn link), repositories at once.
 */
export async function pushWithSkopeo(
  host: string,
  pushes: readonly SkopeoPush[],
  sources: readonly string[],
  options: SkopeoCopyOptions = {},
): Promise<void> {
  const byRepository = new Map<string, (() => Promise<void>)[]>();
  for (const [i, push] of pushes.entries()) {
    const source = sources[i];
    if (source === undefined) throw new Error(`no source for push ${i} (${push.repository})`);
    const jobs = byRepository.get(push.repository) ?? [];
    for (const tag of push.tags)
      jobs.push(() => skopeoCopy(source, `docker://${host}/${push.repository}:${tag}`, options));
    byRepository.set(push.repository, jobs);
  }
  await Promise.all(
    [...byRepository.values()].map(async (jobs) => {
      for (const job of jobs) await job();
    }),
  );
}

/**
 * Writes the sources of `pushes` (default: a fresh `skopeoTreePlan()`) under
 * `work` and pushes them all with skopeo into the registry at `host` (with
 * `args` added to each copy: credentials, say); answers what was pushed.
 */
export async function populateWithSkopeo(
  host: string,
  options: { readonly work: string; readonly pushes?: readonly SkopeoPush[] } & SkopeoCopyOptions,
): Promise<readonly SkopeoPush[]> {
  const pushes = options.pushes ?? skopeoTreePlan();
  const sources = await writeSkopeoSources(options.work, pushes);
  await pushWithSkopeo(host, pushes, sources, options.args ? { args: options.args } : {});
  return pushes;
}

/** A manifest as a registry serves it, by tag or by digest. */
export interface ServedManifest {
  readonly repository: string;
  readonly reference: string;
  readonly content: ManifestContent;
}

/** Everything a registry reports: the catalog, each repository's tags, each manifest and blob it serves. */
export interface RegistryContents {
  readonly repositories: readonly string[];
  readonly tags: ReadonlyMap<string, readonly string[]>;
  /** By tag, and every child of an index by digest. */
  readonly manifests: readonly ServedManifest[];
  /** Config and layers of every image manifest, per repository (each once). */
  readonly blobs: readonly { readonly repository: string; readonly descriptor: Descriptor }[];
}

/** Every item of a paged listing, following `next` to its end. */
async function listAll(list: (options: ListOptions) => Promise<ListPage>): Promise<string[]> {
  const items: string[] = [];
  for (let last: string | undefined; ; ) {
    const page = await list(last === undefined ? {} : { last });
    items.push(...page.items);
    if (page.next === undefined) return items;
    last = page.next;
  }
}

/**
 * Reads, from a running registry (a client of docker-registry, say), everything
 * it reports: every repository, every tag, each tag's manifest and each child
 * of an index by digest (each once), and the blobs they reference.
 */
export async function readRegistryContents(
  registry: Pick<Registry, 'listRepositories' | 'listTags' | 'getManifest'>,
): Promise<RegistryContents> {
  const repositories = await listAll((options) => registry.listRepositories(options));
  const tags = new Map<string, readonly string[]>();
  const manifests: ServedManifest[] = [];
  const blobs = new Map<string, { repository: string; descriptor: Descriptor }>();
  const seen = new Set<string>();
  const visit = async (repository: string, reference: string): Promise<void> => {
    // a child listed by two tags' index is read once
    if (seen.has(`${repository}@${reference}`)) return;
    seen.add(`${repository}@${reference}`);
    const content = await registry.getManifest(repository, reference);
    manifests.push({ repository, reference, content });
    const references = manifestReferences(parseManifest(content.bytes, { mediaType: content.mediaType }));
    for (const descriptor of references.blobs) {
      blobs.set(`${repository}@${descriptor.digest}`, { repository, descriptor });
    }
    for (const child of references.manifests) await visit(repository, child.digest);
  };
  for (const repository of repositories) {
    const listed = await listAll((options) => registry.listTags(repository, options));
    tags.set(repository, listed);
    for (const tag of listed) await visit(repository, tag);
  }
  return { repositories, tags, manifests, blobs: [...blobs.values()] };
}
