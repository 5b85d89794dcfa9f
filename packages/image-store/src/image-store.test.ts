import { mkdir, readdir, readFile, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import {
  pushImage,
  pushIndex,
  randomArtifact,
  randomBlob,
  randomImage,
  randomIndex,
  registryConformance,
} from '@stowage/testing';
import { describe, expect, it } from 'vitest';
import { refusalCode, tempRoots } from '../test/temp-roots.js';
import { createImageStore } from './image-store.js';

const freshRoot = tempRoots('stowage-image-store-');

registryConformance({
  name: 'image-store',
  create: async () => {
    const registry = await createImageStore({ root: await freshRoot() });
    return { registry, cleanup: () => registry.close() };
  },
});

const code = refusalCode;

describe('image store on disk', () => {
  it('pages the catalog looking only into the page: repositories without a manifest are skipped, n: 0 is empty', async () => {
    const store = await createImageStore({ root: await freshRoot() });
    const image = randomImage();
    for (const name of ['a', 'c', 'e', 'g']) await pushImage(store, name, image, 'v1');
    // blob links only: a repository, not listed
    for (const name of ['b', 'd', 'f'])
      await store.putBlob(name, image.config.bytes, { digest: image.config.descriptor.digest });
    const pages: string[][] = [];
    let last: string | undefined;
    for (;;) {
      const page = await store.listRepositories({ n: 2, ...(last ? { last } : {}) });
      pages.push([...page.items]);
      if (page.next === undefined) break;
      expect(page.next).toBe(page.items.at(-1));
      last = page.next;
    }
    expect(pages).toEqual([
      ['a', 'c'],
      ['e', 'g'],
    ]);
    expect(await store.listRepositories({ n: 0 })).toEqual({ items: [] });
    expect(await store.listRepositories({ last: 'c' })).toEqual({ items: ['e', 'g'] });
    expect(await store.listRepositories({ n: 4 })).toEqual({ items: ['a', 'c', 'e', 'g'] });
    await store.close();
  });

  it('stores a blob once however many repositories link it', async () => {
    const root = await freshRoot();
    const store = await createImageStore({ root });
    const blob = randomBlob(1000);
    await store.putBlob('a', blob.bytes, { digest: blob.descriptor.digest });
    await store.putBlob('b/c', blob.bytes, { digest: blob.descriptor.digest });
    const hex = blob.descriptor.digest.slice(7);
    const cas = await stat(join(root, '.stowage/blobs/sha256', hex));
    expect(cas.nlink).toBe(3);
    expect((await stat(join(root, 'b/c/blobs/sha256', hex))).ino).toBe(cas.ino);
    await store.close();
  });

  it('keeps every repository an OCI image layout with tags in index.json', async () => {
    const root = await freshRoot();
    const store = await createImageStore({ root, indexFlushDelayMs: 10_000 });
    const image = randomImage();
    await pushImage(store, 'app/web', image, 'v1');
    await store.flush();
    expect(await readFile(join(root, 'app/web/oci-layout'), 'utf8')).toBe('{"imageLayoutVersion":"1.0.0"}');
    const index = JSON.parse(await readFile(join(root, 'app/web/index.json'), 'utf8'));
    expect(index.manifests).toEqual([
      {
        mediaType: image.manifest.mediaType,
        digest: image.manifest.digest,
        size: image.manifest.size,
        annotations: { 'org.opencontainers.image.ref.name': 'v1' },
      },
    ]);
    const manifest = await readFile(join(root, 'app/web/blobs/sha256', image.manifest.digest.slice(7)));
    expect(manifest.equals(Buffer.from(image.manifest.bytes))).toBe(true);
    await store.close();
  });

  it('rebuilds an index.json a killed process never flushed when the store is next opened', async () => {
    const root = await freshRoot();
    // a flush that never comes stands for a process killed before it
    const killed = await createImageStore({ root, indexFlushDelayMs: 1e9 });
    const image = randomImage();
    await pushImage(killed, 'late/app', image, 'v1');
    await pushImage(killed, 'late/second', image, 'v3');
    const indexOf = async (repository = 'late/app') =>
      JSON.parse(await readFile(join(root, repository, 'index.json'), 'utf8')).manifests.map(
        (m: { annotations: Record<string, string> }) => m.annotations['org.opencontainers.image.ref.name'],
      );
    expect(await indexOf()).toEqual([]);
    // One journal for the process, naming each repository it changed once.
    const journals = await readdir(join(root, '.stowage/pending-index'));
    expect(journals).toHaveLength(1);
    expect(await readFile(join(root, '.stowage/pending-index', journals[0] as string), 'utf8')).toBe(
      'late/app\nlate/second\n',
    );
    // A marker of the earlier format (one file per repository, its name without a newline) is read too.
    await pushImage(killed, 'late/third', image, 'v4');
    const journal = join(root, '.stowage/pending-index', journals[0] as string);
    await writeFile(journal, (await readFile(journal, 'utf8')).replace('late/third\n', ''));
    await writeFile(join(root, '.stowage/pending-index', `${2 ** 22 + 17}-0123456789abcdef`), 'late/third');
    const next = await createImageStore({ root });
    expect(await indexOf()).toEqual(['v1']);
    expect(await indexOf('late/second')).toEqual(['v3']);
    expect(await indexOf('late/third')).toEqual(['v4']);
    expect(await readdir(join(root, '.stowage/pending-index'))).toEqual([]);
    await next.close();
    // in the normal course, the flush removes the marker it answers for
    const store = await createImageStore({ root, indexFlushDelayMs: 1 });
    await pushImage(store, 'late/other', image, 'v2');
    await store.flush();
    expect(await readdir(join(root, '.stowage/pending-index'))).toEqual([]);
    await store.close();
  });

  it('brings back no deleted tag when a writer dies between stamping and replacing index.json', async () => {
    const root = await freshRoot();
    const store = await createImageStore({ root });
    const image = randomImage();
    await pushImage(store, 'crash/app', image, 'v1');
    await store.putManifest('crash/app', 'v2', {
      bytes: image.manifest.bytes,
      mediaType: image.manifest.mediaType,
    });
    await store.flush();
    const file = join(root, 'crash/app/index.json');
    const before = await readFile(file);
    await store.deleteTag('crash/app', 'v1');
    await store.flush();
    await store.close();
    // What a writer killed after stamping its index.json and before renaming it into
    // place leaves behind: the stamp of the new file, beside the old file.
    await writeFile(file, before);
    const next = await createImageStore({ root });
    expect((await next.listTags('crash/app')).items).toEqual(['v2']);
    await next.close();
  });
  it('keeps upload sessions across a restart', async () => {
    const root = await freshRoot();
    const blob = randomBlob(5000);
    const first = await createImageStore({ root });
    const started = await first.startUpload('up');
    await first.appendUpload('up', started.id, { body: blob.bytes.subarray(0, 2000), offset: 0 });
    await first.close();
    const second = await createImageStore({ root });
    expect((await second.getUpload('up', started.id)).offset).toBe(2000);
    await second.finishUpload('up', started.id, {
      digest: blob.descriptor.digest,
      body: blob.bytes.subarray(2000),
      offset: 2000,
    });
    expect(await second.headBlob('up', blob.descriptor.digest)).toEqual({
      digest: blob.descriptor.digest,
      size: 5000,
    });
    await second.close();
  });

  it('leaves no partial file behind after a refused write', async () => {
    const root = await freshRoot();
    const store = await createImageStore({ root });
    const blob = randomBlob(1000);
    expect(await code(store.putBlob('a', blob.bytes, { digest: randomBlob(10).descriptor.digest }))).toBe(
      'DIGEST_INVALID',
    );
    expect(await code(store.putBlob('a', blob.bytes, { digest: blob.descriptor.digest, size: 999 }))).toBe(
      'SIZE_INVALID',
    );
    expect(await readdir(join(root, '.stowage/tmp'))).toEqual([]);
    expect((await readdir(join(root, '.stowage'))).includes('blobs')).toBe(false);
    await store.close();
  });

  it('stores an empty blob, and a body that fails before its first byte leaves nothing behind', async () => {
    const root = await freshRoot();
    const store = await createImageStore({ root });
    const empty = randomBlob(0);
    await store.putBlob('a', empty.bytes, { digest: empty.descriptor.digest, size: 0 });
    expect((await store.headBlob('a', empty.descriptor.digest))?.size).toBe(0);
    async function* failing(): AsyncGenerator<Uint8Array> {
      yield* [];
      throw new Error('the client went away');
    }
    const blob = randomBlob(10);
    await expect(store.putBlob('a', failing(), { digest: blob.descriptor.digest })).rejects.toThrow(
      'the client went away',
    );
    expect(await readdir(join(root, '.stowage/tmp'))).toEqual([]);
    await store.close();
  });

  it('refuses names that would escape the root or collide with the layout, touching nothing', async () => {
    const root = await freshRoot();
    const store = await createImageStore({ root });
    const blob = randomBlob(10);
    for (const name of [
      '..',
      '../x',
      'a/../../x',
      '%2e%2e',
      '/etc',
      'a\0b',
      'x'.repeat(256),
      'a/blobs',
      'a/index.json',
      'a/oci-layout',
    ]) {
      expect(await code(store.putBlob(name, blob.bytes, { digest: blob.descriptor.digest }))).toBe(
        'NAME_INVALID',
      );
      expect(await code(store.listTags(name))).toBe('NAME_INVALID');
    }
    for (const tag of ['../x', '.hidden', 'a/b', 't'.repeat(129)]) {
      expect(await code(store.putManifest('ok', tag, { bytes: new Uint8Array(), mediaType: 'x' }))).toBe(
        'TAG_INVALID',
      );
    }
    expect(await code(store.getBlob('ok', 'sha256:../../etc/passwd' as never))).toBe('DIGEST_INVALID');
    expect((await readdir(root)).sort()).toEqual(['.stowage']);
    await store.close();
  });

  it('garbage collection keeps young and referenced blobs, removes the rest, and dry runs remove nothing', async () => {
    const root = await freshRoot();
    const store = await createImageStore({ root });
    const image = randomImage();
    await pushImage(store, 'gc/app', image, 'v1');
    const orphan = randomBlob(100);
    await store.putBlob('gc/app', orphan.bytes, { digest: orphan.descriptor.digest });
    expect((await store.garbageCollect({ gracePeriodMs: 60_000 })).blobsRemoved).toEqual([]);
    const dry = await store.garbageCollect({ gracePeriodMs: 0, dryRun: true });
    expect(dry.blobsRemoved).toEqual([orphan.descriptor.digest]);
    expect(await store.headBlob('gc/app', orphan.descriptor.digest)).toBeDefined();
    const report = await store.garbageCollect({ gracePeriodMs: 0 });
    expect(report.blobsRemoved).toEqual([orphan.descriptor.digest]);
    expect(report.bytesFreed).toBe(100);
    expect(await store.headBlob('gc/app', orphan.descriptor.digest)).toBeUndefined();
    for (const blob of image.blobs)
      expect(await store.headBlob('gc/app', blob.descriptor.digest)).toBeDefined();
    expect((await store.fsck()).problems).toEqual([]);
    await store.close();
  });

  it('garbage collection running while writers push never removes a blob of an acknowledged manifest', async () => {
    const store = await createImageStore({ root: await freshRoot() });
    const acknowledged: ReturnType<typeof randomImage>[] = [];
    let pushing = true;
    const writers = Array.from({ length: 4 }, async (_, w) => {
      for (let i = 0; i < 15; i++) {
        const image = randomImage({ layers: 2, layerSize: 2048 });
        await pushImage(store, `gc/w${w}`, image, `t${i}`);
        acknowledged.push(image);
      }
    });
    const collector = (async () => {
      let runs = 0;
      while (pushing || runs === 0) {
        await store.garbageCollect({ gracePeriodMs: 5_000 });
        runs++;
      }
      return runs;
    })();
    await Promise.all(writers);
    pushing = false;
    expect(await collector).toBeGreaterThan(1);
    await store.garbageCollect({ gracePeriodMs: 5_000 });
    expect(acknowledged).toHaveLength(60);
    let tags = 0;
    for (let w = 0; w < 4; w++) {
      for (const tag of (await store.listTags(`gc/w${w}`)).items) {
        tags++;
        const manifest = await store.getManifest(`gc/w${w}`, tag);
        const parsed = JSON.parse(Buffer.from(manifest.bytes).toString());
        for (const blob of [parsed.config, ...parsed.layers]) {
          expect(await store.headBlob(`gc/w${w}`, blob.digest)).toBeDefined();
        }
      }
    }
    expect(tags).toBe(60);
    expect((await store.fsck()).problems).toEqual([]);
    await store.close();
  });

  it('garbage collection spares a blob just linked from an old content-store entry, before its manifest', async () => {
    const root = await freshRoot();
    const store = await createImageStore({ root });
    const image = randomImage({ layers: 1 });
    await pushImage(store, 'gc/old', image, 'v1');
    // make every blob two hours old, as if pushed long ago
    const past = new Date(Date.now() - 2 * 60 * 60 * 1000);
    for (const blob of image.blobs) {
      await utimes(join(root, '.stowage/blobs/sha256', blob.descriptor.digest.slice(7)), past, past);
    }
    // a new repository receives the same blobs (linked to the old inodes); its manifest is not there yet
    for (const blob of image.blobs) {
      await store.putBlob('gc/new', blob.bytes, { digest: blob.descriptor.digest });
    }
    await store.garbageCollect({ gracePeriodMs: 60 * 60 * 1000 });
    for (const blob of image.blobs)
      expect(await store.headBlob('gc/new', blob.descriptor.digest)).toBeDefined();
    await store.putManifest('gc/new', 'v1', {
      bytes: image.manifest.bytes,
      mediaType: image.manifest.mediaType,
    });
    expect((await store.fsck()).problems).toEqual([]);
    await store.close();
  });

  it('fsck reports corrupt blobs and missing links, and repairs nothing', async () => {
    const root = await freshRoot();
    const store = await createImageStore({ root });
    const image = randomImage({ layers: 2 });
    await pushImage(store, 'fsck/app', image, 'v1');
    expect(await store.fsck()).toMatchObject({ blobsChecked: 4, manifestsChecked: 1, problems: [] });
    const [first, second] = image.layers;
    const firstPath = join(root, '.stowage/blobs/sha256', first!.descriptor.digest.slice(7));
    await writeFile(firstPath, 'tampered');
    await rm(join(root, 'fsck/app/blobs/sha256', second!.descriptor.digest.slice(7)));
    const report = await store.fsck();
    expect(report.problems.map((p) => [p.kind, p.digest])).toEqual(
      expect.arrayContaining([
        ['corrupt-blob', first!.descriptor.digest],
        ['missing-blob', second!.descriptor.digest],
      ]),
    );
    expect(await readFile(firstPath, 'utf8')).toBe('tampered');
    await store.close();
  });

  it('serves manifests from memory yet sees a delete made through another handle', async () => {
    const root = await freshRoot();
    const reader = await createImageStore({ root });
    const writer = await createImageStore({ root });
    const image = randomImage();
    const digest = await pushImage(writer, 'shared/app', image, 'v1');
    expect((await reader.getManifest('shared/app', 'v1')).bytes).toEqual(image.manifest.bytes);
    expect((await reader.getManifest('shared/app', digest)).bytes).toEqual(image.manifest.bytes);
    await writer.deleteManifest('shared/app', digest);
    expect(await code(reader.getManifest('shared/app', digest))).toBe('MANIFEST_UNKNOWN');
    expect(await reader.headManifest('shared/app', digest)).toBeUndefined();
    expect(await code(reader.getManifest('shared/app', 'v1'))).toBe('MANIFEST_UNKNOWN');
    await reader.close();
    await writer.close();
  });

  it('a read-only store refuses writes', async () => {
    const store = await createImageStore({ root: await freshRoot(), readOnly: true });
    const blob = randomBlob(10);
    expect(await code(store.putBlob('a', blob.bytes, { digest: blob.descriptor.digest }))).toBe('DENIED');
    await store.close();
  });
});

describe('OCI layouts written by other tools', () => {
  async function writeLayout(
    dir: string,
    image: ReturnType<typeof randomImage>,
    tag: string,
    corrupt = false,
  ) {
    await mkdir(join(dir, 'blobs/sha256'), { recursive: true });
    await writeFile(join(dir, 'oci-layout'), '{"imageLayoutVersion":"1.0.0"}');
    for (const [i, blob] of [
      ...image.blobs,
      { bytes: image.manifest.bytes, descriptor: image.manifest },
    ].entries()) {
      const bytes = corrupt && i === 1 ? new Uint8Array(blob.bytes.byteLength) : blob.bytes;
      await writeFile(join(dir, 'blobs/sha256', blob.descriptor.digest.slice(7)), bytes);
    }
    await writeFile(
      join(dir, 'index.json'),
      JSON.stringify({
        schemaVersion: 2,
        manifests: [
          {
            mediaType: image.manifest.mediaType,
            digest: image.manifest.digest,
            size: image.manifest.size,
            annotations: { 'org.opencontainers.image.ref.name': tag },
          },
        ],
      }),
    );
  }

  it('adopts a layout written into a repository directory, and refuses a corrupt one', async () => {
    const root = await freshRoot();
    const store = await createImageStore({ root });
    const good = randomImage({ layers: 2 });
    await writeLayout(join(root, 'ext/good'), good, 'v1');
    const bad = randomImage({ layers: 2 });
    await writeLayout(join(root, 'ext/bad'), bad, 'v1', true);
    await mkdir(join(root, 'Not-Valid'), { recursive: true });
    await writeFile(join(root, 'Not-Valid/oci-layout'), '{"imageLayoutVersion":"1.0.0"}');
    expect((await store.getManifest('ext/good', 'v1')).digest).toBe(good.manifest.digest);
    expect(await store.headManifest('ext/bad', 'v1')).toBeUndefined();
    expect((await store.listRepositories()).items).toEqual(['ext/good']);
    // a tag another tool moves in index.json moves in the store
    const other = randomImage({ layers: 1 });
    await writeLayout(join(root, 'ext/good'), other, 'v1');
    expect((await store.getManifest('ext/good', 'v1')).digest).toBe(other.manifest.digest);
    expect((await store.fsck()).problems.filter((p) => p.repository === 'ext/good')).toEqual([]);
    await store.close();
  });
});

describe('garbage collection of untagged manifests', () => {
  it('keeps tagged images, the children of tagged indexes and their referrers; removes the rest', async () => {
    const store = await createImageStore({ root: await freshRoot() });
    const index = randomIndex({ platforms: ['linux/amd64', 'linux/arm64'] });
    await pushIndex(store, 'gc/app', index, 'v1');
    const signature = randomArtifact({
      subject: index.descriptor,
      artifactType: 'application/vnd.example.sig',
    });
    await pushImage(store, 'gc/app', signature);
    const orphan = randomImage({ layers: 2 });
    await pushImage(store, 'gc/app', orphan);
    const orphanSignature = randomArtifact({
      subject: orphan.descriptor,
      artifactType: 'application/vnd.example.sig',
    });
    await pushImage(store, 'gc/app', orphanSignature);
    // the grace period protects everything just pushed
    expect((await store.garbageCollect({ deleteUntagged: true })).manifestsRemoved).toEqual([]);
    const dry = await store.garbageCollect({ deleteUntagged: true, gracePeriodMs: 0, dryRun: true });
    const expected = [orphan.manifest.digest, orphanSignature.manifest.digest].sort();
    expect(dry.manifestsRemoved.map((m) => m.digest).sort()).toEqual(expected);
    expect(await store.headManifest('gc/app', orphan.manifest.digest)).toBeDefined();
    const report = await store.garbageCollect({ deleteUntagged: true, gracePeriodMs: 0 });
    expect(report.manifestsRemoved.map((m) => m.digest).sort()).toEqual(expected);
    expect(report.blobsRemoved).toEqual(
      expect.arrayContaining(orphan.layers.map((l) => l.descriptor.digest)),
    );
    expect(await store.headManifest('gc/app', orphan.manifest.digest)).toBeUndefined();
    for (const child of index.images) {
      expect(await store.headManifest('gc/app', child.manifest.digest)).toBeDefined();
      for (const blob of child.blobs)
        expect(await store.headBlob('gc/app', blob.descriptor.digest)).toBeDefined();
    }
    expect(await store.headManifest('gc/app', signature.manifest.digest)).toBeDefined();
    expect((await store.fsck()).problems).toEqual([]);
    await store.close();
  });
});
