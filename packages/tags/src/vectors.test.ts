// Every test vector and worked example of the werf part of the format spec
// (formats-werf-and-containers-storage.md, part A).
import { describe, expect, it } from 'vitest';
import {
  computeStageDigest,
  customTagMetaId,
  dockerTag,
  encodeCustomTagMetaTag,
  encodeImportMetadataTag,
  encodeManagedImageTag,
  encodeMetaTag,
  encodeRejectedTag,
  encodeStageTag,
  imageMetadataId,
  importSourceId,
  legacyMurmurHash,
  limitedSlug,
  multiplatformStageDigest,
  parseClientIdTag,
  parseStageTag,
  sha3_224Hash,
  sha256Hash,
  slugify,
} from './index.js';

describe('A.2 hash primitives', () => {
  it('sanity values', () => {
    expect(sha3_224Hash('')).toBe('6b4e03423667dbb73b6e15454f0eb1abd4597f9a1b078e3f5b5a6bc7');
    expect(legacyMurmurHash('backend')).toBe('27dba8ed');
    expect(legacyMurmurHash('')).toBe('0');
    expect(legacyMurmurHash('da/ta')).toBe('afa96f8');
  });
});

describe('A.7.6 slug vectors', () => {
  it.each<[string, number, string]>([
    ['A', 42, 'a-54dcf7ce'],
    ['x'.repeat(43), 42, `${'x'.repeat(33)}-27e2f02f`],
    [
      'postgres-feature-31981-change-delivery-date-del-result',
      48,
      'postgres-feature-31981-change-delivery--852739dc',
    ],
    ['php_fpm_exporter-monitoring-dev-encrypt-1', 48, 'php-fpm-exporter-monitoring-dev-encrypt--83286e5'],
  ])('LimitedSlug(%j, %d)', (input, max, output) => {
    expect(limitedSlug(input, max)).toBe(output);
  });

  it.each<[string, string]>([
    ['-data', 'data-a871d86e'],
    ['da/ta', 'da-ta-afa96f8'],
    ['x'.repeat(129), `${'x'.repeat(119)}-8cca70eb`],
  ])('DockerTag(%j)', (input, output) => {
    expect(dockerTag(input)).toBe(output);
  });
});

describe('A.13 worked examples', () => {
  const stageDigest = '7d391a82ee3f0e574361c594fe737dc6db627be9667a470ab7581da7';
  const commit = '0123456789abcdef0123456789abcdef01234567';
  const multiplatform = '1bd30981b9640a88428f82aee3ff4f45099ba3ef12aa9ca42c19b8f0';

  it('1. stage digest, tag, arm64 digest and rejected record', () => {
    expect(computeStageDigest({ stageName: 'from', dependencies: 'alpine:3.20' })).toBe(stageDigest);
    expect(
      computeStageDigest({ stageName: 'from', dependencies: 'alpine:3.20', targetPlatform: 'linux/amd64' }),
    ).toBe(stageDigest);
    const tag = encodeStageTag({ digest: stageDigest, creationTs: 1700000000123 });
    expect(tag).toBe(`${stageDigest}-1700000000123`);
    expect(tag).toHaveLength(70);
    expect(parseStageTag(tag)).toEqual({ digest: stageDigest, creationTs: 1700000000123 });
    expect(
      computeStageDigest({ stageName: 'from', dependencies: 'alpine:3.20', targetPlatform: 'linux/arm64' }),
    ).toBe('6f093dd8c05f50597704d1fdde154733f47835782a027626fdccab01');
    expect(encodeRejectedTag({ digest: stageDigest, creationTs: 1700000000123 })).toBe(`${tag}-rejected`);
  });

  it('2. multiplatform tag', () => {
    const digest = multiplatformStageDigest([
      {
        platform: 'linux/arm64',
        stageId: '8ec94b5ae7bae885e5b1fdeaa6fc2ca2af27febfdb7cdfaa6745fd52-1700000000002',
      },
      {
        platform: 'linux/amd64',
        stageId: '9e86ff69557ca95f405f081269685b38e3a819b309ee942f482b6a8b-1700000000001',
      },
    ]);
    expect(digest).toBe(multiplatform);
    expect(encodeStageTag({ digest, creationTs: 0 })).toBe(multiplatform);
    expect(parseStageTag(multiplatform)).toEqual({ digest: multiplatform, creationTs: 0 });
  });

  it.each<[string, string, string]>([
    ['backend', 'managed-image-backend', '27dba8ed'],
    ['frontend/app', 'managed-image-frontend__slash__app', 'a5320b24'],
    ['my image+x', 'managed-image-my__space__image__plus__x', '338c72b4'],
    ['', 'managed-image-__nameless__', '0'],
    ['Backend.v2', 'managed-image-Backend.v2', 'f8b8c321'],
    ['ы', 'managed-image-y-85e9f398', '10724d5b'],
    ['a'.repeat(130), `managed-image-${'a'.repeat(105)}-c47af090`, 'edc0bccb'],
  ])('3. managed-image %j', (name, tag, metaId) => {
    expect(encodeManagedImageTag(name)).toBe(tag);
    expect(imageMetadataId(name)).toBe(metaId);
  });

  it('3. a 130-character name gives a tag of exactly 128; 120 characters overflow as in werf', () => {
    expect(encodeManagedImageTag('a'.repeat(130))).toHaveLength(128);
    expect(encodeManagedImageTag('a'.repeat(120))).toBe(`managed-image-${'a'.repeat(120)}`);
    expect(encodeManagedImageTag('a'.repeat(120))).toHaveLength(134);
  });

  it('4. meta tags', () => {
    expect(encodeMetaTag({ imageName: 'backend', commit, stageId: `${stageDigest}-1700000000123` })).toBe(
      `meta-27dba8ed_${commit}_${stageDigest}-1700000000123`,
    );
    expect(encodeMetaTag({ imageName: 'frontend/app', commit, stageId: multiplatform })).toBe(
      `meta-a5320b24_${commit}_${multiplatform}`,
    );
  });

  it.each<[string, string]>([
    ['main', 'custom-tag-meta-main'],
    ['release-2024-01-01', 'custom-tag-meta-release-2024-01-01'],
    ['v1.2.3', 'custom-tag-meta-v1-2-3-cce060b5'],
    ['feature_ABC', 'custom-tag-meta-feature-abc-b11788c3'],
    [`Very/Long:tag${'x'.repeat(60)}`, 'custom-tag-meta-very-long-tagxxxxxxxxxxxxxxxxxxxxxxxxxx-e8036f88'],
    [
      'postgres-feature-31981-change-delivery-date-del-result',
      'custom-tag-meta-postgres-feature-31981-change-delivery--852739dc',
    ],
  ])('5. custom-tag-meta %j', (tag, record) => {
    expect(encodeCustomTagMetaTag(tag)).toBe(record);
  });

  it('5. custom-tag-meta slugs are at most 48 bytes and LimitedSlug is idempotent on v1-2-3-cce060b5', () => {
    expect(customTagMetaId(`Very/Long:tag${'x'.repeat(60)}`)).toHaveLength(48);
    expect(limitedSlug('v1-2-3-cce060b5', 48)).toBe('v1-2-3-cce060b5');
  });

  it('6. import-metadata', () => {
    const id = importSourceId({
      sourceImageContentDigest: stageDigest,
      add: '/app',
      includePaths: [],
      excludePaths: [],
    });
    expect(encodeImportMetadataTag(id)).toBe(
      'import-metadata-3eb93ace11926614557246024803002ff4e7aea519969acaa7572ef30ed5fd35',
    );
    expect(encodeImportMetadataTag(id)).toHaveLength(80);
  });

  it('7. client-id parse', () => {
    expect(parseClientIdTag('client-id-6f1c2a4e-1b7d-4c1e-9a51-0d7f3d1e2b9a-3400000000246')).toEqual({
      clientId: '6f1c2a4e-1b7d-4c1e-9a51-0d7f3d1e2b9a',
      timestampMs: 3400000000246,
    });
  });

  it('8. manifest cache path parts', () => {
    expect(slugify('registry.example.com/group/project')).toBe('registry-example-com-group-project');
    expect(sha256Hash(`registry.example.com/group/project:${stageDigest}-1700000000123`)).toBe(
      '599ef33078c7ea83d8e9a7af575eabf3d5406d1853b43f66418fc7d991ec330f',
    );
    expect(slugify(':local')).toBe('local');
    expect(sha256Hash(`myproject:${stageDigest}-1700000000123`)).toBe(
      '5260630aa30af00a09e66c5b680c8cf2efd53025aa9f204686cbd9bce07fdec0',
    );
  });
});
