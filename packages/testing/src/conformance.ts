import { randomBytes as cryptoRandomBytes } from 'node:crypto';
import {
  type Digest,
  digestOf,
  hasUploadSessions,
  isStowageError,
  MediaType,
  type Registry,
  type UploadSessions,
} from '@stowage/oci';
import {
  collect,
  emptyConfig,
  pushImage,
  pushIndex,
  randomArtifact,
  randomBlob,
  randomImage,
  randomIndex,
} from './random.js';
import { vitestGlobals } from './vitest-globals.js';

/** What a backend supports; cases needing a missing capability are reported as not applicable. */
export interface RegistryCapabilities {
  /** `listReferrers` answers from manifests' `subject`. */
  readonly referrers: boolean;
  /** `listTags` honours `n` and `last`. */
  readonly tagPaging: boolean;
  /** `listRepositories` works at all. */
  readonly catalog: boolean;
  /** `listRepositories` honours `n` and `last`. */
  readonly catalogPaging: boolean;
  /** An append at the wrong offset is refused with RANGE_INVALID and changes nothing. */
  readonly outOfOrderChunkRefusal: boolean;
  readonly deleteManifest: boolean;
  readonly deleteTag: boolean;
  readonly deleteBlob: boolean;
  /** Cross-repository mount with `from`. */
  readonly mount: boolean;
  /** Mount without `from`. */
  readonly anonymousMount: boolean;
  readonly sha512: boolean;
  /** `getBlob` with a range. */
  readonly ranges: boolean;
  /** `getUpload` reports offsets and unknown sessions. */
  readonly uploadStatus: boolean;
  readonly garbageCollect: boolean;
  readonly lock: boolean;
}

export const fullCapabilities: RegistryCapabilities = {
  referrers: true,
  tagPaging: true,
  catalog: true,
  catalogPaging: true,
  outOfOrderChunkRefusal: true,
  deleteManifest: true,
  deleteTag: true,
  deleteBlob: true,
  mount: true,
  anonymousMount: true,
  sha512: true,
  ranges: true,
  uploadStatus: true,
  garbageCollect: true,
  lock: true,
};

export interface ConformanceSubject {
  readonly registry: Registry;
  readonly cleanup?: () => Promise<void>;
}

export interface RegistryConformanceOptions {
  /** Shown in the suite title. */
  readonly name: string;
  /** Creates the backend once for the whole suite; every case uses its own repositories. */
  readonly create: () => Promise<ConformanceSubject> | ConformanceSubject;
  readonly capabilities?: Partial<RegistryCapabilities>;
}

const enc = new TextEncoder();

async function codeOf(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (error) {
    if (isStowageError(error)) return error.code;
    throw error;
  }
  throw new Error('expected the operation to fail, it succeeded');
}

function chunked(bytes: Uint8Array, size: number): AsyncIterable<Uint8Array> {
  return (async function* () {
    for (let i = 0; i < bytes.byteLength; i += size)
      yield bytes.subarray(i, Math.min(i + size, bytes.byteLength));
  })();
}

/**
 * The one suite every `Registry` implementation runs. It registers vitest
 * cases; call it at the top level of a test file (or inside a `describe`).
 */
export function registryConformance(options: RegistryConformanceOptions): void {
  const { afterAll, beforeAll, describe, expect, it } = vitestGlobals();
  const caps: RegistryCapabilities = { ...fullCapabilities, ...options.capabilities };
  const run = Math.random().toString(36).slice(2, 8);
  let counter = 0;
  /** A fresh repository name for one case. */
  const repo = (hint = 'r') => `conformance-${run}/${hint}-${++counter}`;
  let subject: ConformanceSubject | undefined;
  const registry = (): Registry => {
    if (!subject) throw new Error('the backend was not created');
    return subject.registry;
  };
  /** The registry, with the upload-session members its capabilities promise. */
  const sessions = (): Registry & UploadSessions => {
    const r = registry();
    if (!hasUploadSessions(r)) throw new Error('the backend has no upload sessions');
    return r;
  };

  /** A case that needs capabilities: skipped visibly, with the reason in its title, when they are missing. */
  function test(
    title: string,
    needs: readonly (keyof RegistryCapabilities)[],
    fn: () => Promise<void>,
    timeout?: number,
  ) {
    const missing = needs.filter((need) => !caps[need]);
    if (missing.length > 0) it.skipIf(true)(`${title} [not applicable: ${missing.join(', ')}]`, fn);
    else it(title, fn, timeout);
  }

  describe(`Registry conformance: ${options.name}`, () => {
    beforeAll(async () => {
      subject = await options.create();
    });
    afterAll(async () => {
      await subject?.cleanup?.();
    });

    describe('blobs', () => {
      test('put, head and get round-trip a blob', [], async () => {
        const r = registry();
        const name = repo();
        const blob = randomBlob(4096);
        const info = await r.putBlob(name, blob.bytes, { digest: blob.descriptor.digest, size: 4096 });
        expect(info).toEqual({ digest: blob.descriptor.digest, size: 4096 });
        expect(await r.headBlob(name, blob.descriptor.digest)).toEqual({
          digest: blob.descriptor.digest,
          size: 4096,
        });
        const content = await r.getBlob(name, blob.descriptor.digest);
        expect(content.size).toBe(4096);
        expect(Buffer.from(await collect(content.stream)).equals(Buffer.from(blob.bytes))).toBe(true);
      });

      test('an empty blob', [], async () => {
        const r = registry();
        const name = repo();
        const digest = digestOf(new Uint8Array());
        await r.putBlob(name, new Uint8Array(), { digest, size: 0 });
        expect(await r.headBlob(name, digest)).toEqual({ digest, size: 0 });
        expect((await collect((await r.getBlob(name, digest)).stream)).byteLength).toBe(0);
      });

      test('a streamed body of many small chunks, without a size', [], async () => {
        const r = registry();
        const name = repo();
        const blob = randomBlob(100_000);
        await r.putBlob(name, chunked(blob.bytes, 777), { digest: blob.descriptor.digest });
        expect(await r.headBlob(name, blob.descriptor.digest)).toEqual({
          digest: blob.descriptor.digest,
          size: 100_000,
        });
      });

      test(
        'an 8 MiB streamed blob',
        [],
        async () => {
          const r = registry();
          const name = repo();
          const blob = randomBlob(8 * 1024 * 1024);
          await r.putBlob(name, chunked(blob.bytes, 64 * 1024), {
            digest: blob.descriptor.digest,
            size: blob.bytes.byteLength,
          });
          const got = await collect((await r.getBlob(name, blob.descriptor.digest)).stream);
          expect(digestOf(got)).toBe(blob.descriptor.digest);
        },
        60_000,
      );

      test('sha512 blobs', ['sha512'], async () => {
        const r = registry();
        const name = repo();
        const bytes = cryptoRandomBytes(1000);
        const digest = digestOf(bytes, 'sha512');
        await r.putBlob(name, bytes, { digest, size: 1000 });
        expect(await r.headBlob(name, digest)).toEqual({ digest, size: 1000 });
        expect(Buffer.from(await collect((await r.getBlob(name, digest)).stream)).equals(bytes)).toBe(true);
      });

      test('a wrong digest is refused and nothing is stored', [], async () => {
        const r = registry();
        const name = repo();
        const blob = randomBlob(512);
        const claimed = digestOf('something else');
        expect(await codeOf(r.putBlob(name, blob.bytes, { digest: claimed }))).toBe('DIGEST_INVALID');
        expect(await r.headBlob(name, claimed)).toBeUndefined();
        expect(await r.headBlob(name, blob.descriptor.digest)).toBeUndefined();
      });

      test('a wrong size is refused and nothing is stored', [], async () => {
        const r = registry();
        const name = repo();
        const blob = randomBlob(512);
        const code = await codeOf(r.putBlob(name, blob.bytes, { digest: blob.descriptor.digest, size: 511 }));
        expect(['SIZE_INVALID', 'DIGEST_INVALID']).toContain(code);
        expect(await r.headBlob(name, blob.descriptor.digest)).toBeUndefined();
        const short = await codeOf(
          r.putBlob(name, blob.bytes, { digest: blob.descriptor.digest, size: 513 }),
        );
        expect(['SIZE_INVALID', 'DIGEST_INVALID']).toContain(short);
        expect(await r.headBlob(name, blob.descriptor.digest)).toBeUndefined();
      });

      test('invalid digests are refused', [], async () => {
        const r = registry();
        const name = repo();
        for (const bad of ['sha256:abc', `md5:${'a'.repeat(32)}`, 'nonsense', `sha256:${'A'.repeat(64)}`]) {
          expect(await codeOf(r.putBlob(name, enc.encode('x'), { digest: bad as Digest }))).toBe(
            'DIGEST_INVALID',
          );
          expect(await codeOf(r.headBlob(name, bad as Digest))).toBe('DIGEST_INVALID');
        }
      });

      test('an unknown blob', [], async () => {
        const r = registry();
        const name = repo();
        await pushImage(r, name, randomImage(), 'v1');
        const unknown = digestOf(`unknown ${Math.random()}`);
        expect(await r.headBlob(name, unknown)).toBeUndefined();
        expect(await codeOf(r.getBlob(name, unknown))).toBe('BLOB_UNKNOWN');
      });

      test('a blob is linked per repository', [], async () => {
        const r = registry();
        const a = repo('a');
        const b = repo('b');
        const blob = randomBlob(300);
        await r.putBlob(a, blob.bytes, { digest: blob.descriptor.digest });
        await pushImage(r, b, randomImage(), 'v1');
        expect(await r.headBlob(b, blob.descriptor.digest)).toBeUndefined();
      });

      test('ranges: start-end, open end, last byte, clamped end', ['ranges'], async () => {
        const r = registry();
        const name = repo();
        const blob = randomBlob(1000);
        const { digest } = blob.descriptor;
        await r.putBlob(name, blob.bytes, { digest });
        const slice = async (start: number, end?: number) => {
          const content = await r.getBlob(name, digest, {
            range: end === undefined ? { start } : { start, end },
          });
          return { range: content.range, bytes: Buffer.from(await collect(content.stream)) };
        };
        expect(await slice(10, 19)).toEqual({
          range: { start: 10, end: 19 },
          bytes: Buffer.from(blob.bytes.subarray(10, 20)),
        });
        expect(await slice(990)).toEqual({
          range: { start: 990, end: 999 },
          bytes: Buffer.from(blob.bytes.subarray(990)),
        });
        expect(await slice(999, 999)).toEqual({
          range: { start: 999, end: 999 },
          bytes: Buffer.from(blob.bytes.subarray(999)),
        });
        expect(await slice(0, 5000)).toEqual({
          range: { start: 0, end: 999 },
          bytes: Buffer.from(blob.bytes),
        });
      });

      test('a range outside the blob is refused', ['ranges'], async () => {
        const r = registry();
        const name = repo();
        const blob = randomBlob(100);
        await r.putBlob(name, blob.bytes, { digest: blob.descriptor.digest });
        expect(await codeOf(r.getBlob(name, blob.descriptor.digest, { range: { start: 100 } }))).toBe(
          'RANGE_INVALID',
        );
        expect(await codeOf(r.getBlob(name, blob.descriptor.digest, { range: { start: 50, end: 10 } }))).toBe(
          'RANGE_INVALID',
        );
      });

      test('mount from another repository', ['mount'], async () => {
        const r = registry();
        const from = repo('from');
        const to = repo('to');
        const blob = randomBlob(2048);
        await r.putBlob(from, blob.bytes, { digest: blob.descriptor.digest });
        expect(await r.mountBlob(to, blob.descriptor.digest, { from })).toEqual({
          digest: blob.descriptor.digest,
          size: 2048,
        });
        expect(await r.headBlob(to, blob.descriptor.digest)).toEqual({
          digest: blob.descriptor.digest,
          size: 2048,
        });
      });

      test('mounting a blob the source does not have answers undefined', [], async () => {
        const r = registry();
        const from = repo('from');
        const to = repo('to');
        await pushImage(r, from, randomImage(), 'v1');
        const missing = digestOf(`missing ${Math.random()}`);
        expect(await r.mountBlob(to, missing, { from })).toBeUndefined();
        expect(await r.headBlob(to, missing)).toBeUndefined();
      });

      test('anonymous mount finds the blob in any repository', ['anonymousMount'], async () => {
        const r = registry();
        const blob = randomBlob(128);
        await r.putBlob(repo('somewhere'), blob.bytes, { digest: blob.descriptor.digest });
        const to = repo('to');
        expect(await r.mountBlob(to, blob.descriptor.digest)).toEqual({
          digest: blob.descriptor.digest,
          size: 128,
        });
      });

      test('delete a blob', ['deleteBlob'], async () => {
        const r = registry();
        const name = repo();
        const blob = randomBlob(64);
        await r.putBlob(name, blob.bytes, { digest: blob.descriptor.digest });
        await r.deleteBlob(name, blob.descriptor.digest);
        expect(await r.headBlob(name, blob.descriptor.digest)).toBeUndefined();
        expect(await codeOf(r.deleteBlob(name, blob.descriptor.digest))).toBe('BLOB_UNKNOWN');
      });

      test('an aborted signal stops a push and commits nothing', [], async () => {
        const r = registry();
        const name = repo();
        const blob = randomBlob(256);
        const controller = new AbortController();
        controller.abort(new Error('stop'));
        await expect(
          r.putBlob(name, blob.bytes, { digest: blob.descriptor.digest, signal: controller.signal }),
        ).rejects.toThrow();
        const midway = new AbortController();
        const body = (async function* () {
          yield blob.bytes.subarray(0, 100);
          midway.abort(new Error('stop midway'));
          yield blob.bytes.subarray(100);
        })();
        await expect(
          r.putBlob(name, body, { digest: blob.descriptor.digest, signal: midway.signal }),
        ).rejects.toThrow();
        expect(await r.headBlob(name, blob.descriptor.digest)).toBeUndefined();
      });
    });

    describe('manifests', () => {
      test('put by tag; get by tag and digest returns the exact bytes', [], async () => {
        const r = registry();
        const name = repo();
        const image = randomImage({ layers: 2 });
        const digest = await pushImage(r, name, image, 'v1');
        expect(digest).toBe(image.manifest.digest);
        for (const reference of ['v1', digest]) {
          const got = await r.getManifest(name, reference);
          expect(got.digest).toBe(digest);
          expect(got.mediaType).toBe(MediaType.OciManifest);
          expect(got.size).toBe(image.manifest.size);
          expect(Buffer.from(got.bytes).equals(Buffer.from(image.manifest.bytes))).toBe(true);
        }
        expect(await r.headManifest(name, 'v1')).toMatchObject({
          digest,
          mediaType: MediaType.OciManifest,
          size: image.manifest.size,
        });
      });

      test('Docker schema 2 manifests and manifest lists', [], async () => {
        const r = registry();
        const name = repo();
        const index = randomIndex({ format: 'docker' });
        const digest = await pushIndex(r, name, index, 'list');
        expect((await r.getManifest(name, 'list')).mediaType).toBe(MediaType.DockerManifestList);
        expect((await r.getManifest(name, digest)).digest).toBe(index.index.digest);
        const child = index.images[0]!;
        expect((await r.getManifest(name, child.manifest.digest)).mediaType).toBe(MediaType.DockerManifest);
      });

      test('an OCI index with shared layers', [], async () => {
        const r = registry();
        const name = repo();
        const index = randomIndex({
          platforms: ['linux/amd64', 'linux/arm64', 'linux/arm/v7'],
          sharedLayers: 2,
        });
        await pushIndex(r, name, index, 'multi');
        const got = await r.getManifest(name, 'multi');
        expect(got.digest).toBe(index.index.digest);
        expect(Buffer.from(got.bytes).equals(Buffer.from(index.index.bytes))).toBe(true);
      });

      test('put by digest', [], async () => {
        const r = registry();
        const name = repo();
        const image = randomImage();
        const digest = await pushImage(r, name, image);
        expect(digest).toBe(image.manifest.digest);
        expect((await r.getManifest(name, digest)).digest).toBe(digest);
      });

      test('bytes are kept exactly: whitespace and key order decide the digest', [], async () => {
        const r = registry();
        const name = repo();
        const image = randomImage();
        await pushImage(r, name, image, 'plain');
        const text = `{\n  "layers": ${JSON.stringify(image.layers.map((l) => l.descriptor))},\n  "config": ${JSON.stringify(image.config.descriptor)},\n  "schemaVersion": 2,\n  "mediaType": "${MediaType.OciManifest}"\n}\n`;
        const bytes = enc.encode(text);
        const { digest } = await r.putManifest(name, 'pretty', { bytes, mediaType: MediaType.OciManifest });
        expect(digest).toBe(digestOf(bytes));
        expect(Buffer.from((await r.getManifest(name, 'pretty')).bytes).toString()).toBe(text);
      });

      test('a manifest whose config or layer is missing is refused', [], async () => {
        const r = registry();
        const name = repo();
        const image = randomImage({ layers: 2 });
        await r.putBlob(name, image.config.bytes, { digest: image.config.descriptor.digest });
        await r.putBlob(name, image.layers[0]!.bytes, { digest: image.layers[0]!.descriptor.digest });
        expect(
          await codeOf(
            r.putManifest(name, 'v1', { bytes: image.manifest.bytes, mediaType: image.manifest.mediaType }),
          ),
        ).toBe('MANIFEST_BLOB_UNKNOWN');
        expect(await r.headManifest(name, 'v1')).toBeUndefined();
      });

      test('an index whose child is missing is refused', [], async () => {
        const r = registry();
        const name = repo();
        const index = randomIndex();
        await pushImage(r, name, index.images[0]!);
        expect(
          await codeOf(
            r.putManifest(name, 'v1', { bytes: index.index.bytes, mediaType: index.index.mediaType }),
          ),
        ).toBe('MANIFEST_BLOB_UNKNOWN');
      });

      test('put by a digest that is not the digest of the bytes is refused', [], async () => {
        const r = registry();
        const name = repo();
        const image = randomImage();
        for (const blob of image.blobs) await r.putBlob(name, blob.bytes, { digest: blob.descriptor.digest });
        const wrong = digestOf('not this manifest');
        expect(
          await codeOf(
            r.putManifest(name, wrong, { bytes: image.manifest.bytes, mediaType: image.manifest.mediaType }),
          ),
        ).toBe('DIGEST_INVALID');
      });

      test('invalid manifests are refused', [], async () => {
        const r = registry();
        const name = repo();
        const cases: [string, string][] = [
          ['{not json', MediaType.OciManifest],
          [
            JSON.stringify({ schemaVersion: 2, mediaType: MediaType.OciManifest, layers: [] }),
            MediaType.OciManifest,
          ],
          [JSON.stringify({ schemaVersion: 3, mediaType: MediaType.OciManifest }), MediaType.OciManifest],
        ];
        for (const [body, mediaType] of cases) {
          expect(await codeOf(r.putManifest(name, 'bad', { bytes: enc.encode(body), mediaType }))).toBe(
            'MANIFEST_INVALID',
          );
        }
      });

      test('schema 1 manifests are refused', [], async () => {
        const r = registry();
        const name = repo();
        const body = JSON.stringify({
          schemaVersion: 1,
          name,
          tag: 'v1',
          architecture: 'amd64',
          fsLayers: [],
          history: [],
        });
        const code = await codeOf(
          r.putManifest(name, 'v1', {
            bytes: enc.encode(body),
            mediaType: MediaType.DockerSchema1SignedManifest,
          }),
        );
        expect(['UNSUPPORTED', 'MANIFEST_INVALID']).toContain(code);
        expect(await r.headManifest(name, 'v1')).toBeUndefined();
      });

      test('a manifest over 4 MiB is refused', [], async () => {
        const r = registry();
        const name = repo();
        const image = randomImage();
        for (const blob of image.blobs) await r.putBlob(name, blob.bytes, { digest: blob.descriptor.digest });
        const big = enc.encode(
          JSON.stringify({
            schemaVersion: 2,
            mediaType: MediaType.OciManifest,
            config: image.config.descriptor,
            layers: image.layers.map((l) => l.descriptor),
            annotations: { pad: 'x'.repeat(4 * 1024 * 1024 + 1) },
          }),
        );
        const code = await codeOf(
          r.putManifest(name, 'big', { bytes: big, mediaType: MediaType.OciManifest }),
        );
        expect(['SIZE_INVALID', 'MANIFEST_INVALID']).toContain(code);
      });

      test('re-tagging moves the tag', [], async () => {
        const r = registry();
        const name = repo();
        const one = randomImage();
        const two = randomImage();
        await pushImage(r, name, one, 'latest');
        await pushImage(r, name, two, 'latest');
        expect((await r.headManifest(name, 'latest'))?.digest).toBe(two.manifest.digest);
        expect((await r.headManifest(name, one.manifest.digest))?.digest).toBe(one.manifest.digest);
      });

      test('an unknown manifest', [], async () => {
        const r = registry();
        const name = repo();
        await pushImage(r, name, randomImage(), 'v1');
        expect(await r.headManifest(name, 'nope')).toBeUndefined();
        expect(await codeOf(r.getManifest(name, 'nope'))).toBe('MANIFEST_UNKNOWN');
        expect(await codeOf(r.getManifest(name, digestOf('nope')))).toBe('MANIFEST_UNKNOWN');
      });

      test('deleting a tag keeps the manifest', ['deleteTag'], async () => {
        const r = registry();
        const name = repo();
        const image = randomImage();
        await pushImage(r, name, image, 'a');
        await r.putManifest(name, 'b', { bytes: image.manifest.bytes, mediaType: image.manifest.mediaType });
        await r.deleteTag(name, 'a');
        expect(await r.headManifest(name, 'a')).toBeUndefined();
        expect(await r.headManifest(name, 'b')).toBeDefined();
        expect(await r.headManifest(name, image.manifest.digest)).toBeDefined();
        expect((await r.listTags(name)).items).toEqual(['b']);
        expect(await codeOf(r.deleteTag(name, 'a'))).toBe('MANIFEST_UNKNOWN');
      });

      test('deleting a manifest removes it and its tags', ['deleteManifest'], async () => {
        const r = registry();
        const name = repo();
        const image = randomImage();
        const keep = randomImage();
        await pushImage(r, name, image, 'a');
        await r.putManifest(name, 'b', { bytes: image.manifest.bytes, mediaType: image.manifest.mediaType });
        await pushImage(r, name, keep, 'keep');
        await r.deleteManifest(name, image.manifest.digest);
        expect(await r.headManifest(name, image.manifest.digest)).toBeUndefined();
        expect(await r.headManifest(name, 'a')).toBeUndefined();
        expect((await r.listTags(name)).items).toEqual(['keep']);
        expect(await codeOf(r.deleteManifest(name, image.manifest.digest))).toBe('MANIFEST_UNKNOWN');
      });
    });

    describe('tags and repositories', () => {
      test('tags are listed in lexical order', [], async () => {
        const r = registry();
        const name = repo();
        const image = randomImage();
        await pushImage(r, name, image);
        const tags = ['v2', 'B', 'a', 'v10', '1', '_x', 'v1.0-rc', 'latest', 'Z9'];
        for (const tag of tags)
          await r.putManifest(name, tag, {
            bytes: image.manifest.bytes,
            mediaType: image.manifest.mediaType,
          });
        const expected = [...tags].sort((a, b) => (a < b ? -1 : 1));
        expect((await r.listTags(name)).items).toEqual(expected);
      });

      test('listing tags of an unknown repository', [], async () => {
        expect(await codeOf(registry().listTags(repo('never-created')))).toBe('NAME_UNKNOWN');
      });

      test('tag paging with n and last returns every tag once, in order', ['tagPaging'], async () => {
        const r = registry();
        const name = repo();
        const image = randomImage();
        await pushImage(r, name, image);
        const tags = Array.from({ length: 25 }, (_, i) => `t${String(i).padStart(2, '0')}`);
        for (const tag of [...tags].reverse()) {
          await r.putManifest(name, tag, {
            bytes: image.manifest.bytes,
            mediaType: image.manifest.mediaType,
          });
        }
        const seen: string[] = [];
        let last: string | undefined;
        for (let pages = 0; pages < 10; pages++) {
          const result = await r.listTags(name, { n: 7, ...(last === undefined ? {} : { last }) });
          expect(result.items.length).toBeLessThanOrEqual(7);
          seen.push(...result.items);
          if (result.next === undefined) break;
          last = result.next;
        }
        expect(seen).toEqual(tags);
        expect((await r.listTags(name, { last: 't20' })).items).toEqual(['t21', 't22', 't23', 't24']);
        expect((await r.listTags(name, { n: 5, last: 't22' })).items).toEqual(['t23', 't24']);
      });

      test('the catalog lists repositories', ['catalog'], async () => {
        const r = registry();
        const names = [repo('cat-b'), repo('cat-a')];
        for (const name of names) await pushImage(r, name, randomImage(), 'v1');
        const all: string[] = [];
        let last: string | undefined;
        for (let i = 0; i < 1000; i++) {
          const result = await r.listRepositories(last === undefined ? {} : { last });
          all.push(...result.items);
          if (result.next === undefined) break;
          last = result.next;
        }
        for (const name of names) expect(all).toContain(name);
        expect([...all].sort((a, b) => (a < b ? -1 : 1))).toEqual(all);
      });

      test('catalog paging', ['catalog', 'catalogPaging'], async () => {
        const r = registry();
        const names = Array.from({ length: 5 }, (_, i) => repo(`page${i}`));
        for (const name of names) await pushImage(r, name, randomImage(), 'v1');
        const first = await r.listRepositories({ n: 2 });
        expect(first.items).toHaveLength(2);
        expect(first.next).toBe(first.items[1]);
        const second = await r.listRepositories({ n: 2, last: first.next as string });
        expect(second.items[0]! > first.items[1]!).toBe(true);
      });

      test('invalid repository names are refused', [], async () => {
        const r = registry();
        const blob = randomBlob(8);
        const bad = [
          'UPPER',
          'a/../b',
          'a//b',
          '%2e%2e',
          '/abs',
          'trailing/',
          'nul\0byte',
          'a'.repeat(256),
          '..',
          'a/./b',
        ];
        for (const name of bad) {
          expect(await codeOf(r.putBlob(name, blob.bytes, { digest: blob.descriptor.digest }))).toBe(
            'NAME_INVALID',
          );
          expect(await codeOf(r.listTags(name))).toBe('NAME_INVALID');
          expect(await codeOf(r.getManifest(name, 'latest'))).toBe('NAME_INVALID');
        }
      });

      test('invalid tags are refused', [], async () => {
        const r = registry();
        const name = repo();
        const image = randomImage();
        await pushImage(r, name, image);
        for (const tag of ['.hidden', '-dash', 't'.repeat(129), 'a/b', 'sp ace', '']) {
          const code = await codeOf(
            r.putManifest(name, tag, { bytes: image.manifest.bytes, mediaType: image.manifest.mediaType }),
          );
          expect(['TAG_INVALID', 'DIGEST_INVALID', 'MANIFEST_UNKNOWN', 'NAME_INVALID']).toContain(code);
        }
        expect((await r.listTags(name).catch(() => ({ items: [] }))).items).toEqual([]);
      });
    });

    describe('referrers', () => {
      test('artifacts with a subject are listed as referrers', ['referrers'], async () => {
        const r = registry();
        const name = repo();
        const image = randomImage();
        await pushImage(r, name, image, 'v1');
        const sbom = randomArtifact({
          subject: image.descriptor,
          artifactType: 'application/vnd.example.sbom',
          annotations: { k: 'v' },
        });
        const sig = randomArtifact({
          subject: image.descriptor,
          artifactType: 'application/vnd.example.sig',
        });
        const pushed = await pushImage(r, name, sbom);
        await pushImage(r, name, sig);
        const result = await r.listReferrers(name, image.manifest.digest);
        expect(result.manifests.map((m) => m.digest).sort()).toEqual(
          [sbom.manifest.digest, sig.manifest.digest].sort(),
        );
        const entry = result.manifests.find((m) => m.digest === pushed);
        expect(entry).toMatchObject({
          mediaType: MediaType.OciManifest,
          size: sbom.manifest.size,
          artifactType: 'application/vnd.example.sbom',
          annotations: { k: 'v' },
        });
      });

      test('putting a manifest with a subject reports it', ['referrers'], async () => {
        const r = registry();
        const name = repo();
        const image = randomImage();
        await pushImage(r, name, image, 'v1');
        const artifact = randomArtifact({
          subject: image.descriptor,
          artifactType: 'application/vnd.example.x',
        });
        for (const blob of artifact.blobs)
          await r.putBlob(name, blob.bytes, { digest: blob.descriptor.digest });
        const result = await r.putManifest(name, artifact.manifest.digest, {
          bytes: artifact.manifest.bytes,
          mediaType: artifact.manifest.mediaType,
        });
        expect(result.subject).toBe(image.manifest.digest);
      });

      test('the artifactType filter', ['referrers'], async () => {
        const r = registry();
        const name = repo();
        const image = randomImage();
        await pushImage(r, name, image, 'v1');
        const a = randomArtifact({ subject: image.descriptor, artifactType: 'application/vnd.example.a' });
        const b = randomArtifact({ subject: image.descriptor, artifactType: 'application/vnd.example.b' });
        await pushImage(r, name, a);
        await pushImage(r, name, b);
        const result = await r.listReferrers(name, image.manifest.digest, {
          artifactType: 'application/vnd.example.b',
        });
        expect(result.manifests.map((m) => m.digest)).toEqual([b.manifest.digest]);
        expect(result.filtersApplied).toEqual(['artifactType']);
        expect((await r.listReferrers(name, image.manifest.digest)).filtersApplied).toEqual([]);
      });

      test('referrers may be pushed before their subject', ['referrers'], async () => {
        const r = registry();
        const name = repo();
        const image = randomImage();
        const artifact = randomArtifact({
          subject: image.descriptor,
          artifactType: 'application/vnd.example.early',
        });
        await pushImage(r, name, artifact);
        expect((await r.listReferrers(name, image.manifest.digest)).manifests).toHaveLength(1);
        await pushImage(r, name, image, 'v1');
        expect((await r.listReferrers(name, image.manifest.digest)).manifests).toHaveLength(1);
      });

      test('no referrers is an empty list', ['referrers'], async () => {
        const r = registry();
        const name = repo();
        const image = randomImage();
        await pushImage(r, name, image, 'v1');
        expect((await r.listReferrers(name, image.manifest.digest)).manifests).toEqual([]);
      });
    });

    describe('upload sessions', () => {
      test('start, append chunks, status, finish', [], async () => {
        const r = sessions();
        const name = repo();
        const blob = randomBlob(30_000);
        const started = await r.startUpload(name);
        expect(started.offset).toBe(0);
        let status = await r.appendUpload(name, started.id, {
          body: blob.bytes.subarray(0, 10_000),
          offset: 0,
        });
        expect(status.offset).toBe(10_000);
        status = await r.appendUpload(name, status.id, {
          body: chunked(blob.bytes.subarray(10_000, 25_000), 1000),
          offset: 10_000,
          length: 15_000,
        });
        expect(status.offset).toBe(25_000);
        const info = await r.finishUpload(name, status.id, {
          digest: blob.descriptor.digest,
          body: blob.bytes.subarray(25_000),
          offset: 25_000,
        });
        expect(info).toEqual({ digest: blob.descriptor.digest, size: 30_000 });
        const got = await collect((await r.getBlob(name, blob.descriptor.digest)).stream);
        expect(digestOf(got)).toBe(blob.descriptor.digest);
      });

      test('status reports the offset', ['uploadStatus'], async () => {
        const r = sessions();
        const name = repo();
        const started = await r.startUpload(name);
        const status = await r.appendUpload(name, started.id, { body: randomBlob(1234).bytes });
        expect((await r.getUpload(name, status.id)).offset).toBe(1234);
        await r.cancelUpload(name, status.id);
      });

      test(
        'a chunk at the wrong offset is refused and changes nothing',
        ['outOfOrderChunkRefusal', 'uploadStatus'],
        async () => {
          const r = sessions();
          const name = repo();
          const blob = randomBlob(2000);
          const started = await r.startUpload(name);
          const status = await r.appendUpload(name, started.id, {
            body: blob.bytes.subarray(0, 1000),
            offset: 0,
          });
          expect(
            await codeOf(r.appendUpload(name, status.id, { body: blob.bytes.subarray(1500), offset: 1500 })),
          ).toBe('RANGE_INVALID');
          expect(
            await codeOf(r.appendUpload(name, status.id, { body: blob.bytes.subarray(500), offset: 500 })),
          ).toBe('RANGE_INVALID');
          const current = await r.getUpload(name, status.id);
          expect(current.offset).toBe(1000);
          const done = await r.appendUpload(name, current.id, {
            body: blob.bytes.subarray(1000),
            offset: 1000,
          });
          expect(await r.finishUpload(name, done.id, { digest: blob.descriptor.digest })).toEqual({
            digest: blob.descriptor.digest,
            size: 2000,
          });
        },
      );

      test('finishing with the wrong digest commits nothing', [], async () => {
        const r = sessions();
        const name = repo();
        const blob = randomBlob(500);
        const started = await r.startUpload(name);
        const status = await r.appendUpload(name, started.id, { body: blob.bytes });
        const wrong = digestOf('wrong');
        expect(await codeOf(r.finishUpload(name, status.id, { digest: wrong }))).toBe('DIGEST_INVALID');
        expect(await r.headBlob(name, wrong)).toBeUndefined();
        expect(await r.headBlob(name, blob.descriptor.digest)).toBeUndefined();
      });

      test('a cancelled upload is gone', ['uploadStatus'], async () => {
        const r = sessions();
        const name = repo();
        const started = await r.startUpload(name);
        await r.appendUpload(name, started.id, { body: randomBlob(10).bytes });
        await r.cancelUpload(name, started.id);
        expect(await codeOf(r.getUpload(name, started.id))).toBe('BLOB_UPLOAD_UNKNOWN');
      });

      test('unknown upload sessions', ['uploadStatus'], async () => {
        const r = sessions();
        const name = repo();
        await pushImage(r, name, randomImage(), 'v1');
        const started = await r.startUpload(name);
        await r.cancelUpload(name, started.id);
        expect(await codeOf(r.appendUpload(name, started.id, { body: enc.encode('x') }))).toBe(
          'BLOB_UPLOAD_UNKNOWN',
        );
        expect(await codeOf(r.finishUpload(name, started.id, { digest: digestOf('x') }))).toBe(
          'BLOB_UPLOAD_UNKNOWN',
        );
      });

      test('an empty upload finished in one go', [], async () => {
        const r = sessions();
        const name = repo();
        const started = await r.startUpload(name);
        const digest = digestOf('');
        expect(await r.finishUpload(name, started.id, { digest })).toEqual({ digest, size: 0 });
      });
    });

    describe('concurrency', () => {
      test('concurrent pushes of the same blob all succeed', [], async () => {
        const r = registry();
        const name = repo();
        const blob = randomBlob(50_000);
        const results = await Promise.all(
          Array.from({ length: 10 }, () =>
            r.putBlob(name, chunked(blob.bytes, 4096), { digest: blob.descriptor.digest }),
          ),
        );
        for (const result of results)
          expect(result).toEqual({ digest: blob.descriptor.digest, size: 50_000 });
        expect(digestOf(await collect((await r.getBlob(name, blob.descriptor.digest)).stream))).toBe(
          blob.descriptor.digest,
        );
      });

      test('concurrent manifest pushes to many tags and one tag end consistent', [], async () => {
        const r = registry();
        const name = repo();
        const images = Array.from({ length: 5 }, () => randomImage());
        for (const image of images) await pushImage(r, name, image);
        await Promise.all(
          Array.from({ length: 20 }, (_, i) => {
            const image = images[i % images.length]!;
            return r.putManifest(name, `t${i}`, {
              bytes: image.manifest.bytes,
              mediaType: image.manifest.mediaType,
            });
          }),
        );
        await Promise.all(
          images.map((image) =>
            r.putManifest(name, 'same', { bytes: image.manifest.bytes, mediaType: image.manifest.mediaType }),
          ),
        );
        const tags = (await r.listTags(name)).items;
        expect(tags).toHaveLength(21);
        const same = await r.headManifest(name, 'same');
        expect(images.map((i) => i.manifest.digest)).toContain(same?.digest);
      });

      test('concurrent chunked uploads to different sessions', [], async () => {
        const r = sessions();
        const name = repo();
        const blobs = Array.from({ length: 4 }, () => randomBlob(20_000));
        await Promise.all(
          blobs.map(async (blob) => {
            let status = await r.startUpload(name);
            for (let offset = 0; offset < 20_000; offset += 5000) {
              status = await r.appendUpload(name, status.id, {
                body: blob.bytes.subarray(offset, offset + 5000),
                offset,
              });
            }
            return r.finishUpload(name, status.id, { digest: blob.descriptor.digest });
          }),
        );
        for (const blob of blobs) expect(await r.headBlob(name, blob.descriptor.digest)).toBeDefined();
      });
    });

    describe('optional capabilities', () => {
      test(
        'garbage collection removes unreferenced blobs and keeps referenced ones',
        ['garbageCollect'],
        async () => {
          const r = registry();
          const name = repo();
          const image = randomImage();
          await pushImage(r, name, image, 'v1');
          const orphan = randomBlob(100);
          await r.putBlob(name, orphan.bytes, { digest: orphan.descriptor.digest });
          const dry = await r.garbageCollect!({ dryRun: true, gracePeriodMs: 0 });
          expect(dry.dryRun).toBe(true);
          expect(dry.blobsRemoved).toContain(orphan.descriptor.digest);
          expect(await r.headBlob(name, orphan.descriptor.digest)).toBeDefined();
          const report = await r.garbageCollect!({ gracePeriodMs: 0 });
          expect(report.blobsRemoved).toContain(orphan.descriptor.digest);
          expect(report.blobsRemoved).not.toContain(image.config.descriptor.digest);
          expect(await r.headBlob(name, orphan.descriptor.digest)).toBeUndefined();
          for (const blob of image.blobs)
            expect(await r.headBlob(name, blob.descriptor.digest)).toBeDefined();
          expect((await r.getManifest(name, 'v1')).digest).toBe(image.manifest.digest);
        },
      );

      test('garbage collection spares blobs younger than the grace period', ['garbageCollect'], async () => {
        const r = registry();
        const name = repo();
        const fresh = randomBlob(100);
        await r.putBlob(name, fresh.bytes, { digest: fresh.descriptor.digest });
        const report = await r.garbageCollect!({ gracePeriodMs: 60 * 60 * 1000 });
        expect(report.blobsRemoved).not.toContain(fresh.descriptor.digest);
        expect(await r.headBlob(name, fresh.descriptor.digest)).toBeDefined();
      });

      test('an exclusive lock excludes a second holder until released', ['lock'], async () => {
        const r = registry();
        const name = `conformance-${run}-lock-${++counter}`;
        const first = await r.lock!(name);
        let secondHeld = false;
        const second = r.lock!(name).then((lock) => {
          secondHeld = true;
          return lock;
        });
        await new Promise((resolve) => setTimeout(resolve, 50));
        expect(secondHeld).toBe(false);
        await first.release();
        const lock = await second;
        expect(secondHeld).toBe(true);
        await lock.release();
      });
    });

    it('the empty config blob used by artifacts round-trips', async () => {
      const r = registry();
      const name = repo();
      await r.putBlob(name, emptyConfig.bytes, { digest: emptyConfig.descriptor.digest, size: 2 });
      expect(
        Buffer.from(await collect((await r.getBlob(name, emptyConfig.descriptor.digest)).stream)).toString(),
      ).toBe('{}');
    });
  });
}
