// A changed image: labels set or removed in its config, annotations set or
// removed on its manifest, pushed back into the same repository as a new
// manifest (crane mutate's model). Layers are never touched, so nothing but a
// config and manifests is written. An index has every image child changed
// (labels) and its own annotations changed; attestation children stay as they
// are, with the digest they describe updated.
import {
  type Digest,
  digestOf,
  isImageManifestMediaType,
  isIndexMediaType,
  MediaType,
  type OperationOptions,
  type ParsedManifest,
  parseManifest,
  type Registry,
  readBlobBytes,
} from '@stowage/oci';
import { CopyError } from './errors.js';

/** Keys to set (a string) or to remove (`null`). */
export type MutateEdits = Readonly<Record<string, string | null>>;

export interface MutateOptions extends OperationOptions {
  /** Labels of the image config (`config.Labels`); for an index, of every image in it. */
  readonly labels?: MutateEdits;
  /** Annotations of the top manifest (the index itself for an index). */
  readonly annotations?: MutateEdits;
  /** Tag the result in the same repository; without it the result is pushed by digest only (as crane mutate). */
  readonly tag?: string;
}

export interface MutatedManifest {
  readonly digest: Digest;
  readonly mediaType: string;
  readonly size: number;
  /** The digest of the manifest it replaces. */
  readonly sourceDigest: Digest;
}

export interface MutateResult extends MutatedManifest {
  readonly repository: string;
  /** The tag moved to the result, when one was given. */
  readonly tag?: string;
  /** The children of an index that were rewritten, in index order. */
  readonly children: readonly MutatedManifest[];
}

const configTypes: ReadonlySet<string> = new Set([MediaType.OciConfig, MediaType.DockerConfig]);
const encoder = new TextEncoder();
const decoder = new TextDecoder();

type Json = Record<string, unknown>;

function isRecord(value: unknown): value is Json {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** `target` with `edits` applied (a null removes the key); `undefined` when nothing is left. */
function edited(target: unknown, edits: MutateEdits): Record<string, string> | undefined {
  const out: Record<string, string> = {};
  if (isRecord(target)) {
    for (const [key, value] of Object.entries(target)) if (typeof value === 'string') out[key] = value;
  }
  for (const [key, value] of Object.entries(edits)) {
    if (value === null) delete out[key];
    else out[key] = value;
  }
  return Object.keys(out).length ? out : undefined;
}

/** Sets or drops an object member, keeping the member order of the rest. */
function setMember(object: Json, key: string, value: unknown): void {
  if (value === undefined) delete object[key];
  else object[key] = value;
}

function unsupported(message: string, details: Json): CopyError {
  return new CopyError('UNSUPPORTED_MANIFEST', message, { details });
}

interface Context {
  readonly registry: Registry;
  readonly repository: string;
  readonly signal: AbortSignal | undefined;
}

function signalOf(ctx: Context): OperationOptions {
  return ctx.signal ? { signal: ctx.signal } : {};
}

/** Pushes manifest JSON by digest (or under `tag`), returning what was written. */
async function pushManifest(
  ctx: Context,
  value: Json,
  mediaType: string,
  sourceDigest: Digest,
  tag?: string,
): Promise<MutatedManifest> {
  const bytes = encoder.encode(JSON.stringify(value));
  const digest = digestOf(bytes);
  await ctx.registry.putManifest(ctx.repository, tag ?? digest, { bytes, mediaType, ...signalOf(ctx) });
  return { digest, mediaType, size: bytes.byteLength, sourceDigest };
}

/** The image config with its labels changed, stored as a new blob; the new descriptor's digest and size. */
async function relabel(
  ctx: Context,
  config: { readonly digest: Digest; readonly mediaType: string },
  labels: MutateEdits,
): Promise<{ digest: Digest; size: number }> {
  if (!configTypes.has(config.mediaType)) {
    throw unsupported(
      `config ${config.digest} is ${config.mediaType}, not an image config: it has no labels`,
      {
        digest: config.digest,
        mediaType: config.mediaType,
      },
    );
  }
  const bytes = await readBlobBytes(ctx.registry, ctx.repository, config.digest, signalOf(ctx));
  let value: unknown;
  try {
    value = JSON.parse(decoder.decode(bytes));
  } catch {
    value = undefined;
  }
  if (!isRecord(value)) {
    throw unsupported(`config ${config.digest} is not a JSON object`, { digest: config.digest });
  }
  const inner = isRecord(value.config) ? value.config : {};
  setMember(inner, 'Labels', edited(inner.Labels, labels));
  value.config = inner;
  const out = encoder.encode(JSON.stringify(value));
  const digest = digestOf(out);
  await ctx.registry.putBlob(ctx.repository, out, { digest, size: out.byteLength, ...signalOf(ctx) });
  return { digest, size: out.byteLength };
}

function parsedOf(
  bytes: Uint8Array,
  mediaType: string,
  digest: Digest,
): { parsed: ParsedManifest; json: Json } {
  const parsed = parseManifest(bytes, { mediaType, digest });
  return { parsed, json: JSON.parse(decoder.decode(bytes)) as Json };
}

/** A buildx attestation child: it describes another child and has no image config to label. */
function isAttestation(descriptor: Json): boolean {
  const annotations = descriptor.annotations;
  return isRecord(annotations) && annotations['vnd.docker.reference.type'] === 'attestation-manifest';
}

async function mutateManifest(
  ctx: Context,
  content: { readonly bytes: Uint8Array; readonly mediaType: string; readonly digest: Digest },
  options: MutateOptions,
  top: { readonly tag?: string; readonly children: MutatedManifest[] } | undefined,
): Promise<MutatedManifest> {
  const { mediaType, digest } = content;
  if (!isImageManifestMediaType(mediaType) && !isIndexMediaType(mediaType)) {
    throw unsupported(`${digest} is ${mediaType}: only image manifests and indexes can be changed`, {
      digest,
      mediaType,
    });
  }
  const { parsed, json } = parsedOf(content.bytes, mediaType, digest);
  const labels = options.labels && Object.keys(options.labels).length ? options.labels : undefined;
  const annotations =
    top && options.annotations && Object.keys(options.annotations).length ? options.annotations : undefined;
  if (!labels && !annotations) {
    // nothing to change here: the same bytes, moved under the tag when one is given
    if (top?.tag !== undefined) {
      await ctx.registry.putManifest(ctx.repository, top.tag, {
        bytes: content.bytes,
        mediaType,
        ...signalOf(ctx),
      });
    }
    return { digest, mediaType, size: content.bytes.byteLength, sourceDigest: digest };
  }
  if (parsed.kind === 'image' && labels) {
    const config = await relabel(ctx, parsed.manifest.config, labels);
    json.config = { ...(json.config as Json), digest: config.digest, size: config.size };
  }
  if (parsed.kind === 'index' && labels) {
    const manifests = (json.manifests as Json[]).map((d) => ({ ...d }));
    const moved = new Map<string, Digest>();
    for (const descriptor of manifests) {
      if (isAttestation(descriptor)) continue;
      const child = await ctx.registry.getManifest(
        ctx.repository,
        descriptor.digest as Digest,
        signalOf(ctx),
      );
      const result = await mutateManifest(ctx, child, { labels }, undefined);
      top?.children.push(result);
      moved.set(result.sourceDigest, result.digest);
      descriptor.digest = result.digest;
      descriptor.size = result.size;
    }
    for (const descriptor of manifests) {
      const annotations = descriptor.annotations;
      const described = isRecord(annotations) ? annotations['vnd.docker.reference.digest'] : undefined;
      const to = typeof described === 'string' ? moved.get(described) : undefined;
      if (to && isRecord(annotations))
        descriptor.annotations = { ...annotations, 'vnd.docker.reference.digest': to };
    }
    json.manifests = manifests;
  }
  if (annotations) {
    setMember(json, 'annotations', edited(json.annotations, annotations));
  }
  return await pushManifest(ctx, json, mediaType, digest, top?.tag);
}

/**
 * Changes the labels and annotations of the image `reference` names in
 * `repository` and pushes the result there (tagged `tag` when given). The
 * source manifest is left as it is; an unchanged image pushes the same bytes.
 */
export async function mutateImage(
  source: { readonly registry: Registry; readonly repository: string; readonly reference: string },
  options: MutateOptions,
): Promise<MutateResult> {
  const ctx: Context = { registry: source.registry, repository: source.repository, signal: options.signal };
  const content = await source.registry.getManifest(source.repository, source.reference, signalOf(ctx));
  const children: MutatedManifest[] = [];
  const result = await mutateManifest(ctx, content, options, {
    ...(options.tag !== undefined ? { tag: options.tag } : {}),
    children,
  });
  return {
    ...result,
    repository: source.repository,
    ...(options.tag !== undefined ? { tag: options.tag } : {}),
    children,
  };
}
