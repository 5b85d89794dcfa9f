// Import, then serve: a tree written by Debian's real docker-registry
// (distribution 2.8), pushed with real skopeo, is imported by `importTree` into
// a fresh PostgreSQL database and into PGlite, then served by the database
// registry with its bytes read in place from docker-registry's own directory
// (a `distribution` file blob store over its rootdirectory, no byte copied).
// Every repository, tag, manifest (byte for byte) and blob docker-registry
// reports must be served the same, the tree must be left as it was, and a
// push afterwards must work and land its bytes in the distribution layout.
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createFileBlobStore, createFileStaging, type FileBlobStore } from '@stowage/blob-store';
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
  MediaType,
  manifestReferences,
  parseManifest,
} from '@stowage/oci';
import { createRegistryClient, type RegistryClient } from '@stowage/registry-client';
import {
  collect,
  createTestDatabase,
  type DockerRegistry,
  expectedTags,
  populateWithSkopeo,
  postgresPeer,
  pushedManifest,
  type RandomBlob,
  type RegistryContents,
  randomBlob,
  randomImage,
  readRegistryContents,
  requirePeers,
  type SkopeoPush,
  snapshotTree,
  startDockerRegistry,
} from '@stowage/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDatabaseRegistry, type DatabaseRegistry } from './registry.js';

const postgres = await postgresPeer();

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
  let pushes: readonly SkopeoPush[];
  let served: RegistryContents;

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'stowage-import-serve-'));
    upstream = await startDockerRegistry({ dataDir: join(work, 'registry') });
    client = createRegistryClient({ registry: upstream.host, auth: { useConfigFiles: false } });
    // the shapes this check is about, pushed by skopeo (see skopeoTreePlan)
    pushes = await populateWithSkopeo(upstream.host, { work: join(work, 'sources') });
    served = await readRegistryContents(client);
  }, 120_000);

  afterAll(async () => {
    await client?.close();
    await upstream?.stop();
    if (work) await rm(work, { recursive: true, force: true });
  });

  it('docker-registry holds what skopeo pushed: every shape this check is about', async () => {
    // the last push of a tag wins
    const expected = expectedTags(pushes);
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
      const pushed = expected.get(`${repository}:${reference}`);
      expect(pushed, `${repository}:${reference}`).toBeDefined();
      const top = pushedManifest(pushed as NonNullable<typeof pushed>);
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
