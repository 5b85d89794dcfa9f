import { type Digest, digestOf, isDigest } from './digest.js';
import { DigestMismatchError, ManifestParseError, truncate } from './errors.js';
import {
  isImageManifestMediaType,
  isIndexMediaType,
  isManifestMediaType,
  isNonDistributableMediaType,
  isSchema1MediaType,
  MediaType,
} from './media-types.js';
import type { Descriptor, ImageConfig, ImageIndex, ImageManifest, Platform } from './types.js';

/** The default largest manifest accepted, as in distribution and zot. */
export const MAX_MANIFEST_SIZE = 4 * 1024 * 1024;

export interface ParseManifestOptions {
  /** The media type the manifest arrives with (a `Content-Type`); when given it must agree with the body. */
  readonly mediaType?: string;
  /** Largest accepted size in bytes; defaults to `MAX_MANIFEST_SIZE`. */
  readonly maxSize?: number;
  /** The digest the bytes must have (a pull or push by digest). */
  readonly digest?: Digest;
}

interface ParsedBase {
  /** The media type the manifest is stored and served with. */
  readonly mediaType: string;
  /** Digest of the raw bytes, never of a re-serialization. */
  readonly digest: Digest;
  readonly size: number;
  readonly bytes: Uint8Array;
}

export type ParsedManifest =
  | (ParsedBase & { readonly kind: 'image'; readonly manifest: ImageManifest })
  | (ParsedBase & { readonly kind: 'index'; readonly manifest: ImageIndex });

/** What a manifest points at, for existence checks, garbage collection and copying. */
export interface ManifestReferences {
  /**
   * Config and the distributable layers: what a registry must hold for the
   * manifest to be accepted, and what a copy moves.
   */
  readonly blobs: readonly Descriptor[];
  /**
   * Layers of a non-distributable media type, with or without `urls`. A store
   * accepts the manifest without them (as zot and distribution do), but one it
   * does hold stays referenced: garbage collection never removes it.
   */
  readonly nonDistributable: readonly Descriptor[];
  /** The children of an index. */
  readonly manifests: readonly Descriptor[];
  readonly subject?: Descriptor;
}

const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: false });
// RFC 6838 type/subtype, with optional parameters, as the OCI descriptor spec asks.
const mediaTypePattern =
  /^[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}\/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}(?:\s*;\s*[A-Za-z0-9!#$&^_.+-]+=[^;]*)*$/;
const base64Pattern = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

function invalid(message: string, details: Record<string, unknown> = {}): ManifestParseError {
  return new ManifestParseError('MANIFEST_INVALID', message, { details });
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Strips media type parameters (`; charset=utf-8`) and whitespace. */
function bareMediaType(mediaType: string): string {
  const semicolon = mediaType.indexOf(';');
  return (semicolon < 0 ? mediaType : mediaType.slice(0, semicolon)).trim();
}

/**
 * The manifest media type a decoded JSON document declares or, without a
 * `mediaType` field, the one its shape implies (`manifests` → index,
 * `config` → image manifest). `undefined` when it is not a manifest.
 */
export function detectManifestMediaType(value: unknown): string | undefined {
  if (!isRecord(value)) return undefined;
  if (typeof value.mediaType === 'string' && value.mediaType !== '') return value.mediaType;
  if (value.schemaVersion === 1) return MediaType.DockerSchema1Manifest;
  if (Array.isArray(value.manifests)) return MediaType.OciIndex;
  if (isRecord(value.config)) return MediaType.OciManifest;
  return undefined;
}

/**
 * Parses and validates manifest bytes: size, UTF-8 JSON, schemaVersion 2,
 * media type consistency between the body and `options.mediaType`,
 * descriptors, `subject` and `artifactType`. Schema 1 is refused with code
 * `UNSUPPORTED`. The returned digest is the digest of `bytes` as given.
 */
export function parseManifest(bytes: Uint8Array, options: ParseManifestOptions = {}): ParsedManifest {
  const maxSize = options.maxSize ?? MAX_MANIFEST_SIZE;
  if (bytes.byteLength > maxSize) {
    throw new ManifestParseError(
      'SIZE_INVALID',
      `manifest of ${bytes.byteLength} bytes exceeds the ${maxSize}-byte limit`,
      {
        details: { size: bytes.byteLength, maxSize },
      },
    );
  }
  const declared = options.mediaType === undefined ? undefined : bareMediaType(options.mediaType);
  if (declared !== undefined && isSchema1MediaType(declared) && declared !== 'application/json') {
    throw unsupportedSchema1();
  }
  const digest = digestOf(bytes, options.digest?.startsWith('sha512:') ? 'sha512' : 'sha256');
  if (options.digest !== undefined && options.digest !== digest)
    throw new DigestMismatchError(options.digest, digest);

  let value: unknown;
  try {
    value = JSON.parse(utf8.decode(bytes));
  } catch (cause) {
    throw new ManifestParseError(
      'MANIFEST_INVALID',
      `manifest is not valid UTF-8 JSON: ${(cause as Error).message}`,
      {
        cause,
      },
    );
  }
  if (!isRecord(value)) throw invalid('manifest must be a JSON object');
  if (value.schemaVersion === 1) throw unsupportedSchema1();
  if (value.schemaVersion !== 2) {
    throw invalid(
      `schemaVersion must be 2, got ${truncate(JSON.stringify(value.schemaVersion) ?? 'nothing', 32)}`,
    );
  }

  const bodyType = value.mediaType;
  if (bodyType !== undefined && typeof bodyType !== 'string') throw invalid('mediaType must be a string');
  if (bodyType !== undefined && isSchema1MediaType(bodyType)) throw unsupportedSchema1();
  if (
    bodyType !== undefined &&
    declared !== undefined &&
    isManifestMediaType(declared) &&
    bodyType !== declared
  ) {
    throw invalid(
      `mediaType ${JSON.stringify(truncate(bodyType, 128))} does not match the declared ${declared}`,
      {
        declared,
        body: truncate(bodyType, 128),
      },
    );
  }
  const mediaType =
    bodyType ??
    (declared !== undefined && isManifestMediaType(declared) ? declared : detectManifestMediaType(value));
  if (mediaType === undefined || !isManifestMediaType(mediaType)) {
    throw invalid(
      `unknown manifest media type ${JSON.stringify(truncate(String(mediaType ?? declared), 128))}`,
    );
  }
  // Docker's formats require the field; OCI makes it optional.
  if (
    bodyType === undefined &&
    (mediaType === MediaType.DockerManifest || mediaType === MediaType.DockerManifestList)
  ) {
    throw invalid(`a ${mediaType} must carry its mediaType field`);
  }

  const base = { mediaType, digest, size: bytes.byteLength, bytes };
  if (isIndexMediaType(mediaType)) {
    if (value.config !== undefined || value.layers !== undefined)
      throw invalid('an index has no config or layers');
    return { ...base, kind: 'index', manifest: validateIndex(value, mediaType) };
  }
  if (!isImageManifestMediaType(mediaType)) throw invalid(`unknown manifest media type ${mediaType}`);
  if (value.manifests !== undefined) throw invalid('an image manifest has no manifests list');
  return { ...base, kind: 'image', manifest: validateImageManifest(value, mediaType) };
}

function unsupportedSchema1(): ManifestParseError {
  return new ManifestParseError(
    'UNSUPPORTED',
    'Docker schema 1 manifests are not supported; convert the image to schema 2 or OCI',
    {
      details: { mediaType: MediaType.DockerSchema1Manifest },
    },
  );
}

function validateCommon(value: Record<string, unknown>): void {
  if (value.artifactType !== undefined) validateMediaTypeString(value.artifactType, 'artifactType');
  if (value.subject !== undefined) validateDescriptor(value.subject, 'subject');
  if (value.annotations !== undefined) validateAnnotations(value.annotations, 'annotations');
}

function validateImageManifest(value: Record<string, unknown>, mediaType: string): ImageManifest {
  validateCommon(value);
  validateDescriptor(value.config, 'config');
  if (!Array.isArray(value.layers)) throw invalid('layers must be an array');
  for (const [i, layer] of value.layers.entries()) validateDescriptor(layer, `layers[${i}]`);
  if (mediaType === MediaType.DockerManifest && value.layers.length === 0) {
    throw invalid('a Docker schema 2 manifest needs at least one layer');
  }
  return value as unknown as ImageManifest;
}

function validateIndex(value: Record<string, unknown>, mediaType: string): ImageIndex {
  validateCommon(value);
  if (!Array.isArray(value.manifests)) throw invalid('manifests must be an array');
  value.manifests.forEach((child, i) => {
    const descriptor = validateDescriptor(child, `manifests[${i}]`);
    if (mediaType === MediaType.DockerManifestList && !isManifestMediaType(descriptor.mediaType)) {
      throw invalid(`manifests[${i}] of a manifest list must be a manifest, not ${descriptor.mediaType}`);
    }
  });
  return value as unknown as ImageIndex;
}

function validateMediaTypeString(value: unknown, where: string): string {
  if (typeof value !== 'string' || !mediaTypePattern.test(value)) {
    throw invalid(`${where} is not a valid media type`, { where });
  }
  return value;
}

function validateAnnotations(value: unknown, where: string): void {
  if (!isRecord(value) || !Object.values(value).every((v) => typeof v === 'string')) {
    throw invalid(`${where} must map strings to strings`, { where });
  }
}

function validateDescriptor(value: unknown, where: string): Descriptor {
  if (!isRecord(value)) throw invalid(`${where} must be a descriptor object`, { where });
  validateMediaTypeString(value.mediaType, `${where}.mediaType`);
  if (!isDigest(value.digest)) {
    throw invalid(`${where}.digest is not a supported digest (sha256 or sha512)`, {
      where,
      digest: truncate(String(value.digest), 160),
    });
  }
  const size = value.size;
  if (typeof size !== 'number' || !Number.isSafeInteger(size) || size < 0) {
    throw invalid(`${where}.size must be a non-negative integer`, { where });
  }
  if (value.urls !== undefined) {
    if (!Array.isArray(value.urls) || !value.urls.every((u) => typeof u === 'string')) {
      throw invalid(`${where}.urls must be an array of strings`, { where });
    }
  }
  if (value.annotations !== undefined) validateAnnotations(value.annotations, `${where}.annotations`);
  if (value.artifactType !== undefined) validateMediaTypeString(value.artifactType, `${where}.artifactType`);
  if (value.platform !== undefined) validatePlatform(value.platform, `${where}.platform`);
  if (value.data !== undefined) {
    if (typeof value.data !== 'string' || !base64Pattern.test(value.data)) {
      throw invalid(`${where}.data must be base64`, { where });
    }
    const decoded = Buffer.from(value.data, 'base64');
    if (
      decoded.byteLength !== size ||
      digestOf(decoded, value.digest.startsWith('sha512:') ? 'sha512' : 'sha256') !== value.digest
    ) {
      throw invalid(`${where}.data does not match its digest and size`, { where });
    }
  }
  return value as unknown as Descriptor;
}

function validatePlatform(value: unknown, where: string): Platform {
  if (!isRecord(value) || typeof value.os !== 'string' || typeof value.architecture !== 'string') {
    throw invalid(`${where} needs string os and architecture`, { where });
  }
  for (const key of ['variant', 'os.version'] as const) {
    if (value[key] !== undefined && typeof value[key] !== 'string')
      throw invalid(`${where}.${key} must be a string`);
  }
  for (const key of ['features', 'os.features'] as const) {
    const list = value[key];
    if (list !== undefined && (!Array.isArray(list) || !list.every((f) => typeof f === 'string'))) {
      throw invalid(`${where}.${key} must be an array of strings`);
    }
  }
  return value as unknown as Platform;
}

/** The blobs, child manifests and subject a parsed manifest refers to. */
export function manifestReferences(parsed: ParsedManifest): ManifestReferences {
  const subject = parsed.manifest.subject;
  if (parsed.kind === 'index') {
    return {
      blobs: [],
      nonDistributable: [],
      manifests: parsed.manifest.manifests,
      ...(subject ? { subject } : {}),
    };
  }
  const { config, layers } = parsed.manifest;
  const blobs: Descriptor[] = [config];
  const nonDistributable: Descriptor[] = [];
  for (const layer of layers) {
    (isNonDistributableMediaType(layer.mediaType) ? nonDistributable : blobs).push(layer);
  }
  return { blobs, nonDistributable, manifests: [], ...(subject ? { subject } : {}) };
}

/** Parses an image configuration blob (OCI image config or Docker container image v1). */
export function parseImageConfig(bytes: Uint8Array): ImageConfig {
  let value: unknown;
  try {
    value = JSON.parse(utf8.decode(bytes));
  } catch (cause) {
    throw new ManifestParseError('MANIFEST_INVALID', 'image config is not valid UTF-8 JSON', { cause });
  }
  if (!isRecord(value)) throw invalid('image config must be a JSON object');
  if (typeof value.architecture !== 'string' || typeof value.os !== 'string') {
    throw invalid('image config needs string architecture and os');
  }
  const rootfs = value.rootfs;
  if (!isRecord(rootfs) || rootfs.type !== 'layers' || !Array.isArray(rootfs.diff_ids)) {
    throw invalid('image config needs rootfs {type: "layers", diff_ids: [...]}');
  }
  if (!rootfs.diff_ids.every((d) => isDigest(d)))
    throw invalid('image config rootfs.diff_ids holds an invalid digest');
  if (value.config !== undefined && value.config !== null && !isRecord(value.config)) {
    throw invalid('image config "config" must be an object');
  }
  return value as unknown as ImageConfig;
}
