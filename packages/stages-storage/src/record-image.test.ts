import { createHash } from 'node:crypto';
import { gunzipSync } from 'node:zlib';
import { digestOf, goJson, goStruct, MediaType } from '@stowage/oci';
import { createMemoryRegistry } from '@stowage/testing';
import { describe, expect, it } from 'vitest';
import { RepoContext } from './context.js';
import {
  buildRecordImage,
  goTimeString,
  LEGACY_RECORD_LAYER_DIFF_ID,
  pushRecord,
  RECORD_LAYER_BYTES,
  RECORD_LAYER_DIFF_ID,
  RECORD_LAYER_DIGEST,
  readRecordLabels,
  uniqueRecordTime,
} from './record-image.js';

const text = (bytes: Uint8Array) => new TextDecoder().decode(bytes);

function context() {
  const registry = createMemoryRegistry();
  const ctx = new RepoContext({
    registry,
    repository: 'group/project',
    address: 'registry.example.com/group/project',
    project: 'myproj',
  });
  return { registry, ctx };
}

describe('buildRecordImage', () => {
  // 2026-12-02T15:04:05.123456789Z
  const created = 1796223845123456789n;

  it('writes the manifest go-containerregistry writes: Docker schema 2, fields in order', () => {
    const image = buildRecordImage({ labels: { werf: 'myproj' }, created });
    const expected =
      `{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json",` +
      `"config":{"mediaType":"application/vnd.docker.container.image.v1+json","size":${image.config.bytes.byteLength},"digest":"${image.config.digest}"},` +
      `"layers":[{"mediaType":"application/vnd.docker.image.rootfs.diff.tar.gzip","size":${RECORD_LAYER_BYTES.byteLength},"digest":"${RECORD_LAYER_DIGEST}"}]}`;
    expect(text(image.manifest.bytes)).toBe(expected);
    expect(image.manifest.mediaType).toBe(MediaType.DockerManifest);
    expect(image.manifest.digest).toBe(digestOf(image.manifest.bytes));
    expect(image.config.digest).toBe(digestOf(image.config.bytes));
    expect(image.layer.digest).toBe(digestOf(image.layer.bytes));
  });

  it('writes v1.ConfigFile in field order, omitempty honoured, labels sorted', () => {
    const image = buildRecordImage({ labels: { werf: 'myproj', 'stage-id': 'abc-1', tag: 'v1' }, created });
    expect(text(image.config.bytes)).toBe(
      '{"architecture":"","created":"2026-12-02T15:04:05.123456789Z",' +
        '"history":[{"created":"0001-01-01T00:00:00Z"}],"os":"",' +
        '"rootfs":{"type":"layers","diff_ids":["sha256:5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef"]},' +
        '"config":{"Labels":{"stage-id":"abc-1","tag":"v1","werf":"myproj"}}}',
    );
  });

  it('leaves Labels out when there are none, as omitempty does', () => {
    const image = buildRecordImage({ labels: {}, created });
    expect(JSON.parse(text(image.config.bytes)).config).toEqual({});
  });

  it('escapes label values as Go does', () => {
    const image = buildRecordImage({ labels: { werf: 'a<b>&"c"' }, created });
    expect(text(image.config.bytes)).toContain('"werf":"a\\u003cb\\u003e\\u0026\\"c\\""');
  });

  it('has one layer: the gzipped 1024-zero-byte empty tar, fixed bytes, mtime 0', () => {
    const tar = gunzipSync(RECORD_LAYER_BYTES);
    expect(tar.byteLength).toBe(1024);
    expect(tar.every((byte) => byte === 0)).toBe(true);
    expect(`sha256:${createHash('sha256').update(tar).digest('hex')}`).toBe(RECORD_LAYER_DIFF_ID);
    expect(RECORD_LAYER_DIFF_ID).toBe(
      'sha256:5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef',
    );
    expect([...RECORD_LAYER_BYTES.subarray(0, 3)]).toEqual([0x1f, 0x8b, 8]);
    expect([...RECORD_LAYER_BYTES.subarray(4, 8)]).toEqual([0, 0, 0, 0]);
    expect(LEGACY_RECORD_LAYER_DIFF_ID).toBe(digestOf(new Uint8Array()));
  });

  it('is deterministic for the same labels and time', () => {
    const a = buildRecordImage({ labels: { werf: 'p' }, created });
    const b = buildRecordImage({ labels: { werf: 'p' }, created });
    expect(a.manifest.digest).toBe(b.manifest.digest);
  });

  it('never gives two records with the same labels one digest', () => {
    const digests = new Set<string>();
    for (let i = 0; i < 200; i++) digests.add(buildRecordImage({ labels: { werf: 'p' } }).manifest.digest);
    expect(digests.size).toBe(200);
  });

  it('accepts a Date for created', () => {
    const image = buildRecordImage({
      labels: { werf: 'p' },
      created: new Date(Date.UTC(2026, 0, 2, 3, 4, 5, 60)),
    });
    expect(JSON.parse(text(image.config.bytes)).created).toBe('2026-01-02T03:04:05.06Z');
  });
});

describe('goTimeString', () => {
  it('drops trailing zeros of the fraction, and the fraction when zero', () => {
    expect(goTimeString(0n)).toBe('1970-01-01T00:00:00Z');
    expect(goTimeString(1_500_000_000n)).toBe('1970-01-01T00:00:01.5Z');
    expect(goTimeString(1_000_000_001n)).toBe('1970-01-01T00:00:01.000000001Z');
    expect(goTimeString(1796223845120000000n)).toBe('2026-12-02T15:04:05.12Z');
  });
});

describe('uniqueRecordTime', () => {
  it('only grows, and is close to the wall clock', () => {
    let last = uniqueRecordTime();
    for (let i = 0; i < 1000; i++) {
      const next = uniqueRecordTime();
      expect(next > last).toBe(true);
      last = next;
    }
    const wallMs = Number(last / 1_000_000n);
    expect(Math.abs(wallMs - Date.now())).toBeLessThan(60_000);
  });
});

describe('pushRecord and readRecordLabels', () => {
  it('pushes blobs once, the manifest under the tag, and reads the labels back', async () => {
    const { registry, ctx } = context();
    const puts: string[] = [];
    const putBlob = registry.putBlob.bind(registry);
    registry.putBlob = async (repository, body, options) => {
      puts.push(options.digest);
      return await putBlob(repository, body, options);
    };
    const first = await pushRecord(ctx, 'managed-image-backend', { werf: 'myproj' });
    await pushRecord(ctx, 'managed-image-frontend', { werf: 'myproj' });
    // the layer once, one config per record (created differs)
    expect(puts.filter((d) => d === RECORD_LAYER_DIGEST)).toHaveLength(1);
    expect(puts).toHaveLength(3);
    const head = await registry.headManifest('group/project', 'managed-image-backend');
    expect(head?.digest).toBe(first);
    expect(head?.mediaType).toBe(MediaType.DockerManifest);
    expect(await readRecordLabels(ctx, 'managed-image-backend')).toEqual({ werf: 'myproj' });
  });

  it('keeps the cached listing current', async () => {
    const { ctx } = context();
    const listing = await ctx.tags();
    expect(listing.has('cleanup')).toBe(false);
    await pushRecord(ctx, 'cleanup', { werf: 'p', lastcleanuptimestamp: '1' });
    expect(ctx.cached()?.has('cleanup')).toBe(true);
  });

  it('answers null for an absent tag or repository', async () => {
    const { ctx } = context();
    expect(await readRecordLabels(ctx, 'nothing')).toBeNull();
    await pushRecord(ctx, 'x', { werf: 'p' });
    expect(await readRecordLabels(ctx, 'nothing')).toBeNull();
  });

  it('reads an older record by hand: OCI manifest, zero-byte layer, no Labels', async () => {
    const { registry, ctx } = context();
    const empty = new Uint8Array();
    const config = new TextEncoder().encode(
      JSON.stringify({
        architecture: '',
        os: '',
        rootfs: { type: 'layers', diff_ids: [LEGACY_RECORD_LAYER_DIFF_ID] },
        config: {},
      }),
    );
    await registry.putBlob('group/project', empty, { digest: digestOf(empty) });
    await registry.putBlob('group/project', config, { digest: digestOf(config) });
    const manifest = new TextEncoder().encode(
      goJson(
        goStruct([
          ['schemaVersion', 2],
          ['mediaType', MediaType.OciManifest],
          ['config', { mediaType: MediaType.OciConfig, size: config.byteLength, digest: digestOf(config) }],
          ['layers', [{ mediaType: MediaType.OciLayerGzip, size: 0, digest: digestOf(empty) }]],
        ]),
      ),
    );
    await registry.putManifest('group/project', 'old', { bytes: manifest, mediaType: MediaType.OciManifest });
    expect(await readRecordLabels(ctx, 'old')).toEqual({});
  });

  it('reads a werf < v2.75.4 record (zero-byte layer) with labels, skipping non-string values', async () => {
    const { registry, ctx } = context();
    const empty = new Uint8Array();
    const config = new TextEncoder().encode(
      JSON.stringify({
        architecture: '',
        created: '2024-01-01T00:00:00.1Z',
        os: '',
        rootfs: { type: 'layers', diff_ids: [LEGACY_RECORD_LAYER_DIFF_ID] },
        config: { Labels: { werf: 'myproj', 'source-image-id': 'abc', odd: 5 } },
      }),
    );
    await registry.putBlob('group/project', empty, { digest: digestOf(empty) });
    await registry.putBlob('group/project', config, { digest: digestOf(config) });
    const manifest = new TextEncoder().encode(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: MediaType.DockerManifest,
        config: { mediaType: MediaType.DockerConfig, size: config.byteLength, digest: digestOf(config) },
        layers: [{ mediaType: MediaType.DockerLayerGzip, size: 0, digest: digestOf(empty) }],
      }),
    );
    await registry.putManifest('group/project', 'old', {
      bytes: manifest,
      mediaType: MediaType.DockerManifest,
    });
    expect(await readRecordLabels(ctx, 'old')).toEqual({ werf: 'myproj', 'source-image-id': 'abc' });
  });
});
