import { digestOf, MediaType } from '@stowage/oci';
import { pushImage, pushIndex, randomImage, randomIndex } from '../random.js';
import { type Conformance, codeOf, enc, manifestBody } from './suite.js';

/** Manifests: exact bytes, validation, references that must exist, sparse indexes, deletes. */
export function manifestCases(c: Conformance): void {
  const { describe, expect, test, registry, repo } = c;
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
      expect(await codeOf(r.putManifest(name, 'v1', manifestBody(image.manifest)))).toBe(
        'MANIFEST_BLOB_UNKNOWN',
      );
      expect(await r.headManifest(name, 'v1')).toBeUndefined();
    });

    test('an index whose child is missing is refused', [], async () => {
      const r = registry();
      const name = repo();
      const index = randomIndex();
      await pushImage(r, name, index.images[0]!);
      expect(await codeOf(r.putManifest(name, 'v1', manifestBody(index.index)))).toBe(
        'MANIFEST_BLOB_UNKNOWN',
      );
    });

    test('put by a digest that is not the digest of the bytes is refused', [], async () => {
      const r = registry();
      const name = repo();
      const image = randomImage();
      for (const blob of image.blobs) await r.putBlob(name, blob.bytes, { digest: blob.descriptor.digest });
      const wrong = digestOf('not this manifest');
      expect(await codeOf(r.putManifest(name, wrong, manifestBody(image.manifest)))).toBe('DIGEST_INVALID');
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
      const code = await codeOf(r.putManifest(name, 'big', { bytes: big, mediaType: MediaType.OciManifest }));
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
      await r.putManifest(name, 'b', manifestBody(image.manifest));
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
      await r.putManifest(name, 'b', manifestBody(image.manifest));
      await pushImage(r, name, keep, 'keep');
      await r.deleteManifest(name, image.manifest.digest);
      expect(await r.headManifest(name, image.manifest.digest)).toBeUndefined();
      expect(await r.headManifest(name, 'a')).toBeUndefined();
      expect((await r.listTags(name)).items).toEqual(['keep']);
      expect(await codeOf(r.deleteManifest(name, image.manifest.digest))).toBe('MANIFEST_UNKNOWN');
    });
    test(
      'a store without tag deletes refuses them with UNSUPPORTED and keeps the tag',
      ['!deleteTag'],
      async () => {
        const r = registry();
        const name = repo();
        const image = randomImage();
        await pushImage(r, name, image, 'a');
        expect(await codeOf(r.deleteTag(name, 'a'))).toBe('UNSUPPORTED');
        expect((await r.headManifest(name, 'a'))?.digest).toBe(image.manifest.digest);
        expect((await r.listTags(name)).items).toEqual(['a']);
      },
    );

    test(
      'a store without manifest deletes refuses them with UNSUPPORTED and keeps the manifest',
      ['!deleteManifest'],
      async () => {
        const r = registry();
        const name = repo();
        const image = randomImage();
        await pushImage(r, name, image, 'a');
        expect(await codeOf(r.deleteManifest(name, image.manifest.digest))).toBe('UNSUPPORTED');
        expect((await r.headManifest(name, 'a'))?.digest).toBe(image.manifest.digest);
      },
    );

    test(
      'a sparse index: accepted with a child absent, served with the same bytes and digest',
      ['sparseIndex'],
      async () => {
        const r = registry();
        const name = repo();
        const index = randomIndex({ platforms: ['linux/amd64', 'linux/arm64', 'linux/arm/v7'] });
        const [present, ...absent] = index.images;
        await pushImage(r, name, present!);
        const put = manifestBody(index.index);
        expect(await codeOf(r.putManifest(name, 'sparse', put))).toBe('MANIFEST_BLOB_UNKNOWN');
        expect(await r.headManifest(name, 'sparse')).toBeUndefined();
        const result = await r.putManifest(name, 'sparse', { ...put, sparse: true });
        expect(result.digest).toBe(index.index.digest);
        for (const reference of ['sparse', index.index.digest]) {
          const got = await r.getManifest(name, reference);
          expect(got.digest).toBe(index.index.digest);
          expect(got.mediaType).toBe(index.index.mediaType);
          expect(Buffer.from(got.bytes).equals(Buffer.from(index.index.bytes))).toBe(true);
        }
        for (const child of absent) expect(await r.headManifest(name, child.manifest.digest)).toBeUndefined();
        expect((await r.getManifest(name, present!.manifest.digest)).digest).toBe(present!.manifest.digest);
      },
    );

    test('a sparse push still needs the blobs of an image manifest', ['sparseIndex'], async () => {
      const r = registry();
      const name = repo();
      const image = randomImage({ layers: 2 });
      await r.putBlob(name, image.config.bytes, { digest: image.config.descriptor.digest });
      expect(await codeOf(r.putManifest(name, 'v1', manifestBody(image.manifest, { sparse: true })))).toBe(
        'MANIFEST_BLOB_UNKNOWN',
      );
      expect(await r.headManifest(name, 'v1')).toBeUndefined();
    });

    test(
      'a store without sparse indexes refuses a sparse push with UNSUPPORTED and stores nothing',
      ['!sparseIndex'],
      async () => {
        const r = registry();
        const name = repo();
        const index = randomIndex();
        await pushImage(r, name, index.images[0]!);
        expect(await codeOf(r.putManifest(name, 'sparse', manifestBody(index.index, { sparse: true })))).toBe(
          'UNSUPPORTED',
        );
        expect(await r.headManifest(name, 'sparse')).toBeUndefined();
        expect(await r.headManifest(name, index.index.digest)).toBeUndefined();
      },
    );
  });
}
