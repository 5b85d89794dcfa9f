/** The distribution API routes, recognized from the path alone. */
export type Route =
  | { readonly kind: 'ping' }
  | { readonly kind: 'catalog' }
  | { readonly kind: 'tags'; readonly name: string }
  | { readonly kind: 'manifest'; readonly name: string; readonly reference: string }
  | { readonly kind: 'blob'; readonly name: string; readonly digest: string }
  | { readonly kind: 'uploads'; readonly name: string }
  | { readonly kind: 'upload'; readonly name: string; readonly id: string }
  | { readonly kind: 'referrers'; readonly name: string; readonly digest: string };

/** The label a route is counted and logged under. */
export function routeLabel(route: Route | undefined): string {
  return route?.kind ?? 'unknown';
}

const REPOSITORY_ROUTE =
  /^(.+?)\/(?:(tags\/list)|manifests\/([^/]+)|blobs\/uploads\/?([^/]*)|blobs\/([^/]+)|referrers\/([^/]+))$/;

function decode(segment: string): string | undefined {
  try {
    return decodeURIComponent(segment);
  } catch {
    return undefined;
  }
}

/**
 * Parses a request path (without the query). A repository name may hold
 * slashes, so the route is found from the end. The name is returned as sent
 * (percent-decoded); validating it is the caller's job. `undefined` for a
 * path outside the API.
 */
export function parseRoute(path: string): Route | undefined {
  if (path === '/v2' || path === '/v2/') return { kind: 'ping' };
  if (!path.startsWith('/v2/')) return undefined;
  const rest = path.slice(4);
  if (rest === '_catalog') return { kind: 'catalog' };
  const match = REPOSITORY_ROUTE.exec(rest);
  if (!match) return undefined;
  const [, rawName, tags, reference, uploadId, blobDigest, referrersDigest] = match;
  const name = decode(rawName as string);
  if (name === undefined) return undefined;
  // The shortest name wins ("a/blobs/uploads/" is an upload in "a"), except where a
  // longer name is the only reading ("a/manifests/b/manifests/c").
  if (tags !== undefined) return { kind: 'tags', name };
  if (reference !== undefined) {
    const ref = decode(reference);
    return ref === undefined ? undefined : { kind: 'manifest', name, reference: ref };
  }
  if (uploadId !== undefined) {
    if (uploadId === '') return { kind: 'uploads', name };
    const id = decode(uploadId);
    return id === undefined ? undefined : { kind: 'upload', name, id };
  }
  if (blobDigest !== undefined) {
    const digest = decode(blobDigest);
    return digest === undefined ? undefined : { kind: 'blob', name, digest };
  }
  if (referrersDigest !== undefined) {
    const digest = decode(referrersDigest);
    return digest === undefined ? undefined : { kind: 'referrers', name, digest };
  }
  return undefined;
}
