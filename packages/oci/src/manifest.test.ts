import { describe, expect, it } from 'vitest';
import { digestOf } from './digest.js';
import { isStowageError } from './errors.js';
import { detectManifestMediaType, manifestReferences, parseImageConfig, parseManifest } from './manifest.js';
import { MediaType } from './media-types.js';

const enc = (value: unknown) =>
  new TextEncoder().encode(typeof value === 'string' ? value : JSON.stringify(value));
const d = (s: string) => digestOf(s);
const config = { mediaType: MediaType.OciConfig, digest: d('config'), size: 6 };
const layer = { mediaType: MediaType.OciLayerGzip, digest: d('layer'), size: 5 };
const ociManifest = { schemaVersion: 2, mediaType: MediaType.OciManifest, config, layers: [layer] };

function code(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (error) {
    if (!isStowageError(error)) throw error;
    return error.code;
  }
  return undefined;
}

describe('parseManifest', () => {
  it('parses an OCI image manifest and digests the raw bytes', () => {
    const text = `{ "schemaVersion": 2,\n "mediaType": "${MediaType.OciManifest}", "config": ${JSON.stringify(config)}, "layers": [${JSON.stringify(layer)}] }`;
    const parsed = parseManifest(enc(text));
    expect(parsed.kind).toBe('image');
    expect(parsed.mediaType).toBe(MediaType.OciManifest);
    expect(parsed.digest).toBe(digestOf(text));
    expect(parsed.size).toBe(enc(text).byteLength);
    expect(manifestReferences(parsed)).toEqual({
      blobs: [config, layer],
      nonDistributable: [],
      manifests: [],
    });
  });

  it('takes the media type from Content-Type when the body has none (OCI)', () => {
    const { mediaType: _, ...bare } = ociManifest;
    expect(parseManifest(enc(bare), { mediaType: MediaType.OciManifest }).mediaType).toBe(
      MediaType.OciManifest,
    );
    expect(parseManifest(enc(bare)).mediaType).toBe(MediaType.OciManifest);
    expect(parseManifest(enc(bare), { mediaType: 'application/json' }).mediaType).toBe(MediaType.OciManifest);
  });

  it('parses Docker schema 2 manifests and manifest lists', () => {
    const docker = {
      schemaVersion: 2,
      mediaType: MediaType.DockerManifest,
      config: { ...config, mediaType: MediaType.DockerConfig },
      layers: [{ ...layer, mediaType: MediaType.DockerLayerGzip }],
    };
    expect(parseManifest(enc(docker), { mediaType: MediaType.DockerManifest }).kind).toBe('image');
    const list = {
      schemaVersion: 2,
      mediaType: MediaType.DockerManifestList,
      manifests: [
        {
          mediaType: MediaType.DockerManifest,
          digest: d('m'),
          size: 10,
          platform: { os: 'linux', architecture: 'amd64' },
        },
      ],
    };
    const parsed = parseManifest(enc(list));
    expect(parsed.kind).toBe('index');
    expect(manifestReferences(parsed).manifests).toHaveLength(1);
  });

  it('requires the mediaType field in Docker formats', () => {
    const { mediaType: _, ...bare } = ociManifest;
    expect(code(() => parseManifest(enc(bare), { mediaType: MediaType.DockerManifest }))).toBe(
      'MANIFEST_INVALID',
    );
  });

  it('parses an OCI index with nested index, subject and artifactType', () => {
    const index = {
      schemaVersion: 2,
      mediaType: MediaType.OciIndex,
      artifactType: 'application/vnd.example+type',
      manifests: [
        {
          mediaType: MediaType.OciManifest,
          digest: d('a'),
          size: 1,
          platform: { os: 'linux', architecture: 'arm64', variant: 'v8' },
        },
        { mediaType: MediaType.OciIndex, digest: d('b'), size: 2 },
      ],
      subject: { mediaType: MediaType.OciManifest, digest: d('s'), size: 3 },
    };
    const parsed = parseManifest(enc(index), { mediaType: `${MediaType.OciIndex}; charset=utf-8` });
    expect(parsed.kind).toBe('index');
    expect(manifestReferences(parsed).subject?.digest).toBe(d('s'));
  });

  it('leaves non-distributable layers with urls out of the blobs a registry must hold', () => {
    const foreign = {
      mediaType: MediaType.DockerForeignLayer,
      digest: d('f'),
      size: 9,
      urls: ['https://example.com/f'],
    };
    const parsed = parseManifest(enc({ ...ociManifest, layers: [layer, foreign] }));
    expect(manifestReferences(parsed).blobs).toEqual([config, layer]);
    expect(manifestReferences(parsed).nonDistributable).toEqual([foreign]);
  });

  it('tells non-distributable layers by media type alone, with or without urls', () => {
    const bare = { mediaType: MediaType.OciLayerNonDistributableGzip, digest: d('n'), size: 4 };
    const zstd = {
      mediaType: MediaType.OciLayerNonDistributableZstd,
      digest: d('z'),
      size: 4,
      urls: ['https://example.com/z'],
    };
    const foreign = { mediaType: MediaType.DockerForeignLayer, digest: d('f'), size: 9 };
    const second = { ...layer, digest: d('layer2') };
    const parsed = parseManifest(enc({ ...ociManifest, layers: [bare, layer, zstd, foreign, second] }));
    const references = manifestReferences(parsed);
    expect(references.blobs).toEqual([config, layer, second]);
    expect(references.nonDistributable).toEqual([bare, zstd, foreign]);
    // a layer with urls but a distributable media type is still one the registry must hold
    const hinted = { ...layer, urls: ['https://example.com/l'] };
    const withUrls = manifestReferences(parseManifest(enc({ ...ociManifest, layers: [hinted] })));
    expect(withUrls.blobs).toEqual([config, hinted]);
    expect(withUrls.nonDistributable).toEqual([]);
  });

  it('gives an index no blobs and no non-distributable layers', () => {
    const index = { schemaVersion: 2, mediaType: MediaType.OciIndex, manifests: [] };
    expect(manifestReferences(parseManifest(enc(index)))).toEqual({
      blobs: [],
      nonDistributable: [],
      manifests: [],
    });
  });

  it('accepts an artifact manifest with empty layers and an empty config', () => {
    const artifact = {
      schemaVersion: 2,
      mediaType: MediaType.OciManifest,
      artifactType: 'application/vnd.example.sbom',
      config: { mediaType: MediaType.OciEmpty, digest: d('{}'), size: 2, data: 'e30=' },
      layers: [],
      subject: { mediaType: MediaType.OciManifest, digest: d('s'), size: 3 },
      annotations: { 'org.opencontainers.image.created': '2024-01-01T00:00:00Z' },
    };
    expect(parseManifest(enc(artifact)).kind).toBe('image');
  });

  it('verifies an expected digest, in its own algorithm', () => {
    const bytes = enc(ociManifest);
    expect(parseManifest(bytes, { digest: digestOf(bytes, 'sha512') }).digest).toBe(
      digestOf(bytes, 'sha512'),
    );
    expect(code(() => parseManifest(bytes, { digest: d('other') }))).toBe('DIGEST_INVALID');
  });

  it.each<[string, unknown, string, string?]>([
    ['non-JSON', 'not json', 'MANIFEST_INVALID'],
    ['invalid UTF-8', new Uint8Array([0x7b, 0xff, 0x7d]), 'MANIFEST_INVALID'],
    ['an array', [], 'MANIFEST_INVALID'],
    ['null', 'null', 'MANIFEST_INVALID'],
    ['schemaVersion 3', { ...ociManifest, schemaVersion: 3 }, 'MANIFEST_INVALID'],
    ['schemaVersion "2"', { ...ociManifest, schemaVersion: '2' }, 'MANIFEST_INVALID'],
    ['schema 1 by version', { schemaVersion: 1, name: 'x', tag: 'y', fsLayers: [] }, 'UNSUPPORTED'],
    [
      'schema 1 by body mediaType',
      { ...ociManifest, mediaType: MediaType.DockerSchema1SignedManifest },
      'UNSUPPORTED',
    ],
    ['schema 1 by content type', ociManifest, 'UNSUPPORTED', MediaType.DockerSchema1SignedManifest],
    ['mismatched media types', ociManifest, 'MANIFEST_INVALID', MediaType.DockerManifest],
    [
      'index body as a manifest',
      { schemaVersion: 2, manifests: [] },
      'MANIFEST_INVALID',
      MediaType.OciManifest,
    ],
    ['manifest with manifests', { ...ociManifest, manifests: [] }, 'MANIFEST_INVALID'],
    ['unknown media type', { ...ociManifest, mediaType: 'application/vnd.acme+json' }, 'MANIFEST_INVALID'],
    [
      'missing config',
      { schemaVersion: 2, mediaType: MediaType.OciManifest, layers: [] },
      'MANIFEST_INVALID',
    ],
    ['layers not an array', { ...ociManifest, layers: {} }, 'MANIFEST_INVALID'],
    [
      'bad layer digest',
      { ...ociManifest, layers: [{ ...layer, digest: 'sha256:abc' }] },
      'MANIFEST_INVALID',
    ],
    [
      'sha384 digest',
      { ...ociManifest, layers: [{ ...layer, digest: `sha384:${'a'.repeat(96)}` }] },
      'MANIFEST_INVALID',
    ],
    ['negative size', { ...ociManifest, config: { ...config, size: -1 } }, 'MANIFEST_INVALID'],
    ['fractional size', { ...ociManifest, config: { ...config, size: 1.5 } }, 'MANIFEST_INVALID'],
    ['string size', { ...ociManifest, config: { ...config, size: '6' } }, 'MANIFEST_INVALID'],
    [
      'bad descriptor media type',
      { ...ociManifest, config: { ...config, mediaType: 'nope' } },
      'MANIFEST_INVALID',
    ],
    ['non-string annotation', { ...ociManifest, annotations: { a: 1 } }, 'MANIFEST_INVALID'],
    ['bad urls', { ...ociManifest, layers: [{ ...layer, urls: [1] }] }, 'MANIFEST_INVALID'],
    ['bad subject', { ...ociManifest, subject: { digest: 'x' } }, 'MANIFEST_INVALID'],
    ['bad artifactType', { ...ociManifest, artifactType: 'not a type' }, 'MANIFEST_INVALID'],
    ['data not matching', { ...ociManifest, config: { ...config, data: 'e30=' } }, 'MANIFEST_INVALID'],
    ['data not base64', { ...ociManifest, config: { ...config, data: '!!' } }, 'MANIFEST_INVALID'],
    [
      'platform without os',
      {
        schemaVersion: 2,
        mediaType: MediaType.OciIndex,
        manifests: [{ ...config, mediaType: MediaType.OciManifest, platform: { architecture: 'amd64' } }],
      },
      'MANIFEST_INVALID',
    ],
    [
      'list child that is a layer',
      { schemaVersion: 2, mediaType: MediaType.DockerManifestList, manifests: [layer] },
      'MANIFEST_INVALID',
    ],
    [
      'index with layers',
      { schemaVersion: 2, mediaType: MediaType.OciIndex, manifests: [], layers: [] },
      'MANIFEST_INVALID',
    ],
    [
      'docker manifest without layers',
      { ...ociManifest, mediaType: MediaType.DockerManifest, layers: [] },
      'MANIFEST_INVALID',
    ],
  ])('refuses %s', (_name, body, expected, contentType) => {
    const bytes = body instanceof Uint8Array ? body : enc(body);
    expect(code(() => parseManifest(bytes, contentType ? { mediaType: contentType } : {}))).toBe(expected);
  });

  it('enforces the size limit before parsing', () => {
    const big = enc({ ...ociManifest, annotations: { pad: 'x'.repeat(4 * 1024 * 1024) } });
    expect(code(() => parseManifest(big))).toBe('SIZE_INVALID');
    expect(code(() => parseManifest(enc(ociManifest), { maxSize: 10 }))).toBe('SIZE_INVALID');
  });
});

describe('detectManifestMediaType', () => {
  it('reads the field or infers from shape', () => {
    expect(detectManifestMediaType({ mediaType: MediaType.DockerManifest })).toBe(MediaType.DockerManifest);
    expect(detectManifestMediaType({ manifests: [] })).toBe(MediaType.OciIndex);
    expect(detectManifestMediaType({ config: {} })).toBe(MediaType.OciManifest);
    expect(detectManifestMediaType({ schemaVersion: 1 })).toBe(MediaType.DockerSchema1Manifest);
    expect(detectManifestMediaType({})).toBeUndefined();
    expect(detectManifestMediaType('x')).toBeUndefined();
  });
});

describe('parseImageConfig', () => {
  it('parses a minimal config', () => {
    const cfg = parseImageConfig(
      enc({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [d('x')] } }),
    );
    expect(cfg.os).toBe('linux');
  });

  it.each([
    ['not json', '{'],
    ['no os', { architecture: 'amd64', rootfs: { type: 'layers', diff_ids: [] } }],
    ['bad rootfs', { architecture: 'amd64', os: 'linux', rootfs: { type: 'x', diff_ids: [] } }],
    ['bad diff id', { architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: ['x'] } }],
  ])('refuses %s', (_name, body) => {
    expect(code(() => parseImageConfig(enc(body)))).toBe('MANIFEST_INVALID');
  });
});
