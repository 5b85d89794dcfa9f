import {
  type Digest,
  isStowageError,
  type ManifestContent,
  manifestMediaTypes,
  type OperationOptions,
  type ParsedManifest,
  parseManifest,
  type Registry,
} from '@stowage/oci';
import { Labels } from '@stowage/tags';
import { RepoContext } from './context.js';
import { StagesStorageError } from './errors.js';
import type { ImageInfo } from './types.js';

const decoder = new TextDecoder();

/** Prefixes werf strips from a repo digest (go-containerregistry's defaults for Docker Hub). */
const HUB_PREFIXES = ['index.docker.io/library/', 'docker.io/library/'];

/** `<address>@<digest>` as werf writes a repo digest: Docker Hub's library prefix dropped. */
export function repoDigestOf(address: string, digest: Digest): string {
  const prefix = HUB_PREFIXES.find((p) => address.startsWith(p));
  return `${prefix ? address.slice(prefix.length) : address}@${digest}`;
}

/** The manifest digest of a repo digest (`…@sha256:…`), if it has one. */
export function digestOfRepoDigest(repoDigest: string): Digest | undefined {
  const at = repoDigest.lastIndexOf('@');
  return at < 0 ? undefined : (repoDigest.slice(at + 1) as Digest);
}

const isRecord = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

const absent = (error: unknown) =>
  isStowageError(error, 'MANIFEST_UNKNOWN') || isStowageError(error, 'NAME_UNKNOWN');

/** A manifest by tag or digest; `undefined` when the repository or the manifest is not there. */
export async function readManifest(
  ctx: RepoContext,
  reference: string,
  options: OperationOptions = {},
): Promise<{ content: ManifestContent; parsed: ParsedManifest } | undefined> {
  let content: ManifestContent;
  try {
    content = await ctx.registry.getManifest(ctx.repository, reference, {
      accept: manifestMediaTypes,
      ...(options.signal ? { signal: options.signal } : {}),
    });
  } catch (error) {
    if (absent(error)) return undefined;
    throw error;
  }
  return { content, parsed: parseManifest(content.bytes, { mediaType: content.mediaType }) };
}

/** A broken image: what is gone, named with the image. */
export function brokenImage(image: string, missing: string, cause?: unknown): StagesStorageError {
  return new StagesStorageError('BROKEN_IMAGE', `image ${image} is broken: ${missing} is gone`, {
    details: { image, missing },
    ...(cause === undefined ? {} : { cause }),
  });
}

/**
 * The config blob of an image manifest, decoded as JSON (any shape: werf's
 * record images have empty `architecture` and `os`). A config that is gone is
 * `BROKEN_IMAGE` naming `image`.
 */
export async function readConfig(
  ctx: RepoContext,
  image: string,
  config: { readonly digest: Digest },
  options: OperationOptions = {},
): Promise<Record<string, unknown>> {
  let bytes: Uint8Array;
  try {
    const blob = await ctx.registry.getBlob(ctx.repository, config.digest, {
      ...(options.signal ? { signal: options.signal } : {}),
    });
    const chunks: Uint8Array[] = [];
    for await (const chunk of blob.stream as AsyncIterable<Uint8Array>) chunks.push(chunk);
    bytes = Buffer.concat(chunks);
  } catch (error) {
    if (isStowageError(error, 'BLOB_UNKNOWN'))
      throw brokenImage(image, `config blob ${config.digest}`, error);
    throw error;
  }
  let value: unknown;
  try {
    value = JSON.parse(decoder.decode(bytes));
  } catch (cause) {
    throw new StagesStorageError('BROKEN_IMAGE', `image ${image}: config ${config.digest} is not JSON`, {
      details: { image, config: config.digest },
      cause,
    });
  }
  if (!isRecord(value)) {
    throw new StagesStorageError('BROKEN_IMAGE', `image ${image}: config ${config.digest} is not an object`, {
      details: { image, config: config.digest },
    });
  }
  return value;
}

const RFC3339 =
  /^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.\d+)?(?:[Zz]|([+-])(\d{2}):(\d{2}))$/;

/**
 * Config `created` (RFC 3339, any fraction) truncated to whole seconds, in
 * nanoseconds (exact as a JS number: seconds × 1e9). 0 when absent, not a
 * time, or outside what Go's int64 nanoseconds hold (before 1678, after 2262).
 */
export function createdAtUnixNano(created: unknown): number {
  if (typeof created !== 'string') return 0;
  const m = RFC3339.exec(created);
  if (!m) return 0;
  const [, y, mo, d, h, mi, s, sign, oh, om] = m;
  const date = new Date(0);
  // setUTCFullYear, unlike Date.UTC, takes years 0-99 as they are.
  date.setUTCFullYear(Number(y), Number(mo) - 1, Number(d));
  date.setUTCHours(Number(h), Number(mi), Number(s), 0);
  let seconds = date.getTime() / 1000;
  if (sign) seconds -= (sign === '-' ? -1 : 1) * (Number(oh) * 3600 + Number(om) * 60);
  if (!Number.isFinite(seconds)) return 0;
  const limit = 9_223_372_036; // int64 nanoseconds, in whole seconds
  if (seconds < -limit || seconds > limit) return 0;
  return seconds * 1e9;
}

function stringList(value: unknown): readonly string[] | null {
  return Array.isArray(value) && value.every((v) => typeof v === 'string') ? value : null;
}

function stringMap(value: unknown): Readonly<Record<string, string>> | null {
  if (!isRecord(value)) return null;
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(value)) if (typeof v === 'string') out[k] = v;
  return out;
}

/**
 * What werf keeps about an image in a repository (spec A.10, werf's
 * `image.Info`): for a manifest, from it and its config; for an index, its own
 * names and digest with one entry per child (read by digest). `null` when
 * the tag is not there; `BROKEN_IMAGE` when the config blob or a child
 * manifest is gone. Layers are not checked here.
 */
export async function describeImage(
  ctx: RepoContext,
  tag: string,
  options: OperationOptions = {},
): Promise<ImageInfo | null> {
  const read = await readManifest(ctx, tag, options);
  if (!read) return null;
  return await describe(ctx, { name: ctx.imageName(tag), tag }, read, options);
}

/**
 * `describeImage` for any image, not only a stage: `<address>:<tag>` held by
 * `registry` under `repository` (the local image store, a registry). Same
 * answers: `null` when absent, `BROKEN_IMAGE` when its config or a child is gone.
 */
export async function describeImageAt(
  location: { readonly registry: Registry; readonly repository: string; readonly address: string },
  tag: string,
  options: OperationOptions = {},
): Promise<ImageInfo | null> {
  const ctx = new RepoContext({ ...location, project: '' });
  return await describeImage(ctx, tag, options);
}

async function describe(
  ctx: RepoContext,
  at: { name: string; tag: string },
  read: { content: ManifestContent; parsed: ParsedManifest },
  options: OperationOptions,
): Promise<ImageInfo> {
  const { content, parsed } = read;
  const base = {
    name: at.name,
    repository: ctx.address,
    tag: at.tag,
    repoDigest: repoDigestOf(ctx.address, content.digest),
  };
  if (parsed.kind === 'index') {
    const index = await Promise.all(
      parsed.manifest.manifests.map(async (child) => {
        const childName = `${ctx.address}@${child.digest}`;
        const found = await readManifest(ctx, child.digest, options);
        if (!found) throw brokenImage(at.name, `child manifest ${child.digest}`);
        return await describe(ctx, { name: childName, tag: '' }, found, options);
      }),
    );
    return {
      ...base,
      onBuild: null,
      env: null,
      id: content.digest,
      parentId: '',
      labels: null,
      size: index.reduce((sum, child) => sum + child.size, 0),
      createdAtUnixNano: 0,
      volumes: null,
      isIndex: true,
      index,
    };
  }
  const manifest = parsed.manifest;
  const config = await readConfig(ctx, at.name, manifest.config, options);
  const inner = isRecord(config.config) ? config.config : {};
  const labels = stringMap(inner.Labels);
  const image = typeof inner.Image === 'string' ? inner.Image : '';
  return {
    ...base,
    onBuild: stringList(inner.OnBuild),
    env: stringList(inner.Env),
    id: manifest.config.digest,
    parentId: image || (labels?.[Labels.baseImageId] ?? ''),
    labels,
    size: manifest.layers.reduce((sum, layer) => sum + layer.size, 0),
    createdAtUnixNano: createdAtUnixNano(config.created),
    volumes: isRecord(inner.Volumes) ? inner.Volumes : null,
    isIndex: false,
    index: null,
  };
}
