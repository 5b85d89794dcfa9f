import type { OperationOptions, Registry } from '@stowage/oci';
import {
  describeImageAt,
  type ImageInfo,
  type LocalImages,
  localRepositoryOf,
} from '@stowage/stages-storage';
import { StorageManagerError } from './errors.js';

/** An image in some registry: a repository and a tag. */
export interface ImageSource {
  readonly registry: Registry;
  readonly repository: string;
  /** Default: the reference's tag. */
  readonly tag?: string;
}

export interface GetImageInfoOptions extends OperationOptions {
  /**
   * The local image store, looked in first. Its `repository` is where the
   * reference lives there; default the reference's address made a
   * repository name as the stages storages name their local repositories
   * (`localRepositoryOf`).
   */
  readonly local?: LocalImages;
  /** Where the image is when the local store does not have it. */
  readonly registry?: ImageSource;
  /** Or a function answering the info of a reference (werf's docker registry API). */
  readonly resolver?: (ref: string, options: OperationOptions) => Promise<ImageInfo | null>;
}

/** Splits `<address>:<tag>` (a digest reference `<address>@sha256:…` keeps its digest as the tag). */
export function splitImageRef(ref: string): { address: string; tag: string } {
  const at = ref.indexOf('@');
  if (at > 0) return { address: ref.slice(0, at), tag: ref.slice(at + 1) };
  const colon = ref.lastIndexOf(':');
  if (colon > ref.lastIndexOf('/') && colon > 0)
    return { address: ref.slice(0, colon), tag: ref.slice(colon + 1) };
  return { address: ref, tag: 'latest' };
}

/**
 * werf's GetImageInfo: the local store first (werf's container backend),
 * then the registry or resolver given. Null when none has the image.
 */
export async function getImageInfo(
  ref: string,
  options: GetImageInfoOptions = {},
): Promise<ImageInfo | null> {
  if (!options.local && !options.registry && !options.resolver)
    throw new StorageManagerError(
      'OPTIONS_INVALID',
      'getImageInfo needs the local image store, a registry or a resolver to look in',
      { details: { key: 'registry' } },
    );
  const { address, tag } = splitImageRef(ref);
  const operation: OperationOptions = options.signal ? { signal: options.signal } : {};
  if (options.local) {
    const info = await describeImageAt(
      {
        registry: options.local.registry,
        repository: options.local.repository ?? localRepositoryOf(address),
        address,
      },
      tag,
      operation,
    );
    if (info) return info;
  }
  if (options.registry) {
    return await describeImageAt(
      { registry: options.registry.registry, repository: options.registry.repository, address },
      options.registry.tag ?? tag,
      operation,
    );
  }
  if (options.resolver) return await options.resolver(ref, operation);
  return null;
}
