// exportStage: a stage to another reference, werf* labels removed, config optionally mutated.
import { copyBlobs } from '@stowage/copy';
import {
  type Descriptor,
  type Digest,
  digestOf,
  isStowageError,
  type ManifestContent,
  manifestReferences,
  type OperationOptions,
  type ParsedManifest,
} from '@stowage/oci';
import { encodeStageTag, Labels } from '@stowage/tags';
import type { RepoContext } from './context.js';
import { brokenImage, digestOfRepoDigest, readConfig, readManifest } from './image-info.js';
import type { ExportStageOptions, ExportStageResult, StageDesc } from './types.js';

const encoder = new TextEncoder();
const decoder = new TextDecoder();

type Destination = ExportStageOptions['destination'];
type Read = { content: ManifestContent; parsed: ParsedManifest };

const signalOf = (options: OperationOptions) => (options.signal ? { signal: options.signal } : {});

/**
 * Pushes a stage to `destination` as a plain image: every label whose key
 * starts with `werf` removed, then `mutateConfig` applied to the config's
 * `config` object, in a new config blob and a new manifest of the same media
 * type over the same layers (brought over by the copy engine: skipped when
 * there, mounted within one origin, else streamed once). A multiplatform
 * stage is exported child by child under a new index of the same media type.
 */
export async function exportStage(
  ctx: RepoContext,
  desc: StageDesc,
  options: ExportStageOptions,
): Promise<ExportStageResult> {
  const reference = digestOfRepoDigest(desc.info.repoDigest) ?? encodeStageTag(desc.stageID);
  const image = desc.info.name;
  const read = await readManifest(ctx, reference, options);
  if (!read) throw brokenImage(image, `manifest ${reference}`);
  const pushed = await exportManifest(ctx, { image, read, options, tag: options.destination.tag });
  ctx.logger.info(
    {
      image,
      destination: options.destination.repository,
      tag: options.destination.tag,
      digest: pushed.digest,
    },
    'exported stage',
  );
  return { digest: pushed.digest, mediaType: pushed.mediaType };
}

async function exportManifest(
  ctx: RepoContext,
  job: { image: string; read: Read; options: ExportStageOptions; tag?: string },
): Promise<{ digest: Digest; mediaType: string; size: number }> {
  const { image, read, options } = job;
  const { destination } = options;
  const value = JSON.parse(decoder.decode(read.content.bytes)) as Record<string, unknown>;
  if (read.parsed.kind === 'index') {
    const manifests: Descriptor[] = [];
    for (const child of read.parsed.manifest.manifests) {
      const found = await readManifest(ctx, child.digest, options);
      if (!found) throw brokenImage(image, `child manifest ${child.digest}`);
      const pushed = await exportManifest(ctx, { image, read: found, options });
      manifests.push({ ...child, mediaType: pushed.mediaType, digest: pushed.digest, size: pushed.size });
    }
    return await put(destination, { ...value, manifests }, read.parsed.mediaType, job.tag, options);
  }

  const manifest = read.parsed.manifest;
  const config = await readConfig(ctx, image, manifest.config, options);
  const references = manifestReferences(read.parsed);
  const layers = [
    ...references.blobs.filter((blob) => blob !== manifest.config),
    // A non-distributable layer may be absent; one the stage holds goes along, for a
    // destination that wants it (distribution 2.8 wants one without urls like any layer).
    ...(await held(ctx, references.nonDistributable, options)),
  ];
  const newConfig = await exportConfig(config, options);
  const configBytes = encoder.encode(JSON.stringify(newConfig));
  const configDescriptor: Descriptor = {
    mediaType: manifest.config.mediaType,
    size: configBytes.byteLength,
    digest: digestOf(configBytes),
  };
  // Both settle before the manifest goes (or the first failure is thrown), so nothing is left writing.
  const settled = await Promise.allSettled([
    copyBlobs({
      source: { registry: ctx.registry, repository: ctx.repository },
      destination: { registry: destination.registry, repository: destination.repository },
      blobs: layers,
      ...signalOf(options),
    }),
    putBlobOnce(destination, configDescriptor, configBytes, options),
  ]);
  const failed = settled.find((s): s is PromiseRejectedResult => s.status === 'rejected');
  if (failed) {
    if (isStowageError(failed.reason, 'BLOB_UNKNOWN'))
      throw brokenImage(image, 'a layer blob', failed.reason);
    throw failed.reason;
  }
  return await put(
    destination,
    { ...value, config: configDescriptor },
    read.parsed.mediaType,
    job.tag,
    options,
  );
}

/** The layers of `layers` the stage's repository holds. */
async function held(
  ctx: RepoContext,
  layers: readonly Descriptor[],
  options: OperationOptions,
): Promise<Descriptor[]> {
  const present: Descriptor[] = [];
  for (const layer of layers) {
    if (await ctx.registry.headBlob(ctx.repository, layer.digest, signalOf(options))) present.push(layer);
  }
  return present;
}

/** The config with every `werf*` label gone and the mutation applied to its `config` object. */
async function exportConfig(
  config: Record<string, unknown>,
  options: ExportStageOptions,
): Promise<Record<string, unknown>> {
  const inner =
    typeof config.config === 'object' && config.config !== null && !Array.isArray(config.config)
      ? { ...(config.config as Record<string, unknown>) }
      : {};
  const labels = inner.Labels;
  if (typeof labels === 'object' && labels !== null) {
    inner.Labels = Object.fromEntries(
      Object.entries(labels as Record<string, unknown>).filter(([key]) => !key.startsWith(Labels.werf)),
    );
  }
  const mutated = options.mutateConfig ? await options.mutateConfig(inner) : inner;
  return { ...config, config: mutated };
}

async function putBlobOnce(
  destination: Destination,
  descriptor: Descriptor,
  bytes: Uint8Array,
  options: OperationOptions,
): Promise<void> {
  const { registry, repository } = destination;
  if (await registry.headBlob(repository, descriptor.digest, signalOf(options))) return;
  await registry.putBlob(repository, bytes, {
    digest: descriptor.digest,
    size: descriptor.size,
    ...signalOf(options),
  });
}

async function put(
  destination: Destination,
  value: Record<string, unknown>,
  mediaType: string,
  tag: string | undefined,
  options: OperationOptions,
): Promise<{ digest: Digest; mediaType: string; size: number }> {
  const bytes = encoder.encode(JSON.stringify(value));
  const digest = digestOf(bytes);
  const result = await destination.registry.putManifest(destination.repository, tag ?? digest, {
    bytes,
    mediaType,
    ...signalOf(options),
  });
  return { digest: result.digest, mediaType, size: bytes.byteLength };
}
