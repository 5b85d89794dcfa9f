// What every route handler of one `createRegistryHandler` shares.
import type { RegistryCapabilities, RegistryWithUploads } from '@stowage/oci';
import type { Authorizer } from '../auth/types.js';
import type { BodyReader } from './body.js';
import type { SessionTracker } from './sessions.js';

export interface HandlerContext {
  /** The backend, with upload sessions (its own, or the shared ones over a staging area). */
  readonly registry: RegistryWithUploads;
  readonly authorizer: Authorizer;
  /** No access control at all: only then may a mount without `from` look in every repository. */
  readonly openAccess: boolean;
  /** Refuse every write with 405 `UNSUPPORTED`. */
  readonly readOnly: boolean;
  /** Allow `DELETE` of manifests, tags and blobs (upload cancels are always allowed). */
  readonly allowDelete: boolean;
  readonly maxManifestSize: number;
  readonly maxBlobSize: number | undefined;
  readonly body: BodyReader;
  readonly sessions: SessionTracker;
  /** What the HTTP API serves (asked of the backend once, then kept). */
  capabilities(): Promise<RegistryCapabilities>;
}
