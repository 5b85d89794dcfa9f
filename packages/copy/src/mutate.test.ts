import { digestOf, MediaType, parseManifest, type Registry, readBlobBytes } from '@stowage/oci';
import {
  createMemoryRegistry,
  pushImage,
  pushIndex,
  randomArtifact,
  randomImage,
  randomIndex,
} from '@stowage/testing';
import { describe, expect, it } from 'vitest';
import { mutateImage } from './index.js';

const decoder = new TextDecoder();

async function manifestJson(registry: Registry, repository: string, reference: string) {
  const content = await registry.getManifest(repository, reference);
  return { content, json: JSON.parse(decoder.decode(content.bytes)) };
}

async function labelsOf(registry: Registry, repository: string, reference: string) {
  const { content } = await manifestJson(registry, repository, reference);
  const parsed = parseManifest(content.bytes, { mediaType: content.mediaType });
  if (parsed.kind !== 'image') throw new Error('not an image');
  const config = JSON.parse(
    decoder.decode(await readBlobBytes(registry, repository, parsed.manifest.config.digest)),
  );
  return config.config?.Labels;
}

describe('mutateImage', () => {
  it('sets and removes labels and annotations of an image, pushing by digest unless given a tag', async () => {
    const registry = createMemoryRegistry();
    const image = randomImage({ annotations: { keep: 'yes', drop: 'me' } });
    const source = await pushImage(registry, 'app', image, 'v1');
    const seed = (await labelsOf(registry, 'app', 'v1'))['stowage.test.seed'];

    const result = await mutateImage(
      { registry, repository: 'app', reference: 'v1' },
      { labels: { team: 'core', 'stowage.test.seed': null }, annotations: { added: '1', drop: null } },
    );
    expect(result.sourceDigest).toBe(source);
    expect(result.digest).not.toBe(source);
    expect(result.tag).toBeUndefined();
    // the tag still names the original; the result is there by digest
    expect((await registry.getManifest('app', 'v1')).digest).toBe(source);
    const { content, json } = await manifestJson(registry, 'app', result.digest);
    expect(content.digest).toBe(result.digest);
    expect(digestOf(content.bytes)).toBe(result.digest);
    expect(json.annotations).toEqual({ keep: 'yes', added: '1' });
    expect(json.layers).toEqual(JSON.parse(decoder.decode(image.manifest.bytes)).layers);
    expect(await labelsOf(registry, 'app', result.digest)).toEqual({ team: 'core' });
    expect(seed).toBeDefined();

    const tagged = await mutateImage(
      { registry, repository: 'app', reference: result.digest },
      { labels: { team: null }, tag: 'v2' },
    );
    expect(tagged.tag).toBe('v2');
    expect((await registry.getManifest('app', 'v2')).digest).toBe(tagged.digest);
    // the last label removed: no Labels member at all
    expect(await labelsOf(registry, 'app', 'v2')).toBeUndefined();
  });

  it('labels every image of an index, updates attestation pointers and keeps the index media type', async () => {
    const registry = createMemoryRegistry();
    const index = randomIndex({ format: 'docker' });
    await pushIndex(registry, 'multi', index, 'v1');
    const result = await mutateImage(
      { registry, repository: 'multi', reference: 'v1' },
      { labels: { team: 'core' }, annotations: { 'org.example': 'x' }, tag: 'v1' },
    );
    expect(result.mediaType).toBe(MediaType.DockerManifestList);
    expect(result.children.map((c) => c.sourceDigest)).toEqual(index.images.map((i) => i.manifest.digest));
    const { json } = await manifestJson(registry, 'multi', 'v1');
    expect(json.annotations).toEqual({ 'org.example': 'x' });
    expect(json.manifests.map((d: { digest: string }) => d.digest)).toEqual(
      result.children.map((c) => c.digest),
    );
    expect(json.manifests.map((d: { platform: unknown }) => d.platform)).toEqual(
      index.images.map((i) => i.descriptor.platform),
    );
    for (const child of result.children) {
      expect((await labelsOf(registry, 'multi', child.digest)).team).toBe('core');
    }
  });

  it('leaves attestation children alone but points them at the relabelled image', async () => {
    const registry = createMemoryRegistry();
    const image = randomImage();
    await pushImage(registry, 'att', image);
    const attestation = randomArtifact({
      subject: image.descriptor,
      artifactType: 'application/vnd.in-toto+json',
    });
    await pushImage(registry, 'att', attestation);
    const bytes = new TextEncoder().encode(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: MediaType.OciIndex,
        manifests: [
          image.descriptor,
          {
            ...attestation.descriptor,
            platform: { os: 'unknown', architecture: 'unknown' },
            annotations: {
              'vnd.docker.reference.type': 'attestation-manifest',
              'vnd.docker.reference.digest': image.manifest.digest,
            },
          },
        ],
      }),
    );
    await registry.putManifest('att', 'v1', { bytes, mediaType: MediaType.OciIndex });
    const result = await mutateImage(
      { registry, repository: 'att', reference: 'v1' },
      { labels: { a: 'b' } },
    );
    const { json } = await manifestJson(registry, 'att', result.digest);
    expect(result.children).toHaveLength(1);
    expect(json.manifests[0].digest).toBe(result.children[0]?.digest);
    expect(json.manifests[1].digest).toBe(attestation.manifest.digest);
    expect(json.manifests[1].annotations['vnd.docker.reference.digest']).toBe(result.children[0]?.digest);
  });

  it('with nothing to change, moves the tag to the same bytes', async () => {
    const registry = createMemoryRegistry();
    const image = randomImage();
    const digest = await pushImage(registry, 'same', image, 'v1');
    const result = await mutateImage(
      { registry, repository: 'same', reference: 'v1' },
      { labels: {}, tag: 'v2' },
    );
    expect(result.digest).toBe(digest);
    expect((await registry.getManifest('same', 'v2')).digest).toBe(digest);
  });

  it('refuses to label an artifact whose config is not an image config', async () => {
    const registry = createMemoryRegistry();
    const subject = randomImage();
    await pushImage(registry, 'art', subject);
    const artifact = randomArtifact({ subject: subject.descriptor, artifactType: 'application/example' });
    await pushImage(registry, 'art', artifact, 'sig');
    await expect(
      mutateImage({ registry, repository: 'art', reference: 'sig' }, { labels: { a: 'b' } }),
    ).rejects.toMatchObject({ code: 'UNSUPPORTED_MANIFEST' });
    // annotations of an artifact are fine
    const annotated = await mutateImage(
      { registry, repository: 'art', reference: 'sig' },
      { annotations: { note: 'n' } },
    );
    expect((await manifestJson(registry, 'art', annotated.digest)).json.annotations).toEqual({ note: 'n' });
  });
});
