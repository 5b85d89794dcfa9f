import type { Digest, OperationOptions } from '@stowage/oci';
import type { RepoContext } from './context.js';

/** What to remove: a tag, and the manifest it points at unless another tag still needs it. */
export interface RemoveImageTarget {
  readonly tag: string;
  /** The manifest digest, when known (saves a HEAD). */
  readonly digest?: Digest;
  /**
   * Keep the manifest: only the tag goes (a custom tag shares its stage's
   * digest). Without a tag delete, the tag is retired by pointing it at a
   * unique throwaway manifest that is then deleted by digest.
   */
  readonly keepManifest?: boolean;
  /** Named in errors: `stage`, `rejected record`, `managed-image record`… */
  readonly what: string;
}

/**
 * Removes an image the way werf does (the tag, then the manifest by digest;
 * not-found is success), without ever deleting a digest another tag still
 * needs. A refusal is `DELETE_REFUSED` naming the registry and the record.
 */
export async function removeImage(
  _ctx: RepoContext,
  _target: RemoveImageTarget,
  _options: OperationOptions = {},
): Promise<void> {
  throw new Error('not implemented: removeImage');
}
