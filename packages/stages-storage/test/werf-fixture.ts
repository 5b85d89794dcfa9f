// A repository populated the way werf v2 populates one (spec A.3–A.8), written
// by hand from the spec and independent of the package's writers, so that it
// checks them: stages with the service labels of A.8.2 (current and
// pre-v2.34.1), a multiplatform manifest list under the bare digest, every
// record kind of A.5 in both placeholder-layer variants of A.6 (with old and
// new label variants), rejected stages, and junk tags werf skips. Tags,
// digests and IDs are the worked examples of spec A.13.
import type { Registry } from '@stowage/oci';
import {
  type BuiltImage,
  type BuiltIndex,
  buildManifestList,
  buildRecordImage,
  buildStageImage,
  pushBuilt,
  pushBuiltIndex,
  type RecordLayer,
} from './images.js';

/** Spec A.13 ex. 1: `from` with `alpine:3.20`, amd64. */
export const DIGEST_AMD64 = '7d391a82ee3f0e574361c594fe737dc6db627be9667a470ab7581da7';
/** Spec A.13 ex. 1: the same stage for linux/arm64. */
export const DIGEST_ARM64 = '6f093dd8c05f50597704d1fdde154733f47835782a027626fdccab01';
/** Spec A.13 ex. 2: the per-platform stage IDs of a multiplatform image (sorted amd64 < arm64) and its tag. */
export const MP_CHILD_AMD64 = '9e86ff69557ca95f405f081269685b38e3a819b309ee942f482b6a8b-1700000000001';
export const MP_CHILD_ARM64 = '8ec94b5ae7bae885e5b1fdeaa6fc2ca2af27febfdb7cdfaa6745fd52-1700000000002';
export const MP_DIGEST = '1bd30981b9640a88428f82aee3ff4f45099ba3ef12aa9ca42c19b8f0';
/** Spec A.13 ex. 4. */
export const COMMIT = '0123456789abcdef0123456789abcdef01234567';
export const COMMIT_2 = '89abcdef0123456789abcdef0123456789abcdef';
/** Spec A.13 ex. 6. */
export const IMPORT_ID = '3eb93ace11926614557246024803002ff4e7aea519969acaa7572ef30ed5fd35';
/** An import record written by werf < v2.23 (label `source-image-id`). */
export const IMPORT_ID_OLD = '4f'.repeat(32);
/** Spec A.13 ex. 7. */
export const CLIENT_ID = '6f1c2a4e-1b7d-4c1e-9a51-0d7f3d1e2b9a';
export const CLIENT_ID_2 = 'b7e1d3c2-0a9f-4e8d-8c7b-6a5f4e3d2c1b';

/** The stage tags of the fixture. */
export const STAGE = {
  /** current labels; rejected */
  rejected: `${DIGEST_AMD64}-1700000000123`,
  /** pre-v2.34.1 labels; the stage the records point at */
  old: `${DIGEST_AMD64}-1700000000456`,
  /** current labels, OCI manifest, parent `old` */
  arm: `${DIGEST_ARM64}-1700000000789`,
  /** same creationTs as the rejected amd64 stage: werf's by-digest quirk drops it (spec A.5.6) */
  armQuirk: `${DIGEST_ARM64}-1700000000123`,
  mpAmd64: MP_CHILD_AMD64,
  mpArm64: MP_CHILD_ARM64,
} as const;

/** Tags werf's readers skip (and one 56-char tag werf's listing takes for a multiplatform stage). */
export const JUNK_TAGS = [
  'latest',
  `${'c'.repeat(27)}-${'d'.repeat(28)}`, // 56 chars with a dash
  `${'e'.repeat(40)}-1700000000-123456789`, // 70 chars, two dashes
  `${'f'.repeat(56)}-abcdefghijklm`, // 70 chars, one dash, tail not a number
  'meta-bad',
  'meta-x_y',
  'meta-a_b_c_d',
  'client-id-x',
  'client-id-abc-12x',
  'zzz-rejected',
  'cleanup-junk',
] as const;
/** A user tag of 56 chars without a dash: werf's stage listing takes it for a multiplatform stage (spec A.4.3). */
export const QUIRK_MP_TAG = 'a'.repeat(56);

export const MANAGED = {
  backend: 'managed-image-backend',
  'frontend/app': 'managed-image-frontend__slash__app',
  'my image+x': 'managed-image-my__space__image__plus__x',
  '': 'managed-image-__nameless__',
  'Backend.v2': 'managed-image-Backend.v2',
  /** `ы`: not a valid tag, LimitedSlug(…, 114) */
  ы: 'managed-image-y-85e9f398',
  /** `a`×130: LimitedSlug to exactly 128 */
  [`${'a'.repeat(130)}`]: `managed-image-${'a'.repeat(105)}-c47af090`,
} as const;

export interface WerfFixture {
  readonly stages: Readonly<Record<keyof typeof STAGE, BuiltImage>>;
  readonly multiplatform: BuiltIndex;
  /** Every tag written. */
  readonly tags: readonly string[];
}

export interface WriteWerfFixtureOptions {
  readonly registry: Registry;
  readonly repository: string;
  /** The werf project name (label `werf`). */
  readonly project: string;
}

/** Writes the fixture into `repository` of `registry`. */
export async function writeWerfFixture(options: WriteWerfFixtureOptions): Promise<WerfFixture> {
  const { registry, repository, project } = options;
  const tags: string[] = [];
  const put = async (image: BuiltImage, tag: string) => {
    await pushBuilt(registry, repository, image, tag);
    tags.push(tag);
  };
  const record = async (tag: string, labels: Record<string, string>, layer: RecordLayer) =>
    await put(buildRecordImage({ werf: project, ...labels }, layer), tag);

  const current = (digest: string, extra: Record<string, string> = {}) => ({
    werf: project,
    'werf-version': 'v2.77.1',
    'werf-stage-content-digest': `${digest.slice(0, 40)}${'0'.repeat(16)}`,
    'werf-project-repo-commit': COMMIT,
    ...extra,
  });
  const stages = {
    rejected: buildStageImage({
      labels: current(DIGEST_AMD64),
      env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'],
      created: '2023-11-14T22:13:20.123Z',
    }),
    old: buildStageImage({
      // werf before v2.34.1 also wrote werf-cache-version, werf-image and werf-stage-digest
      labels: {
        werf: project,
        'werf-version': 'v2.30.0',
        'werf-stage-content-digest': `${DIGEST_AMD64.slice(0, 40)}${'1'.repeat(16)}`,
        'werf-cache-version': '1.2',
        'werf-image': 'false',
        'werf-stage-digest': DIGEST_AMD64,
        'werf.io/parent-stage-id': `${'9'.repeat(56)}-1699999999999`,
        'werf.io/base-image-id': `sha256:${'b'.repeat(64)}`,
      },
      env: ['PATH=/usr/bin:/bin', 'HOME=/root'],
      onBuild: ['RUN echo hi'],
      volumes: { '/var/lib/data': {} },
      created: '2023-11-14T22:13:20.456789Z',
    }),
    arm: buildStageImage({
      labels: current(DIGEST_ARM64, {
        'werf.io/parent-stage-id': `${DIGEST_AMD64}-1700000000456`,
        'werf.io/base-image-id': `sha256:${'c'.repeat(64)}`,
      }),
      platform: 'linux/arm64',
      format: 'oci',
      parentImage: `sha256:${'d'.repeat(64)}`,
      created: '2023-11-14T22:13:20.789Z',
    }),
    armQuirk: buildStageImage({ labels: current(DIGEST_ARM64), platform: 'linux/arm64' }),
    mpAmd64: buildStageImage({ labels: current(MP_CHILD_AMD64.slice(0, 56)), platform: 'linux/amd64' }),
    mpArm64: buildStageImage({ labels: current(MP_CHILD_ARM64.slice(0, 56)), platform: 'linux/arm64/v8' }),
  };
  for (const [key, tag] of Object.entries(STAGE)) await put(stages[key as keyof typeof STAGE], tag);
  const multiplatform = buildManifestList([stages.mpAmd64, stages.mpArm64]);
  await pushBuiltIndex(registry, repository, multiplatform, MP_DIGEST);
  tags.push(MP_DIGEST);

  // user custom tags: the stage manifest pushed again under another tag
  for (const tag of ['main', 'v1.2.3']) await put(stages.old, tag);

  // rejected (werf >= v2.75.4 layer)
  await record(`${STAGE.rejected}-rejected`, {}, 'empty-tar');

  // managed images, both placeholder layers
  const layers: RecordLayer[] = ['zero-byte', 'empty-tar', 'raw-zero-byte'];
  let i = 0;
  for (const tag of Object.values(MANAGED)) await record(tag, {}, layers[i++ % layers.length] as RecordLayer);

  // image metadata by commit
  await record(`meta-27dba8ed_${COMMIT}_${STAGE.old}`, {}, 'zero-byte');
  await record(`meta-27dba8ed_${COMMIT_2}_${STAGE.old}`, {}, 'empty-tar');
  await record(`meta-a5320b24_${COMMIT}_${MP_DIGEST}`, {}, 'empty-tar');
  await record(`meta-0_${COMMIT}_${STAGE.arm}`, {}, 'zero-byte');
  await record(`meta-338c72b4_${COMMIT}_${STAGE.arm}`, {}, 'empty-tar');

  // custom tag metadata (spec A.13 ex. 5)
  await record('custom-tag-meta-main', { 'stage-id': STAGE.old, tag: 'main' }, 'zero-byte');
  await record('custom-tag-meta-v1-2-3-cce060b5', { 'stage-id': STAGE.old, tag: 'v1.2.3' }, 'empty-tar');
  await record(
    'custom-tag-meta-postgres-feature-31981-change-delivery--852739dc',
    { 'stage-id': STAGE.arm, tag: 'postgres-feature-31981-change-delivery-date-del-result' },
    'raw-zero-byte',
  );

  // import metadata: the v2.23+ label and the older one
  await record(
    `import-metadata-${IMPORT_ID}`,
    { 'import-source-id': IMPORT_ID, 'source-stage-id': STAGE.old, checksum: 'f00dfeed' },
    'empty-tar',
  );
  await record(
    `import-metadata-${IMPORT_ID_OLD}`,
    { 'import-source-id': IMPORT_ID_OLD, 'source-image-id': STAGE.arm, checksum: '' },
    'zero-byte',
  );

  // client IDs (werf's doubled ms timestamps)
  await record(`client-id-${CLIENT_ID}-3400000000246`, {}, 'zero-byte');
  await record(`client-id-${CLIENT_ID_2}-3400000000100`, {}, 'empty-tar');

  // sync server and last cleanup
  await record(
    'sync-server',
    { syncserver: 'https://sync.example.com/werf', syncservertimestamp: '3400000000500' },
    'zero-byte',
  );
  await record('cleanup', { lastcleanuptimestamp: '1700000000999' }, 'empty-tar');

  // junk werf skips, and the 56-char quirk
  for (const tag of [...JUNK_TAGS, QUIRK_MP_TAG]) await record(tag, {}, 'zero-byte');

  return { stages, multiplatform, tags };
}
