// Record images: the small single-layer images werf keeps its records in
// (spec A.6). Written byte for byte as werf >= v2.75.4 writes them (Docker
// schema 2, the labels in the config, one gzipped empty-tar layer); read
// tolerantly (Docker or OCI manifests, any layer, labels missing).
import {
  type Digest,
  digestOf,
  goJson,
  goStruct,
  isDigest,
  isStowageError,
  MediaType,
  type OperationOptions,
} from '@stowage/oci';
import type { RepoContext } from './context.js';

/** The diffID of the record layer: sha256 of the 1024 zero bytes of an empty tar (werf >= v2.75.4). */
export const RECORD_LAYER_DIFF_ID: Digest =
  'sha256:5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef';

/** The diffID werf < v2.75.4 declared for its zero-byte record layer (sha256 of nothing). */
export const LEGACY_RECORD_LAYER_DIFF_ID: Digest =
  'sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';

/**
 * The record layer: gzip (mtime 0, no name) of the 1024 zero bytes of an
 * empty tar. Fixed bytes rather than whatever the running zlib produces, so
 * every record shares one layer blob across Node versions.
 */
export const RECORD_LAYER_BYTES: Uint8Array = Uint8Array.from(
  Buffer.from('1f8b080000000000020363601805a360148c5400002eafb5ef00040000', 'hex'),
);

/** The digest of `RECORD_LAYER_BYTES`. */
export const RECORD_LAYER_DIGEST: Digest = digestOf(RECORD_LAYER_BYTES);

/** Go's zero `time.Time` as encoding/json writes it (the one empty history entry). */
const GO_ZERO_TIME = '0001-01-01T00:00:00Z';

/** Largest record config read back: records hold a handful of labels. */
const MAX_RECORD_CONFIG = 4 * 1024 * 1024;

export interface RecordImageOptions {
  readonly labels: Readonly<Record<string, string>>;
  /**
   * The config's `created`, as Unix nanoseconds or a `Date`. Default: a
   * process-unique instant (`uniqueRecordTime`), so two records with the
   * same labels never share a digest.
   */
  readonly created?: bigint | Date;
}

export interface RecordImage {
  readonly manifest: { readonly bytes: Uint8Array; readonly digest: Digest; readonly mediaType: string };
  readonly config: { readonly bytes: Uint8Array; readonly digest: Digest };
  readonly layer: { readonly bytes: Uint8Array; readonly digest: Digest };
}

// Wall-clock nanoseconds from a monotonic source: anchored once to Date.now(),
// advanced by hrtime, so the values only grow within a process.
const clockAnchorNs = BigInt(Date.now()) * 1_000_000n - process.hrtime.bigint();
let lastRecordTimeNs = 0n;

/** Unix nanoseconds, strictly greater than the value this returned before in this process. */
export function uniqueRecordTime(): bigint {
  let ns = clockAnchorNs + process.hrtime.bigint();
  if (ns <= lastRecordTimeNs) ns = lastRecordTimeNs + 1n;
  lastRecordTimeNs = ns;
  return ns;
}

/**
 * A UTC instant the way Go's `time.Time` marshals to JSON (RFC 3339 with
 * nanoseconds, trailing zeros of the fraction dropped, no fraction when it is
 * zero): `2026-12-02T15:04:05.1234Z`.
 */
export function goTimeString(unixNanos: bigint): string {
  let seconds = unixNanos / 1_000_000_000n;
  let fraction = unixNanos % 1_000_000_000n;
  if (fraction < 0n) {
    fraction += 1_000_000_000n;
    seconds -= 1n;
  }
  const whole = new Date(Number(seconds) * 1000).toISOString().slice(0, 19);
  if (fraction === 0n) return `${whole}Z`;
  const digits = fraction.toString().padStart(9, '0').replace(/0+$/, '');
  return `${whole}.${digits}Z`;
}

function createdNanos(created: bigint | Date | undefined): bigint {
  if (created === undefined) return uniqueRecordTime();
  if (typeof created === 'bigint') return created;
  return BigInt(created.getTime()) * 1_000_000n;
}

const encoder = new TextEncoder();

/**
 * The record image werf >= v2.75.4 pushes for a set of labels: go-containerregistry's
 * `v1.ConfigFile` and `v1.Manifest` in their field order, Docker media types.
 */
export function buildRecordImage(options: RecordImageOptions): RecordImage {
  const labels = Object.keys(options.labels).length === 0 ? undefined : { ...options.labels };
  const config = encoder.encode(
    goJson(
      goStruct([
        ['architecture', ''],
        ['created', goTimeString(createdNanos(options.created))],
        ['history', [goStruct([['created', GO_ZERO_TIME]])]],
        ['os', ''],
        [
          'rootfs',
          goStruct([
            ['type', 'layers'],
            ['diff_ids', [RECORD_LAYER_DIFF_ID]],
          ]),
        ],
        ['config', goStruct([['Labels', labels]])],
      ]),
    ),
  );
  const configDigest = digestOf(config);
  const manifest = encoder.encode(
    goJson(
      goStruct([
        ['schemaVersion', 2],
        ['mediaType', MediaType.DockerManifest],
        [
          'config',
          goStruct([
            ['mediaType', MediaType.DockerConfig],
            ['size', config.byteLength],
            ['digest', configDigest],
          ]),
        ],
        [
          'layers',
          [
            goStruct([
              ['mediaType', MediaType.DockerLayerGzip],
              ['size', RECORD_LAYER_BYTES.byteLength],
              ['digest', RECORD_LAYER_DIGEST],
            ]),
          ],
        ],
      ]),
    ),
  );
  return {
    manifest: { bytes: manifest, digest: digestOf(manifest), mediaType: MediaType.DockerManifest },
    config: { bytes: config, digest: configDigest },
    layer: { bytes: RECORD_LAYER_BYTES, digest: RECORD_LAYER_DIGEST },
  };
}

/** Only the signal of an options object (what a registry call takes). */
export function signalOf(options: OperationOptions): OperationOptions {
  return options.signal ? { signal: options.signal } : {};
}

/** A tag, manifest or repository that is not there. */
export const isNotFound = (error: unknown): boolean =>
  isStowageError(error, 'MANIFEST_UNKNOWN') || isStowageError(error, 'NAME_UNKNOWN');

/**
 * Pushes a record image with these labels under `tag` (blobs the repository
 * already has are not sent again) and keeps the cached listing current.
 * Answers the manifest digest.
 */
export async function pushRecord(
  ctx: RepoContext,
  tag: string,
  labels: Readonly<Record<string, string>>,
  options: OperationOptions = {},
): Promise<Digest> {
  const image = buildRecordImage({ labels });
  const { registry, repository } = ctx;
  const signal = signalOf(options);
  for (const blob of [image.layer, image.config]) {
    if (await registry.headBlob(repository, blob.digest, signal)) continue;
    await registry.putBlob(repository, blob.bytes, {
      ...signal,
      digest: blob.digest,
      size: blob.bytes.byteLength,
    });
  }
  await registry.putManifest(repository, tag, {
    ...signal,
    bytes: image.manifest.bytes,
    mediaType: image.manifest.mediaType,
  });
  ctx.noteTag(tag, true);
  ctx.logger.debug({ repository, tag, digest: image.manifest.digest }, 'pushed record image');
  return image.manifest.digest;
}

const isObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

const utf8 = new TextDecoder('utf-8');

async function readBlob(ctx: RepoContext, digest: Digest, options: OperationOptions): Promise<Uint8Array> {
  const blob = await ctx.registry.getBlob(ctx.repository, digest, signalOf(options));
  const chunks: Buffer[] = [];
  let size = 0;
  try {
    for await (const chunk of blob.stream) {
      const piece = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk as Uint8Array);
      size += piece.byteLength;
      if (size > MAX_RECORD_CONFIG) break;
      chunks.push(piece);
    }
  } finally {
    blob.stream.destroy();
  }
  return Buffer.concat(chunks);
}

function parseJson(bytes: Uint8Array): unknown {
  try {
    return JSON.parse(utf8.decode(bytes));
  } catch {
    return undefined;
  }
}

/** What a record image's config says: its labels and its `created`. */
export interface RecordConfig {
  readonly labels: Record<string, string>;
  /** The config's `created` as written, when it is a string. */
  readonly created?: string;
}

/**
 * The config of the record image under `reference` (a tag or digest); `null`
 * when there is no such manifest (or repository). Tolerant as werf's reader:
 * a Docker or OCI manifest with any layers (the zero-byte one of werf <
 * v2.75.4 too); no `Labels`, a config that is not an image config, or an
 * index read as no labels. Label values that are not strings are left out.
 */
export async function readRecordConfig(
  ctx: RepoContext,
  reference: string,
  options: OperationOptions = {},
): Promise<RecordConfig | null> {
  let manifestBytes: Uint8Array;
  try {
    manifestBytes = (await ctx.registry.getManifest(ctx.repository, reference, signalOf(options))).bytes;
  } catch (error) {
    if (isNotFound(error)) return null;
    throw error;
  }
  const manifest = parseJson(manifestBytes);
  if (!isObject(manifest) || !isObject(manifest.config) || !isDigest(manifest.config.digest)) {
    return { labels: {} };
  }
  const config = parseJson(await readBlob(ctx, manifest.config.digest, options));
  if (!isObject(config)) return { labels: {} };
  const created = typeof config.created === 'string' ? { created: config.created } : {};
  const labels = isObject(config.config) ? config.config.Labels : undefined;
  const result: Record<string, string> = {};
  if (isObject(labels)) {
    for (const [key, value] of Object.entries(labels)) if (typeof value === 'string') result[key] = value;
  }
  return { labels: result, ...created };
}

/** The config labels of the record image under `tag` (see `readRecordConfig`); `null` when absent. */
export async function readRecordLabels(
  ctx: RepoContext,
  tag: string,
  options: OperationOptions = {},
): Promise<Record<string, string> | null> {
  return (await readRecordConfig(ctx, tag, options))?.labels ?? null;
}
