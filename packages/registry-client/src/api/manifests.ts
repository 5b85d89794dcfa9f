import {
  type Descriptor,
  type Digest,
  DigestMismatchError,
  digestAlgorithm,
  digestOf,
  type GetManifestOptions,
  isManifestMediaType,
  isStowageError,
  type ManifestContent,
  manifestMediaTypes,
  type OperationOptions,
  type PutManifestOptions,
  type PutManifestResult,
  parseManifest,
  RegistryError,
  referrerDescriptor,
  subjectOf,
} from '@stowage/oci';
import {
  bareMediaType,
  checkDigest,
  checkReference,
  checkRepository,
  contentLength,
  optionalDigest,
  signalOf,
} from '../internal/checks.js';
import type { ClientContext } from '../internal/context.js';
import { deleteScope, pullScope } from '../internal/scope.js';
import { headerValue } from '../internal/transport.js';
import { fetchManifest, putManifestBytes } from './manifest-requests.js';
import { capabilities } from './ping.js';
import { hasReferrersApi, updateReferrersTag } from './referrers.js';

/** `GET /v2/<name>/manifests/<reference>`; by digest from the mirrors first. */
export async function getManifest(
  context: ClientContext,
  repository: string,
  reference: string,
  options: GetManifestOptions = {},
): Promise<ManifestContent> {
  const repo = checkRepository(repository);
  const ref = checkReference(reference);
  const hosts = ref.digest ? context.pullHosts() : [context.registry];
  return await context.fromHosts(hosts, options.signal, (host) =>
    fetchManifest(context, host, repo, ref, options),
  );
}

/** `HEAD /v2/<name>/manifests/<reference>`, reading the manifest when the headers say too little. */
export async function headManifest(
  context: ClientContext,
  repository: string,
  reference: string,
  options: GetManifestOptions = {},
): Promise<Descriptor | undefined> {
  const repo = checkRepository(repository);
  const ref = checkReference(reference);
  const response = await context.sendForHeaders({
    method: 'HEAD',
    target: `/v2/${repo}/manifests/${ref.value}`,
    headers: { accept: (options.accept ?? manifestMediaTypes).join(', ') },
    endpoint: 'manifest',
    accept: [200, 404],
    scopes: [pullScope(repo)],
    ...signalOf(options),
  });
  if (response.status === 404) return undefined;
  const headerDigest = optionalDigest(headerValue(response.headers, 'docker-content-digest'));
  const size = contentLength(response.headers);
  const mediaType = bareMediaType(headerValue(response.headers, 'content-type'));
  if (ref.digest && headerDigest && digestAlgorithm(headerDigest) === digestAlgorithm(ref.digest)) {
    if (headerDigest !== ref.digest) throw new DigestMismatchError(ref.digest, headerDigest);
  }
  const digest = ref.digest ?? headerDigest;
  if (
    digest === undefined ||
    size === undefined ||
    mediaType === undefined ||
    !isManifestMediaType(mediaType)
  ) {
    // Not enough in the headers: read the manifest itself.
    try {
      const content = await fetchManifest(context, context.registry, repo, ref, options);
      return { mediaType: content.mediaType, digest: content.digest, size: content.size };
    } catch (error) {
      if (isStowageError(error, 'MANIFEST_UNKNOWN') || isStowageError(error, 'NAME_UNKNOWN'))
        return undefined;
      throw error;
    }
  }
  return { mediaType, digest, size };
}

/**
 * `PUT /v2/<name>/manifests/<reference>`, validated first; keeps the referrers
 * tag up to date for a manifest with a `subject` when the registry has no
 * referrers API. `sparse: true` sends `Stowage-Sparse-Index: true`, and is
 * refused with `UNSUPPORTED` before any request when the registry's
 * capabilities lack `sparseIndex`.
 */
export async function putManifest(
  context: ClientContext,
  repository: string,
  reference: string,
  options: PutManifestOptions,
): Promise<PutManifestResult> {
  const { bytes } = options;
  const repo = checkRepository(repository);
  const ref = checkReference(reference);
  const digest = ref.digest ?? digestOf(bytes);
  if (ref.digest) {
    const actual = digestOf(bytes, digestAlgorithm(ref.digest));
    if (actual !== ref.digest) throw new DigestMismatchError(ref.digest, actual);
  }
  if (context.options.validateManifests) validate(bytes, options.mediaType);
  if (options.sparse === true && !(await capabilities(context, signalOf(options))).sparseIndex) {
    throw new RegistryError(
      'UNSUPPORTED',
      `${context.options.registry} does not take a sparse index (its capabilities lack sparseIndex)`,
      { details: { registry: context.options.registry } },
    );
  }
  const response = await putManifestBytes(context, {
    repo,
    reference: ref.value,
    bytes,
    mediaType: options.mediaType,
    ...(options.sparse === true ? { sparse: true } : {}),
    signal: options.signal,
  });
  const echoed = optionalDigest(headerValue(response.headers, 'docker-content-digest'));
  if (echoed !== undefined) {
    const actual = digestOf(bytes, digestAlgorithm(echoed));
    if (actual !== echoed) throw new DigestMismatchError(echoed, actual);
  }
  const subject = subjectOf(bytes);
  if (subject === undefined) return { digest };
  const subjectHeader = headerValue(response.headers, 'oci-subject');
  if (subjectHeader !== undefined) context.referrersApi = true;
  else if (
    context.options.referrersTagFallback &&
    !(await hasReferrersApi(context, repo, subject, options.signal))
  ) {
    const descriptor = referrerDescriptor({
      digest,
      mediaType: options.mediaType,
      size: bytes.byteLength,
      manifest: bytes,
    });
    await updateReferrersTag(context, repo, subject, options.signal, (descriptors) =>
      descriptors.some((d) => d.digest === digest) ? undefined : [...descriptors, descriptor],
    );
  }
  return { digest, subject };
}

/**
 * Refused here rather than by the registry: distribution 2.8 answers some
 * invalid manifests with DIGEST_INVALID or a 500, which would be misleading or retried.
 */
function validate(bytes: Uint8Array, mediaType: string): void {
  try {
    parseManifest(bytes, { mediaType });
  } catch (cause) {
    if (!isStowageError(cause)) throw cause;
    const code =
      cause.code === 'UNSUPPORTED' || cause.code === 'SIZE_INVALID' ? cause.code : 'MANIFEST_INVALID';
    throw new RegistryError(code, cause.message, { cause, details: cause.details });
  }
}

/** `DELETE /v2/<name>/manifests/<digest>`, removing it from its subject's referrers tag when there is one. */
export async function deleteManifest(
  context: ClientContext,
  repository: string,
  digest: Digest,
  options: OperationOptions = {},
): Promise<void> {
  const repo = checkRepository(repository);
  const target = checkDigest(digest);
  let subject: Digest | undefined;
  if (context.options.referrersTagFallback && context.referrersApi !== true) {
    try {
      const content = await fetchManifest(
        context,
        context.registry,
        repo,
        { value: target, digest: target },
        options,
      );
      subject = subjectOf(content.bytes);
    } catch (error) {
      if (options.signal?.aborted) throw error;
      // The delete below reports what is wrong, if anything.
    }
  }
  await context.sendForHeaders({
    method: 'DELETE',
    target: `/v2/${repo}/manifests/${target}`,
    endpoint: 'manifest',
    accept: [200, 202, 204],
    scopes: [deleteScope(repo)],
    ...signalOf(options),
  });
  if (subject !== undefined && !(await hasReferrersApi(context, repo, subject, options.signal))) {
    await updateReferrersTag(context, repo, subject, options.signal, (descriptors) =>
      descriptors.some((d) => d.digest === target)
        ? descriptors.filter((d) => d.digest !== target)
        : undefined,
    );
  }
}

/**
 * Tag deletion (`DELETE /v2/<name>/manifests/<tag>`). Registries without it
 * (distribution 2.8 answers 400 DIGEST_INVALID, others 405) are reported as
 * `UNSUPPORTED`: no safe emulation exists, since deleting the manifest by
 * digest would remove every other tag pointing at it.
 */
export async function deleteTag(
  context: ClientContext,
  repository: string,
  tag: string,
  options: OperationOptions = {},
): Promise<void> {
  const repo = checkRepository(repository);
  const ref = checkReference(tag);
  if (ref.digest) throw new RegistryError('TAG_INVALID', 'deleteTag takes a tag, not a digest');
  await context.sendForHeaders({
    method: 'DELETE',
    target: `/v2/${repo}/manifests/${ref.value}`,
    endpoint: 'manifest',
    accept: [200, 202, 204],
    scopes: [deleteScope(repo)],
    codeFor: (status, diagnostics) =>
      status === 400 || status === 405 || diagnostics.some((d) => d.code === 'UNSUPPORTED')
        ? 'UNSUPPORTED'
        : status === 404
          ? 'MANIFEST_UNKNOWN'
          : undefined,
    ...signalOf(options),
  });
}
