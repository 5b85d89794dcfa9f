// Import, then serve: a tree written by Debian's real docker-registry
// (distribution 2.8), pushed with real skopeo, is imported by `importTree` into
// a fresh PostgreSQL database and into PGlite, then served by the database
// registry with its bytes read in place from docker-registry's own directory
// (a `distribution` file blob store over its rootdirectory, no byte copied).
// Every repository, tag, manifest (byte for byte) and blob docker-registry
// reports must be served the same, the tree must be left as it was, and a
// push afterwards must work and land its bytes in the distribution layout.
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { createFileBlobStore, createFileStaging, type FileBlobStore } from '@stowage/blob-store';
import { createImageStore } from '@stowage/image-store';
import { importTree } from '@stowage/importer';
import {
  createPgliteDatabase,
  createPostgresDatabase,
  type Database,
  encodeDigest,
  migrate,
} from '@stowage/metadata-db';
import {
  type Descriptor,
  type Digest,
  digestOf,
  type ManifestContent,
  MediaType,
  manifestReferences,
  parseManifest,
} from '@stowage/oci';
import { createRegistryClient, type RegistryClient } from '@stowage/registry-client';
import {
  collect,
  createTestDatabase,
  type DockerRegistry,
  postgresPeer,
  pushImage,
  type RandomBlob,
  type RandomImage,
  type RandomIndex,
  randomBlob,
  randomImage,
  randomIndex,
  requirePeers,
  snapshotTree,
  startDockerRegistry,
} from '@stowage/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDatabaseRegistry, type DatabaseRegistry } from './registry.js';

const run = promisify(execFile);
const postgres = await postgresPeer();

/** One image or index, pushed by skopeo under each of `tags` in turn. */
interface Push {
  readonly repository: string;
  readonly tags: readonly string[];
  readonly content: RandomImage | RandomIndex;
}

const isIndex = (content: RandomImage | RandomIndex): content is RandomIndex => 'index' in content;
const topOf = (content: RandomImage | RandomIndex) => (isIndex(content) ? content.index : content.manifest);
const imagesOf = (content: RandomImage | RandomIndex) => (isIndex(content) ? content.images : [content]);

/**
 * What is pushed, in order: single OCI and Docker images, a two-platform OCI
 * index and a Docker manifest list (children sharing a layer), images sharing
 * layers across repositories, several tags on one manifest, a nested name, and
 * a tag moved to another image (its first manifest left untagged).
 */
function plan(): Push[] {
  const base = [2048, 1536].map((size) => randomBlob(size, { mediaType: MediaType.OciLayer }));
  const app = randomImage({ layers: 1, sharedLayers: base });
  return [
    { repository: 'single/oci', tags: ['v1', 'latest'], content: randomImage({ layers: 2 }) },
    {
      repository: 'single/docker',
      tags: ['v1', 'stable'],
      content: randomImage({ layers: 2, format: 'docker' }),
    },
    {
      repository: 'multi/oci',
      tags: ['v1', 'latest'],
      content: randomIndex({ platforms: ['linux/amd64', 'linux/arm64'], sharedLayers: 1 }),
    },
    {
      repository: 'multi/docker',
      tags: ['v1'],
      content: randomIndex({ platforms: ['linux/amd64', 'linux/arm64'], sharedLayers: 1, format: 'docker' }),
    },
    { repository: 'shared/base', tags: ['v1'], content: randomImage({ layers: 0, sharedLayers: base }) },
    { repository: 'shared/derived', tags: ['v1'], content: randomImage({ layers: 1, sharedLayers: base }) },
    { repository: 'team/sub/app', tags: ['moved'], content: randomImage({ layers: 1, sharedLayers: base }) },
    { repository: 'team/sub/app', tags: ['1.0', '1.0.0', 'latest', 'moved'], content: app },
  ];
}

/**
 * Writes each push where skopeo reads it: OCI content into an image store (an
 * OCI layout per repository, as the importer's fixture does), Docker content as
 * a `dir:` image (skopeo 1.9's `oci:` transport skips Docker media types in
 * `index.json`, as the sync fixture found), and answers each push's source.
 */
async function writeSources(work: string, pushes: readonly Push[]): Promise<string[]> {
  const store = await createImageStore({ root: join(work, 'layouts') });
  const sources: string[] = [];
  try {
    for (const [position, { repository, content }] of pushes.entries()) {
      const top = topOf(content);
      if (top.mediaType === MediaType.DockerManifest || top.mediaType === MediaType.DockerManifestList) {
        const dir = join(work, 'dir', String(position));
        await mkdir(dir, { recursive: true });
        await writeFile(join(dir, 'version'), 'Directory Transport Version: 1.1\n');
        for (const image of imagesOf(content)) {
          for (const blob of image.blobs)
            await writeFile(join(dir, blob.descriptor.digest.slice(7)), blob.bytes);
          if (isIndex(content)) {
            await writeFile(
              join(dir, `${image.manifest.digest.slice(7)}.manifest.json`),
              image.manifest.bytes,
            );
          }
        }
        await writeFile(join(dir, 'manifest.json'), top.bytes);
        sources.push(`dir:${dir}`);
        continue;
      }
      // one layout tag per push, so two pushes into one repository keep their own source
      for (const image of imagesOf(content)) await pushImage(store, repository, image);
      await store.putManifest(repository, `push-${position}`, { bytes: top.bytes, mediaType: top.mediaType });
      sources.push(`oci:${join(store.root, repository)}:push-${position}`);
    }
    await store.flush();
  } finally {
    await store.close();
  }
  return sources;
}

async function skopeoCopy(source: string, destination: string): Promise<void> {
  try {
    await run(
      'skopeo',
      ['copy', '--quiet', '--all', '--preserve-digests', '--dest-tls-verify=false', source, destination],
      { maxBuffer: 16 << 20 },
    );
  } catch (error) {
    const stderr = (error as { stderr?: string }).stderr ?? '';
    throw new Error(`skopeo copy ${source} ${destination} failed: ${stderr.trim()}`, { cause: error });
  }
}

/** A manifest as docker-registry serves it, by tag or by digest. */
interface ServedManifest {
  readonly repository: string;
  readonly reference: string;
  readonly content: ManifestContent;
}

/** Everything docker-registry reports: the catalog, each repository's tags, each manifest and blob it serves. */
interface Upstream {
  readonly repositories: readonly string[];
  readonly tags: ReadonlyMap<string, readonly string[]>;
  /** By tag, and every child of an index by digest. */
  readonly manifests: readonly ServedManifest[];
  /** Config and layers of every image manifest, per repository (each once). */
  readonly blobs: readonly { readonly repository: string; readonly descriptor: Descriptor }[];
}

/** Reads, from the running docker-registry, everything it reports (the client pages through every listing). */
async function readUpstream(client: RegistryClient): Promise<Upstream> {
  const repositories = (await client.listRepositories()).items;
  const tags = new Map<string, readonly string[]>();
  const manifests: ServedManifest[] = [];
  const blobs = new Map<string, { repository: string; descriptor: Descriptor }>();
  const seen = new Set<string>();
  const visit = async (repository: string, reference: string): Promise<void> => {
    // a child listed by two tags' index is read once
    if (seen.has(`${repository}@${reference}`)) return;
    seen.add(`${repository}@${reference}`);
    const content = await client.getManifest(repository, reference);
    manifests.push({ repository, reference, content });
    const references = manifestReferences(parseManifest(content.bytes, { mediaType: content.mediaType }));
    for (const descriptor of references.blobs) {
      blobs.set(`${repository}@${descriptor.digest}`, { repository, descriptor });
    }
    for (const child of references.manifests) await visit(repository, child.digest);
  };
  for (const repository of repositories) {
    const listed = (await client.listTags(repository)).items;
    tags.set(repository, listed);
    for (const tag of listed) await visit(repository, tag);
  }
  return { repositories, tags, manifests, blobs: [...blobs.values()] };
}

/** The raw JSON answer of docker-registry's API, without the client's paging and sorting. */
async function rawListing(registry: DockerRegistry, path: string, key: string): Promise<string[]> {
  const response = await fetch(`${registry.url}${path}`);
  expect(response.status).toBe(200);
  return ((await response.json()) as Record<string, string[]>)[key] ?? [];
}

const sorted = (items: Iterable<string>) => [...items].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));

describe('import, then serve: a docker-registry tree pushed by skopeo', () => {
  if (!requirePeers('docker-registry', 'skopeo')) return;

  let work: string;
  let upstream: DockerRegistry;
  let client: RegistryClient;
  let pushes: Push[];
  let served: Upstream;

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'stowage-import-serve-'));
    upstream = await startDockerRegistry({ dataDir: join(work, 'registry') });
    client = createRegistryClient({ registry: upstream.host, auth: { useConfigFiles: false } });
    pushes = plan();
    const sources = await writeSources(join(work, 'sources'), pushes);
    // distribution 2.8 writes blob links in place: one repository's copies go in turn, repositories at once
    const byRepository = new Map<string, (() => Promise<void>)[]>();
    for (const [i, push] of pushes.entries()) {
      const jobs = byRepository.get(push.repository) ?? [];
      for (const tag of push.tags) {
        jobs.push(() =>
          skopeoCopy(sources[i] as string, `docker://${upstream.host}/${push.repository}:${tag}`),
        );
      }
      byRepository.set(push.repository, jobs);
    }
    await Promise.all(
      [...byRepository.values()].map(async (jobs) => {
        for (const job of jobs) await job();
      }),
    );
    served = await readUpstream(client);
  }, 120_000);

  afterAll(async () => {
    await client?.close();
    await upstream?.stop();
    if (work) await rm(work, { recursive: true, force: true });
  });

  it('docker-registry holds what skopeo pushed: every shape this check is about', async () => {
    // the last push of a tag wins
    const expected = new Map<string, RandomImage | RandomIndex>();
    for (const push of pushes)
      for (const tag of push.tags) expected.set(`${push.repository}:${tag}`, push.content);
    expect(served.repositories).toEqual(sorted(new Set(pushes.map((p) => p.repository))));
    expect(sorted(await rawListing(upstream, '/v2/_catalog?n=1000', 'repositories'))).toEqual(
      served.repositories,
    );
    for (const repository of served.repositories) {
      const raw = await rawListing(upstream, `/v2/${repository}/tags/list`, 'tags');
      expect(sorted(raw)).toEqual(served.tags.get(repository));
    }
    const byTag = served.manifests.filter((m) => !m.reference.includes(':'));
    expect(sorted(byTag.map((m) => `${m.repository}:${m.reference}`))).toEqual(sorted(expected.keys()));
    for (const { repository, reference, content } of byTag) {
      const top = topOf(expected.get(`${repository}:${reference}`) as RandomImage | RandomIndex);
      expect(content.digest).toBe(top.digest);
      expect(content.mediaType).toBe(top.mediaType);
      expect(Buffer.from(content.bytes).equals(Buffer.from(top.bytes))).toBe(true);
    }
    const types = new Set(byTag.map((m) => m.content.mediaType));
    for (const type of [
      MediaType.OciManifest,
      MediaType.OciIndex,
      MediaType.DockerManifest,
      MediaType.DockerManifestList,
    ]) {
      expect(types).toContain(type);
    }
    // the children of the two indexes, by digest, each once
    expect(served.manifests.length - byTag.length).toBe(4);
  });

  function serves(name: string, open: () => Promise<{ db: Database; drop: () => Promise<void> }>) {
    describe(`imported into ${name}`, () => {
      let db: Database;
      let drop: () => Promise<void>;
      let blobs: FileBlobStore;
      let registry: DatabaseRegistry;
      let before: string[];

      beforeAll(async () => {
        ({ db, drop } = await open());
        await migrate(db);
        const result = await importTree({ db, root: upstream.dataDir });
        expect(result.warnings).toEqual([]);
        blobs = createFileBlobStore({ root: upstream.dataDir, layout: 'distribution' });
        registry = await createDatabaseRegistry({
          database: db,
          blobs,
          staging: createFileStaging({ dir: join(work, `uploads-${name}`) }),
        });
        // after the import (which writes its lockfiles), before the first read
        before = await snapshotTree(upstream.dataDir);
      }, 60_000);

      afterAll(async () => {
        await registry?.close();
        await db?.close();
        await drop?.();
      });

      it('lists the repositories and tags docker-registry reports', async () => {
        expect((await registry.listRepositories()).items).toEqual(served.repositories);
        for (const repository of served.repositories) {
          expect((await registry.listTags(repository)).items, repository).toEqual(
            served.tags.get(repository),
          );
        }
        // paged one at a time, the same listing
        const paged: string[] = [];
        for (let last: string | undefined; ; ) {
          const page = await registry.listRepositories({ n: 1, ...(last === undefined ? {} : { last }) });
          paged.push(...page.items);
          if (page.next === undefined) break;
          last = page.next;
        }
        expect(paged).toEqual(served.repositories);
      });

      it('serves every manifest byte for byte: each tag, and each child of an index by digest', async () => {
        for (const { repository, reference, content } of served.manifests) {
          const where = `${repository}:${reference}`;
          const got = await registry.getManifest(repository, reference);
          expect(got.digest, where).toBe(content.digest);
          expect(got.mediaType, where).toBe(content.mediaType);
          expect(got.size, where).toBe(content.size);
          expect(Buffer.from(got.bytes).equals(Buffer.from(content.bytes)), where).toBe(true);
          expect(await registry.headManifest(repository, reference), where).toEqual({
            digest: content.digest,
            mediaType: content.mediaType,
            size: content.size,
          });
          // and by digest, whatever it was asked by
          const byDigest = await registry.getManifest(repository, content.digest);
          expect(Buffer.from(byDigest.bytes).equals(Buffer.from(content.bytes)), where).toBe(true);
        }
      });

      it('serves every blob of every manifest from the tree in place, hashing to its digest', async () => {
        expect(served.blobs.length).toBeGreaterThan(0);
        for (const { repository, descriptor } of served.blobs) {
          const where = `${repository}@${descriptor.digest}`;
          expect(await registry.headBlob(repository, descriptor.digest), where).toEqual({
            digest: descriptor.digest,
            size: descriptor.size,
          });
          const content = await registry.getBlob(repository, descriptor.digest);
          expect(content.size, where).toBe(descriptor.size);
          const bytes = await collect(content.stream);
          expect(bytes.byteLength, where).toBe(descriptor.size);
          expect(digestOf(bytes), where).toBe(descriptor.digest as Digest);
          // the very file docker-registry wrote
          expect(blobs.path(descriptor.digest)).toBe(
            join(
              upstream.dataDir,
              'docker/registry/v2/blobs/sha256',
              descriptor.digest.slice(7, 9),
              descriptor.digest.slice(7),
              'data',
            ),
          );
        }
      });

      it('leaves the tree exactly as it was after serving all of it', async () => {
        // serve everything once more here, so this holds whichever tests ran before
        await registry.listRepositories();
        for (const repository of served.repositories) await registry.listTags(repository);
        for (const { repository, reference } of served.manifests)
          await registry.getManifest(repository, reference);
        for (const { repository, descriptor } of served.blobs) {
          await collect((await registry.getBlob(repository, descriptor.digest)).stream);
        }
        expect(await snapshotTree(upstream.dataDir)).toEqual(before);
      });

      it('takes pushes after serving: a new tag of an imported image, new blobs in the distribution layout', async () => {
        const repository = 'team/sub/app';
        const tags = served.tags.get(repository) as readonly string[];
        // a new tag of an existing image
        const existing = await registry.getManifest(repository, 'latest');
        await registry.putManifest(repository, 'pushed-after-import', {
          bytes: existing.bytes,
          mediaType: existing.mediaType,
        });
        expect(await registry.getManifest(repository, 'pushed-after-import')).toEqual(existing);
        expect((await registry.listTags(repository)).items).toEqual(sorted([...tags, 'pushed-after-import']));
        // and of an imported index, whose children are imported rows
        for (const multi of ['multi/oci', 'multi/docker']) {
          const list = await registry.getManifest(multi, 'v1');
          await registry.putManifest(multi, 'pushed-after-import', {
            bytes: list.bytes,
            mediaType: list.mediaType,
          });
          expect(await registry.getManifest(multi, 'pushed-after-import'), multi).toEqual(list);
        }

        // a new blob, whole
        const blob = randomBlob(4096);
        const { digest } = blob.descriptor;
        expect(
          await registry.putBlob(repository, blob.bytes, { digest, size: blob.descriptor.size }),
        ).toEqual({
          digest,
          size: 4096,
        });
        const path = blobs.path(digest);
        expect(path).toBe(
          join(
            upstream.dataDir,
            'docker/registry/v2/blobs/sha256',
            digest.slice(7, 9),
            digest.slice(7),
            'data',
          ),
        );
        expect((await readFile(path)).equals(Buffer.from(blob.bytes))).toBe(true);
        expect(
          Buffer.from(await collect((await registry.getBlob(repository, digest)).stream)).equals(
            Buffer.from(blob.bytes),
          ),
        ).toBe(true);

        // a cross-repository mount of an imported layer into a new repository
        const mounted = served.blobs.find((b) => b.repository === 'shared/base')?.descriptor as Descriptor;
        expect(await registry.mountBlob('team/sub/other', mounted.digest, { from: 'shared/base' })).toEqual({
          digest: mounted.digest,
          size: mounted.size,
        });
        expect(await registry.headBlob('team/sub/other', mounted.digest)).toEqual({
          digest: mounted.digest,
          size: mounted.size,
        });

        // a new image on an imported layer: its new layer through an upload session (a chunked push),
        // its config whole, the manifest under a new tag
        const imported = parseManifest(existing.bytes, { mediaType: existing.mediaType });
        const importedLayer = manifestReferences(imported).blobs[1] as Descriptor;
        const sharedLayer: RandomBlob = {
          descriptor: importedLayer,
          bytes: await collect((await registry.getBlob(repository, importedLayer.digest)).stream),
        };
        const image = randomImage({ layers: 1, sharedLayers: [sharedLayer] });
        const layer = image.layers[1] as RandomBlob;
        const session = await registry.startUpload(repository);
        const half = layer.bytes.byteLength >> 1;
        const appended = await registry.appendUpload(repository, session.id, {
          body: layer.bytes.subarray(0, half),
          offset: 0,
        });
        expect(appended.offset).toBe(half);
        await registry.finishUpload(repository, session.id, {
          digest: layer.descriptor.digest,
          body: layer.bytes.subarray(half),
          offset: half,
        });
        await registry.putBlob(repository, image.config.bytes, {
          digest: image.config.descriptor.digest,
          size: image.config.descriptor.size,
        });
        await registry.putManifest(repository, 'new-image', {
          bytes: image.manifest.bytes,
          mediaType: image.manifest.mediaType,
        });
        const got = await registry.getManifest(repository, 'new-image');
        expect(got.digest).toBe(image.manifest.digest);
        expect(Buffer.from(got.bytes).equals(Buffer.from(image.manifest.bytes))).toBe(true);
        for (const pushed of [image.config, layer]) {
          const file = await readFile(blobs.path(pushed.descriptor.digest));
          expect(file.equals(Buffer.from(pushed.bytes))).toBe(true);
        }
        expect((await registry.listTags(repository)).items).toEqual(
          sorted([...tags, 'pushed-after-import', 'new-image']),
        );
      });

      it('never collects a manifest file of the tree, so docker-registry can still serve it', async () => {
        const manifestDigests = [...new Set(served.manifests.map((m) => m.content.digest))];
        const dry = await registry.garbageCollect({ dryRun: true, gracePeriodMs: 0 });
        expect(dry.blobsRemoved.filter((digest) => manifestDigests.includes(digest))).toEqual([]);
        // the import queued each manifest file's blob row for review: make exactly those due
        const due = await db.query(
          'UPDATE gc_blob_review_queue SET review_after = now() WHERE digest = ANY($1::bytea[])',
          [manifestDigests.map((digest) => encodeDigest(digest))],
        );
        expect(due.rowCount).toBe(manifestDigests.length);
        const reviewed = await registry.reviewBlobs({ limit: 10_000 });
        expect(reviewed.reviewed).toBeGreaterThanOrEqual(manifestDigests.length);
        expect(reviewed.removed).toEqual([]);
        for (const digest of manifestDigests) expect(await blobs.stat(digest)).toBeDefined();
      });
    });
  }

  describe('on a PostgreSQL server', () => {
    if (!requirePeers(postgres)) return;
    serves('PostgreSQL', async () => {
      const test = await createTestDatabase();
      return { db: createPostgresDatabase({ connectionString: test.url }), drop: () => test.drop() };
    });
  });

  serves('PGlite', async () => ({ db: await createPgliteDatabase(), drop: async () => undefined }));
});
