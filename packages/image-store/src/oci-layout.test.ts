import { mkdir, mkdtemp, readdir, readFile, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { digestOf, isStowageError, MediaType } from '@stowage/oci';
import {
  pushImage,
  pushIndex,
  randomBlob,
  randomImage,
  randomIndex,
  registryConformance,
  snapshotTree,
} from '@stowage/testing';
import { afterAll, describe, expect, it } from 'vitest';
import { createOciLayoutRegistry, type OciLayoutRegistry } from './oci-layout.js';

const REF_NAME = 'org.opencontainers.image.ref.name';
const dirs: string[] = [];

async function tempDir(hint: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), `stowage-oci-layout-${hint}-`));
  dirs.push(dir);
  return dir;
}

afterAll(async () => {
  for (const dir of dirs.splice(0)) await rm(dir, { recursive: true, force: true });
});

/** Every file under `dir`, relative, sorted. */
async function files(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  return entries
    .filter((e) => e.isFile())
    .map((e) => relative(dir, join(e.parentPath, e.name)))
    .sort();
}

async function codeOf(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (error) {
    if (isStowageError(error)) return error.code;
    throw error;
  }
  throw new Error('expected a failure');
}

async function indexJson(
  dir: string,
): Promise<{ manifests: Record<string, unknown>[] } & Record<string, unknown>> {
  return JSON.parse(await readFile(join(dir, 'index.json'), 'utf8'));
}

registryConformance({
  name: 'OCI layout registry',
  async create() {
    const root = await tempDir('conformance');
    const registry = createOciLayoutRegistry({ root });
    return {
      registry,
      cleanup: async () => {
        await registry.close();
      },
    };
  },
});

describe('createOciLayoutRegistry options', () => {
  it('needs exactly one of root and directories, and repository names as directory keys', () => {
    const refused = (options: object) => {
      try {
        createOciLayoutRegistry(options);
      } catch (error) {
        return isStowageError(error, 'OPTIONS_INVALID');
      }
      return false;
    };
    expect(refused({})).toBe(true);
    expect(refused({ root: '/tmp/a', directories: { a: '/tmp/a' } })).toBe(true);
    expect(refused({ root: '' })).toBe(true);
    expect(refused({ directories: {} })).toBe(true);
    expect(refused({ directories: { 'My Image': '/tmp/x' } })).toBe(true);
    expect(refused({ directories: { layout: '' } })).toBe(true);
    expect(refused({ root: '/tmp/a', maxManifestSize: 0 })).toBe(true);
  });

  it('the origin names the root, or the directory', async () => {
    const root = await tempDir('origin');
    expect(createOciLayoutRegistry({ root }).origin).toBe(`oci-layout://${root}`);
    expect(createOciLayoutRegistry({ directories: { layout: join(root, 'My Image') } }).origin).toBe(
      `oci-layout://${join(root, 'My Image')}`,
    );
  });
});

describe('directories mode', () => {
  it('serves a layout in a directory whose name is no repository name, and nothing else', async () => {
    const parent = await tempDir('directories');
    const dir = join(parent, 'My Image');
    const registry = createOciLayoutRegistry({ directories: { layout: dir } });
    const index = randomIndex({ platforms: ['linux/amd64', 'linux/arm64'] });
    await pushIndex(registry, 'layout', index, 'v1');
    expect((await registry.listTags('layout')).items).toEqual(['v1']);
    expect((await registry.getManifest('layout', 'v1')).digest).toBe(index.index.digest);
    expect((await registry.listRepositories()).items).toEqual(['layout']);
    // exactly the three parts of a layout: no temporary files, no metadata
    const expected = [
      ...new Set([
        ...index.images.flatMap((image) => [
          image.manifest.digest,
          ...image.blobs.map((b) => b.descriptor.digest),
        ]),
        index.index.digest,
      ]),
    ].map((d) => `blobs/sha256/${d.slice(7)}`);
    expect(await files(dir)).toEqual(['index.json', 'oci-layout', ...expected].sort());
    expect(JSON.parse(await readFile(join(dir, 'oci-layout'), 'utf8'))).toEqual({
      imageLayoutVersion: '1.0.0',
    });
    const written = await indexJson(dir);
    expect(written.manifests).toEqual([
      {
        mediaType: MediaType.OciIndex,
        digest: index.index.digest,
        size: index.index.size,
        annotations: { [REF_NAME]: 'v1' },
      },
    ]);
    // the children pushed by digest are blobs only, and found by digest
    for (const image of index.images) {
      expect((await registry.getManifest('layout', image.manifest.digest)).mediaType).toBe(
        MediaType.OciManifest,
      );
    }
    // a repository that is not one of the directories
    expect(await codeOf(registry.listTags('other'))).toBe('NAME_UNKNOWN');
    expect(await registry.headBlob('other', index.index.digest)).toBeUndefined();
    const blob = randomBlob(10);
    expect(await codeOf(registry.putBlob('other', blob.bytes, { digest: blob.descriptor.digest }))).toBe(
      'NAME_UNKNOWN',
    );
    expect(await readdir(parent)).toEqual(['My Image']);
    await registry.close();
  });
});

describe('read-only', () => {
  it('refuses every write with DENIED and creates nothing', async () => {
    const parent = await tempDir('read-only');
    const root = join(parent, 'root');
    const registry = createOciLayoutRegistry({ root, readOnly: true });
    const image = randomImage();
    const blob = image.blobs[0]!;
    const writes = [
      registry.putBlob('app', blob.bytes, { digest: blob.descriptor.digest }),
      registry.putManifest('app', 'v1', { bytes: image.manifest.bytes, mediaType: image.manifest.mediaType }),
      registry.deleteTag('app', 'v1'),
      registry.deleteManifest('app', image.manifest.digest),
      registry.deleteBlob('app', blob.descriptor.digest),
      registry.mountBlob('app', blob.descriptor.digest, { from: 'other' }),
    ];
    for (const write of writes) expect(await codeOf(write)).toBe('DENIED');
    expect(await codeOf(registry.listTags('app'))).toBe('NAME_UNKNOWN');
    expect(await codeOf(registry.getManifest('app', 'v1'))).toBe('NAME_UNKNOWN');
    expect(await codeOf(registry.getBlob('app', blob.descriptor.digest))).toBe('NAME_UNKNOWN');
    expect(await registry.headBlob('app', blob.descriptor.digest)).toBeUndefined();
    expect(await registry.headManifest('app', 'v1')).toBeUndefined();
    expect((await registry.listRepositories()).items).toEqual([]);
    expect(await readdir(parent)).toEqual([]);
  });

  it('reads an existing layout and changes nothing in it', async () => {
    const root = await tempDir('read-only-existing');
    const writer = createOciLayoutRegistry({ root });
    const image = randomImage();
    await pushImage(writer, 'app', image, 'v1');
    await writer.close();
    const before = await snapshotTree(root);
    const registry = createOciLayoutRegistry({ root, readOnly: true });
    expect((await registry.getManifest('app', 'v1')).digest).toBe(image.manifest.digest);
    expect((await registry.listReferrers('app', image.manifest.digest)).manifests).toEqual([]);
    expect(
      await codeOf(
        registry.putManifest('app', 'v2', {
          bytes: image.manifest.bytes,
          mediaType: image.manifest.mediaType,
        }),
      ),
    ).toBe('DENIED');
    expect(await codeOf(registry.deleteTag('app', 'v1'))).toBe('DENIED');
    expect(await snapshotTree(root)).toEqual(before);
  });
});

describe('index.json', () => {
  it('a tag move replaces its entry in place; other entries stay as another tool wrote them', async () => {
    const dir = join(await tempDir('order'), 'layout');
    const registry = createOciLayoutRegistry({ directories: { app: dir } });
    const [a, b, c, d] = [randomImage(), randomImage(), randomImage(), randomImage()];
    for (const image of [a, b, c, d]) await pushImage(registry, 'app', image!);
    // what skopeo, buildah or a hand may leave: an untagged entry, a full reference, extra members
    const foreign = {
      schemaVersion: 2,
      manifests: [
        {
          mediaType: MediaType.OciManifest,
          digest: a!.manifest.digest,
          size: a!.manifest.size,
          annotations: { [REF_NAME]: 'a' },
        },
        { mediaType: MediaType.OciManifest, digest: d!.manifest.digest, size: d!.manifest.size },
        {
          mediaType: MediaType.OciManifest,
          digest: b!.manifest.digest,
          size: b!.manifest.size,
          annotations: { [REF_NAME]: 'b', 'org.example': 'x' },
          platform: { architecture: 'amd64', os: 'linux' },
        },
        {
          mediaType: MediaType.OciManifest,
          digest: c!.manifest.digest,
          size: c!.manifest.size,
          annotations: { [REF_NAME]: 'example.com/app:c' },
        },
        {
          mediaType: MediaType.OciManifest,
          digest: c!.manifest.digest,
          size: c!.manifest.size,
          annotations: { [REF_NAME]: 'c' },
        },
      ],
      annotations: { 'org.example.layout': 'kept' },
    };
    await writeFile(join(dir, 'index.json'), JSON.stringify(foreign));
    expect((await registry.listTags('app')).items).toEqual(['a', 'b', 'c']);
    await registry.putManifest('app', 'b', { bytes: d!.manifest.bytes, mediaType: d!.manifest.mediaType });
    const moved = await indexJson(dir);
    expect(
      moved.manifests.map((m) => (m.annotations as Record<string, string> | undefined)?.[REF_NAME]),
    ).toEqual(['a', undefined, 'b', 'example.com/app:c', 'c']);
    expect(moved.manifests[2]).toEqual({
      mediaType: MediaType.OciManifest,
      digest: d!.manifest.digest,
      size: d!.manifest.size,
      annotations: { [REF_NAME]: 'b' },
    });
    for (const i of [0, 1, 3, 4]) expect(moved.manifests[i]).toEqual(foreign.manifests[i]);
    expect(moved.annotations).toEqual(foreign.annotations);
    // the manifest that lost its tag is still there by digest
    expect((await registry.headManifest('app', b!.manifest.digest))?.digest).toBe(b!.manifest.digest);
    // putting the tag where it already points writes nothing
    const info = await stat(join(dir, 'index.json'));
    await registry.putManifest('app', 'b', { bytes: d!.manifest.bytes, mediaType: d!.manifest.mediaType });
    expect((await stat(join(dir, 'index.json'))).ino).toBe(info.ino);
    // a tag delete removes its entry only
    await registry.deleteTag('app', 'a');
    expect((await indexJson(dir)).manifests).toEqual(moved.manifests.slice(1));
    // a manifest delete removes every entry of the digest, and the blob
    await registry.deleteManifest('app', c!.manifest.digest);
    expect((await indexJson(dir)).manifests).toEqual([moved.manifests[1], moved.manifests[2]]);
    expect(await registry.headBlob('app', c!.manifest.digest)).toBeUndefined();
    expect((await registry.listTags('app')).items).toEqual(['b']);
  });

  it('a malformed index.json someone else wrote is MANIFEST_INVALID naming the file, and is left alone', async () => {
    const root = await tempDir('malformed');
    const registry = createOciLayoutRegistry({ root });
    const image = randomImage();
    await pushImage(registry, 'app', image, 'v1');
    const file = join(root, 'app', 'index.json');
    for (const text of [
      '{"schemaVersion":2,"manifests":[',
      '[]',
      '{"schemaVersion":2,"manifests":{}}',
      '{"manifests":[]}',
      '{"schemaVersion":2,"manifests":[42]}',
    ]) {
      await writeFile(file, text);
      // one call at a time: each one's refusal is awaited before the next starts
      for (const call of [
        () => registry.listTags('app'),
        () => registry.getManifest('app', 'v1'),
        () =>
          registry.putManifest('app', 'v2', {
            bytes: image.manifest.bytes,
            mediaType: image.manifest.mediaType,
          }),
        () => registry.deleteTag('app', 'v1'),
      ]) {
        const error = await call().then(
          () => undefined,
          (e: unknown) => e,
        );
        expect(isStowageError(error, 'MANIFEST_INVALID'), text).toBe(true);
        expect((error as Error).message).toContain(file);
      }
      expect(await readFile(file, 'utf8')).toBe(text);
    }
  });

  it('concurrent tag writes through two registries on one root lose nothing', async () => {
    const root = await tempDir('concurrent');
    const one = createOciLayoutRegistry({ root });
    const two = createOciLayoutRegistry({ root });
    const image = randomImage();
    await pushImage(one, 'app', image);
    await Promise.all(
      Array.from({ length: 30 }, (_, i) =>
        (i % 2 ? one : two).putManifest('app', `t${i}`, {
          bytes: image.manifest.bytes,
          mediaType: image.manifest.mediaType,
        }),
      ),
    );
    expect((await one.listTags('app')).items).toHaveLength(30);
    expect((await indexJson(join(root, 'app'))).manifests).toHaveLength(30);
    expect(await files(join(root, 'app'))).toEqual(
      ['index.json', 'oci-layout', ...image.blobs.map((b) => b.descriptor.digest), image.manifest.digest]
        .map((d) => (d.startsWith('sha256:') ? `blobs/sha256/${d.slice(7)}` : d))
        .sort(),
    );
  });
});

describe('writes', () => {
  it('an aborted putBlob (a body that fails midway) leaves no temporary file and no blob', async () => {
    const root = await tempDir('aborted');
    const registry = createOciLayoutRegistry({ root });
    await pushImage(registry, 'app', randomImage(), 'v1');
    const before = await files(join(root, 'app'));
    const blob = randomBlob(300_000);
    const failing = (async function* () {
      yield blob.bytes.subarray(0, 100_000);
      throw new Error('the network went away');
    })();
    await expect(registry.putBlob('app', failing, { digest: blob.descriptor.digest })).rejects.toThrow(
      'the network went away',
    );
    const controller = new AbortController();
    const aborted = (async function* () {
      yield blob.bytes.subarray(0, 100_000);
      controller.abort(new Error('stop'));
      yield blob.bytes.subarray(100_000);
    })();
    await expect(
      registry.putBlob('app', aborted, { digest: blob.descriptor.digest, signal: controller.signal }),
    ).rejects.toThrow();
    const wrong = await codeOf(registry.putBlob('app', blob.bytes, { digest: digestOf('other') }));
    expect(wrong).toBe('DIGEST_INVALID');
    expect(await files(join(root, 'app'))).toEqual(before);
    expect(await registry.headBlob('app', blob.descriptor.digest)).toBeUndefined();
  });

  it('removes the temporary files a crashed writer left, once they are old', async () => {
    const root = await tempDir('leftovers');
    const dir = join(root, 'app');
    await mkdir(dir, { recursive: true });
    const old = join(dir, `${'a'.repeat(24)}.blob-tmp`);
    const oldIndex = join(dir, `.index.json.${'b'.repeat(16)}.tmp`);
    const fresh = join(dir, `${'c'.repeat(24)}.blob-tmp`);
    for (const file of [old, oldIndex, fresh]) await writeFile(file, 'partial');
    const hourAgo = new Date(Date.now() - 2 * 60 * 60 * 1000);
    await utimes(old, hourAgo, hourAgo);
    await utimes(oldIndex, hourAgo, hourAgo);
    const registry = createOciLayoutRegistry({ root });
    await pushImage(registry, 'app', randomImage(), 'v1');
    const names = await readdir(dir);
    expect(names).not.toContain(old.slice(dir.length + 1));
    expect(names).not.toContain(oldIndex.slice(dir.length + 1));
    expect(names).toContain(fresh.slice(dir.length + 1));
  });

  it('a mount within the root hard-links the blob', async () => {
    const root = await tempDir('mount');
    const registry = createOciLayoutRegistry({ root });
    const blob = randomBlob(1000);
    await registry.putBlob('a', blob.bytes, { digest: blob.descriptor.digest });
    expect(await registry.mountBlob('b/c', blob.descriptor.digest, { from: 'a' })).toEqual({
      digest: blob.descriptor.digest,
      size: 1000,
    });
    const hex = blob.descriptor.digest.slice(7);
    expect((await stat(join(root, 'b/c/blobs/sha256', hex))).ino).toBe(
      (await stat(join(root, 'a/blobs/sha256', hex))).ino,
    );
    expect((await registry.listRepositories()).items).toEqual(['a', 'b/c']);
    expect(await codeOf(registry.putBlob('a/blobs', blob.bytes, { digest: blob.descriptor.digest }))).toBe(
      'NAME_INVALID',
    );
  });
});

describe('manifests by digest', () => {
  it('finds any blob that is a manifest, and nothing that is not', async () => {
    const root = await tempDir('by-digest');
    const registry = createOciLayoutRegistry({ root });
    const image = randomImage({ layers: 1 });
    await pushImage(registry, 'app', image);
    expect((await registry.getManifest('app', image.manifest.digest)).bytes).toEqual(image.manifest.bytes);
    expect(await registry.listTags('app')).toEqual({ items: [] });
    expect((await indexJson(join(root, 'app'))).manifests).toEqual([]);
    // the config is JSON with a "config" member, but no manifest; the layer is no JSON at all
    for (const blob of image.blobs) {
      expect(await registry.headManifest('app', blob.descriptor.digest)).toBeUndefined();
      expect(await codeOf(registry.getManifest('app', blob.descriptor.digest))).toBe('MANIFEST_UNKNOWN');
    }
    expect(await codeOf(registry.deleteManifest('app', image.config.descriptor.digest))).toBe(
      'MANIFEST_UNKNOWN',
    );
    expect(await registry.headBlob('app', image.config.descriptor.digest)).toBeDefined();
  });

  it('a blob whose bytes do not hash to its name is reported, not served', async () => {
    const root = await tempDir('corrupt');
    const registry = createOciLayoutRegistry({ root });
    const image = randomImage();
    await pushImage(registry, 'app', image, 'v1');
    const file = join(root, 'app/blobs/sha256', image.manifest.digest.slice(7));
    await writeFile(file, '{"schemaVersion":2}');
    const error = await registry.getManifest('app', 'v1').then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(isStowageError(error, 'MANIFEST_INVALID')).toBe(true);
    expect((error as Error).message).toContain(file);
  });
});

describe('close', () => {
  it('refuses calls afterwards with UNAVAILABLE', async () => {
    const registry: OciLayoutRegistry = createOciLayoutRegistry({ root: await tempDir('close') });
    await registry.close();
    await registry.close();
    expect(await codeOf(registry.listRepositories())).toBe('UNAVAILABLE');
  });
});
