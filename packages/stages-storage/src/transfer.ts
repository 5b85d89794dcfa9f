// Moving stages: between storages (copyFromStorage) and between a storage and the local
// image store (fetch, store, should-fetch).
import { copyImage } from '@stowage/copy';
import { isStowageError, type OperationOptions } from '@stowage/oci';
import { encodeStageTag } from '@stowage/tags';
import type { RepoContext } from './context.js';
import { StagesStorageError } from './errors.js';
import { brokenImage } from './image-info.js';
import { getStageDesc } from './stages.js';
import type { ImageLocation, LocalImages, StageDesc, StageID, StagesStorage } from './types.js';

type StageRef = Pick<StageID, 'digest' | 'creationTs'>;

const signalOf = (options: OperationOptions = {}) => (options.signal ? { signal: options.signal } : {});

/**
 * A repository name for a storage address in the local image store: lower
 * case, every character outside `[a-z0-9._/-]` a `-`, runs of separators one
 * `-`, no empty component and none starting or ending with a separator
 * (`127.0.0.1:5000/stages` → `127.0.0.1-5000/stages`).
 */
export function localRepositoryOf(address: string): string {
  const components = address
    .toLowerCase()
    .replace(/[^a-z0-9._/-]/g, '-')
    .split('/')
    .map((component) =>
      component
        .replace(/[._-]{2,}/g, '-')
        .replace(/^[._-]+/, '')
        .replace(/[._-]+$/, ''),
    )
    .filter((component) => component !== '');
  return components.length > 0 ? components.join('/') : 'stages';
}

const missing = (error: unknown) =>
  isStowageError(error, 'MANIFEST_UNKNOWN') ||
  isStowageError(error, 'BLOB_UNKNOWN') ||
  isStowageError(error, 'NAME_UNKNOWN');

/**
 * Copies a stage image between two locations. The stage tag absent at the
 * source is `STAGE_NOT_FOUND`; a blob or child manifest it references that is
 * gone is `BROKEN_IMAGE` (werf's ErrBrokenImage).
 */
async function copyStage(
  from: ImageLocation & { readonly tag: string; readonly name: string },
  to: ImageLocation & { readonly tag: string },
  options: OperationOptions = {},
): Promise<void> {
  try {
    await copyImage(
      { registry: from.registry, repository: from.repository, reference: from.tag },
      { registry: to.registry, repository: to.repository, tag: to.tag },
      signalOf(options),
    );
  } catch (error) {
    if (!missing(error)) throw error;
    const head = await from.registry
      .headManifest(from.repository, from.tag, signalOf(options))
      .catch((headError: unknown) => {
        if (isStowageError(headError, 'NAME_UNKNOWN')) return undefined;
        throw headError;
      });
    if (!head) {
      throw new StagesStorageError('STAGE_NOT_FOUND', `stage image ${from.name} is not there`, {
        details: { image: from.name },
        cause: error,
      });
    }
    throw brokenImage(from.name, 'a blob or child manifest it references', error);
  }
}

/** The stage's description here, copying it from `source` first unless it is here already. */
export async function copyFromStorage(
  self: StagesStorage,
  ctx: RepoContext,
  source: StagesStorage,
  stage: StageRef,
  options?: OperationOptions,
): Promise<StageDesc | null> {
  const here = await getStageDesc(ctx, stage, options);
  if (here) return here;
  const tag = self.stageTag(stage);
  await copyStage(
    { ...source.location, tag: source.stageTag(stage), name: source.stageImageName(stage) },
    { registry: ctx.registry, repository: ctx.repository, tag },
    options,
  );
  ctx.noteTag(tag, true);
  return await getStageDesc(ctx, stage, options);
}

function localOf(ctx: RepoContext, local: LocalImages): ImageLocation {
  return { registry: local.registry, repository: local.repository ?? localRepositoryOf(ctx.address) };
}

/** Pulls the stage image into the local image store (under the stage tag). */
export async function fetchImage(
  ctx: RepoContext,
  stage: StageRef,
  options: { local: LocalImages } & OperationOptions,
): Promise<void> {
  const tag = encodeStageTag(stage);
  await copyStage(
    { registry: ctx.registry, repository: ctx.repository, tag, name: ctx.imageName(tag) },
    { ...localOf(ctx, options.local), tag },
    options,
  );
}

/** Pushes the stage image from the local image store into the repository. */
export async function storeImage(
  ctx: RepoContext,
  stage: StageRef,
  options: { local: LocalImages } & OperationOptions,
): Promise<void> {
  const tag = encodeStageTag(stage);
  const local = localOf(ctx, options.local);
  await copyStage(
    { ...local, tag, name: `${local.repository}:${tag}` },
    { registry: ctx.registry, repository: ctx.repository, tag },
    options,
  );
  ctx.noteTag(tag, true);
}

/** True unless the local image store has the stage image already. */
export async function shouldFetchImage(
  ctx: RepoContext,
  stage: StageRef,
  options: { local: LocalImages } & OperationOptions,
): Promise<boolean> {
  const local = localOf(ctx, options.local);
  try {
    return (
      (await local.registry.headManifest(local.repository, encodeStageTag(stage), signalOf(options))) ===
      undefined
    );
  } catch (error) {
    if (isStowageError(error, 'NAME_UNKNOWN')) return true;
    throw error;
  }
}
