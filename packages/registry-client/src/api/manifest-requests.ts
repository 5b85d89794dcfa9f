import type { IncomingHttpHeaders } from 'node:http';
import {
  type Digest,
  DigestMismatchError,
  detectManifestMediaType,
  digestAlgorithm,
  digestOf,
  type GetManifestOptions,
  isManifestMediaType,
  MAX_MANIFEST_SIZE,
  type ManifestContent,
  manifestMediaTypes,
} from '@stowage/oci';
import {
  bareMediaType,
  type CheckedReference,
  optionalDigest,
  parseJsonSafe,
  signalOf,
} from '../internal/checks.js';
import type { ClientContext } from '../internal/context.js';
import { pullScope, pushScope } from '../internal/scope.js';
import { headerValue, type RegistryHost } from '../internal/transport.js';

/** `GET /v2/<name>/manifests/<reference>` on one host, the bytes checked against the digests asked for and claimed. */
export async function fetchManifest(
  context: ClientContext,
  host: RegistryHost,
  repo: string,
  ref: CheckedReference,
  options: GetManifestOptions,
): Promise<ManifestContent> {
  const response = await context.sendForBytes(
    {
      method: 'GET',
      target: `/v2/${repo}/manifests/${ref.value}`,
      headers: { accept: (options.accept ?? manifestMediaTypes).join(', ') },
      endpoint: 'manifest',
      accept: [200],
      scopes: [pullScope(repo)],
      ...signalOf(options),
    },
    MAX_MANIFEST_SIZE,
    host,
  );
  const bytes = new Uint8Array(response.bytes);
  const digest = verifyManifestBytes(
    bytes,
    ref.digest,
    headerValue(response.headers, 'docker-content-digest'),
  );
  return { digest, mediaType: manifestMediaType(response.headers, bytes), size: bytes.byteLength, bytes };
}

export interface ManifestPut {
  readonly repo: string;
  readonly reference: string;
  readonly bytes: Uint8Array;
  readonly mediaType: string;
  /** Sends `Stowage-Sparse-Index: true`: an index whose children are absent is to be accepted. */
  readonly sparse?: boolean;
  readonly signal?: AbortSignal | undefined;
}

/** `PUT /v2/<name>/manifests/<reference>` with the bytes as they are. */
export function putManifestBytes(context: ClientContext, put: ManifestPut) {
  return context.sendForHeaders({
    method: 'PUT',
    target: `/v2/${put.repo}/manifests/${put.reference}`,
    headers: { 'content-type': put.mediaType, ...(put.sparse ? { 'stowage-sparse-index': 'true' } : {}) },
    body: put.bytes,
    endpoint: 'manifest',
    accept: [200, 201, 202, 204],
    scopes: [pushScope(put.repo)],
    ...signalOf(put),
  });
}

/** Checks manifest bytes against the digest asked for and the digest the registry claims. */
function verifyManifestBytes(
  bytes: Uint8Array,
  requested: Digest | undefined,
  header: string | undefined,
): Digest {
  let digest: Digest;
  if (requested !== undefined) {
    const actual = digestOf(bytes, digestAlgorithm(requested));
    if (actual !== requested) throw new DigestMismatchError(requested, actual);
    digest = requested;
  } else {
    digest = digestOf(bytes);
  }
  const claimed = optionalDigest(header);
  if (claimed !== undefined) {
    const actual = digestOf(bytes, digestAlgorithm(claimed));
    if (actual !== claimed) throw new DigestMismatchError(claimed, actual);
    if (requested === undefined) digest = claimed;
  }
  return digest;
}

/** The manifest's media type: the `Content-Type` when it names a manifest type, else what the body declares. */
function manifestMediaType(headers: IncomingHttpHeaders, bytes: Uint8Array): string {
  const declared = bareMediaType(headerValue(headers, 'content-type'));
  if (declared !== undefined && isManifestMediaType(declared)) return declared;
  const detected = detectManifestMediaType(parseJsonSafe(bytes));
  return detected ?? declared ?? 'application/octet-stream';
}
