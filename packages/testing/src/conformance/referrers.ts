import { MediaType } from '@stowage/oci';
import { pushImage, randomArtifact, randomImage } from '../random.js';
import { type Conformance, codeOf, manifestBody } from './suite.js';

/** Referrers: manifests with a `subject`, listed by the API or through the tag schema. */
export function referrerCases(c: Conformance): void {
  const { describe, expect, test, registry, repo } = c;
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
      const result = await r.putManifest(name, artifact.manifest.digest, manifestBody(artifact.manifest));
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
    test(
      'the tag schema: a referrer is listed under the sha256-<hex> tag of its subject',
      ['referrers=tag-schema'],
      async () => {
        const r = registry();
        const name = repo();
        const image = randomImage();
        await pushImage(r, name, image, 'v1');
        await pushImage(
          r,
          name,
          randomArtifact({ subject: image.descriptor, artifactType: 'application/vnd.example.t' }),
        );
        const tag = image.manifest.digest.replace(':', '-');
        expect((await r.listTags(name)).items).toContain(tag);
        expect((await r.listReferrers(name, image.manifest.digest)).manifests).toHaveLength(1);
      },
    );

    test('a store without referrers refuses to list them with UNSUPPORTED', ['!referrers'], async () => {
      const r = registry();
      const name = repo();
      const image = randomImage();
      await pushImage(r, name, image, 'v1');
      expect(await codeOf(r.listReferrers(name, image.manifest.digest))).toBe('UNSUPPORTED');
    });
  });
}
