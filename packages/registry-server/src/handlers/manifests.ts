// `/v2/<name>/manifests/<reference>`: get, head, put (sparse on request) and delete, by tag or digest.
import { isDigest, isValidTag, parseDigest, parseManifest, RegistryError } from '@stowage/oci';
import { SPARSE_INDEX_HEADER } from '../capabilities.js';
import { HttpError } from '../errors.js';
import type { HandlerContext } from '../internal/context.js';
import { type Exchange, encodeName, send } from '../internal/exchange.js';
import { digestParam, methodNotAllowed, repositoryName } from '../internal/params.js';

/** The media types a `GET` or `HEAD` accepts, from its `Accept` header. */
function accepted(header: string | undefined): string[] {
  return (header ?? '')
    .split(',')
    .map((part) => part.split(';')[0]?.trim() ?? '')
    .filter(Boolean);
}

/** Whether a manifest `PUT` asks for a sparse index (`Stowage-Sparse-Index: true`). */
function sparseRequested(header: string | string[] | undefined): boolean {
  return typeof header === 'string' && header.trim().toLowerCase() === 'true';
}

export async function manifests(
  context: HandlerContext,
  exchange: Exchange,
  route: { readonly name: string; readonly reference: string },
): Promise<void> {
  const { registry } = context;
  const { request, signal } = exchange;
  const name = repositoryName(route.name);
  const reference = route.reference;
  const method = request.method;
  if (method !== 'GET' && method !== 'HEAD' && method !== 'PUT' && method !== 'DELETE') {
    throw methodNotAllowed('GET, HEAD, PUT, DELETE');
  }
  const byDigest = reference.includes(':');
  if (byDigest ? !isDigest(reference) : !isValidTag(reference)) {
    const shown = JSON.stringify(reference.slice(0, 300));
    // A push names what it stores: a bad name is the client's mistake, said as such. A read
    // or delete of a reference that cannot exist finds nothing, as in distribution (whose
    // router matches only valid references) and as the distribution-spec conformance suite expects.
    if (method === 'PUT') {
      if (byDigest) digestParam(reference, 'the reference');
      throw new HttpError('TAG_INVALID', `invalid tag ${shown}`, { status: 400 });
    }
    throw new HttpError('MANIFEST_UNKNOWN', `manifest ${shown} is not in ${name}`, {
      status: 404,
      detail: { name, reference: reference.slice(0, 300) },
    });
  }
  if (method === 'HEAD') {
    const head = await registry.headManifest(name, reference, {
      accept: accepted(request.headers.accept),
      signal,
    });
    if (!head) throw new RegistryError('MANIFEST_UNKNOWN', `manifest ${reference} is not in ${name}`);
    send(exchange, 200, {
      'content-type': head.mediaType,
      'content-length': head.size,
      'docker-content-digest': head.digest,
      etag: `"${head.digest}"`,
    });
    return;
  }
  if (method === 'GET') {
    const content = await registry.getManifest(name, reference, {
      accept: accepted(request.headers.accept),
      signal,
    });
    if (request.headers['if-none-match'] === `"${content.digest}"`) {
      send(exchange, 304, { 'docker-content-digest': content.digest, etag: `"${content.digest}"` });
      return;
    }
    send(
      exchange,
      200,
      {
        'content-type': content.mediaType,
        'docker-content-digest': content.digest,
        etag: `"${content.digest}"`,
      },
      content.bytes,
    );
    return;
  }
  if (method === 'PUT') {
    const bytes = await context.body.readAll(exchange, context.maxManifestSize);
    let mediaType = request.headers['content-type']?.split(';')[0]?.trim();
    if (!mediaType || mediaType === 'application/octet-stream') {
      mediaType = parseManifest(bytes, { maxSize: context.maxManifestSize }).mediaType;
    }
    const sparse = sparseRequested(request.headers[SPARSE_INDEX_HEADER]);
    const result = await registry.putManifest(name, reference, {
      bytes,
      mediaType,
      signal,
      ...(sparse ? { sparse } : {}),
    });
    send(exchange, 201, {
      location: `/v2/${encodeName(name)}/manifests/${result.digest}`,
      'docker-content-digest': result.digest,
      ...(result.subject ? { 'oci-subject': result.subject } : {}),
    });
    return;
  }
  // DELETE
  if (byDigest) await registry.deleteManifest(name, parseDigest(reference), { signal });
  else await registry.deleteTag(name, reference, { signal });
  send(exchange, 202, {});
}
