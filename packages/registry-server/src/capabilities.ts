// What the server can do, said over the wire: `Stowage-Capabilities` on every answer to `GET /v2/`.
import { fullCapabilities, type RegistryCapabilities } from '@stowage/oci';

/** The header `GET /v2/` carries (lower case, as Node sends it). */
export const CAPABILITIES_HEADER = 'stowage-capabilities';

/** The header a manifest `PUT` carries (`true`) to ask for a sparse index. */
export const SPARSE_INDEX_HEADER = 'stowage-sparse-index';

/** The boolean capabilities in the order the header lists them (`RegistryCapabilities`' own). */
const BOOLEAN_CAPABILITIES = (Object.keys(fullCapabilities) as (keyof RegistryCapabilities)[]).filter(
  (name): name is Exclude<keyof RegistryCapabilities, 'referrers'> => name !== 'referrers',
);

export interface ServedCapabilitiesOptions {
  /** No access control: a mount without `from` may look in every repository. */
  readonly openAccess: boolean;
  readonly readOnly: boolean;
  readonly allowDelete: boolean;
}

/**
 * What the HTTP API serves over a backend that can do `backend`: the
 * distribution API has no lock or garbage-collection endpoints; referrers are
 * answered by the referrers API from the backend's `listReferrers`, whichever
 * way the backend answers it; a mount without `from` is only done without
 * access control; deletes are off when disabled or read-only, and so are
 * mounts and sparse pushes when read-only.
 */
export function servedCapabilities(
  backend: RegistryCapabilities,
  options: ServedCapabilitiesOptions,
): RegistryCapabilities {
  const deletes = options.allowDelete && !options.readOnly;
  const writes = !options.readOnly;
  return {
    ...backend,
    deleteTag: backend.deleteTag && deletes,
    deleteManifest: backend.deleteManifest && deletes,
    deleteBlob: backend.deleteBlob && deletes,
    referrers: backend.referrers === 'none' ? 'none' : 'api',
    mount: backend.mount && writes,
    anonymousMount: backend.anonymousMount && writes && options.openAccess,
    sparseIndex: backend.sparseIndex && writes,
    lock: false,
    garbageCollect: false,
  };
}

/** `catalog, catalogPaging, …, referrers=api`: the true boolean capabilities, then how referrers are answered. */
export function encodeCapabilities(capabilities: RegistryCapabilities): string {
  const names = BOOLEAN_CAPABILITIES.filter((name) => capabilities[name] === true);
  return [...names, `referrers=${capabilities.referrers}`].join(', ');
}
