import { digestOf } from '@stowage/oci';
import { collect, pushImage, randomBlob, randomImage } from '../random.js';
import { type Conformance, chunked, manifestBody } from './suite.js';

/** Concurrent pushes of the same content, to the same tags, through different sessions. */
export function concurrencyCases(c: Conformance): void {
  const { describe, expect, test, registry, repo, sessions } = c;
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
      for (const result of results) expect(result).toEqual({ digest: blob.descriptor.digest, size: 50_000 });
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
          return r.putManifest(name, `t${i}`, manifestBody(image.manifest));
        }),
      );
      await Promise.all(images.map((image) => r.putManifest(name, 'same', manifestBody(image.manifest))));
      const tags = (await r.listTags(name)).items;
      expect(tags).toHaveLength(21);
      const same = await r.headManifest(name, 'same');
      expect(images.map((i) => i.manifest.digest)).toContain(same?.digest);
    });

    test('concurrent chunked uploads to different sessions', ['uploadSessions'], async () => {
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
}
