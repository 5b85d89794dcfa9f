// `/v2/<name>/referrers/<digest>`: the referrers API, from the backend's `listReferrers`.
import type { HandlerContext } from '../internal/context.js';
import { type Exchange, send } from '../internal/exchange.js';
import { digestParam, readOnlyRoute, repositoryName } from '../internal/params.js';

const INDEX_MEDIA_TYPE = 'application/vnd.oci.image.index.v1+json';

export async function referrers(
  context: HandlerContext,
  exchange: Exchange,
  route: { readonly name: string; readonly digest: string },
): Promise<void> {
  readOnlyRoute(exchange.request);
  const name = repositoryName(route.name);
  const digest = digestParam(route.digest, 'the subject digest');
  const artifactType = exchange.url.searchParams.get('artifactType');
  const result = await context.registry.listReferrers(name, digest, {
    signal: exchange.signal,
    ...(artifactType !== null ? { artifactType } : {}),
  });
  const filters = result.filtersApplied.join(',');
  send(
    exchange,
    200,
    { 'content-type': INDEX_MEDIA_TYPE, ...(filters ? { 'oci-filters-applied': filters } : {}) },
    JSON.stringify({ schemaVersion: 2, mediaType: INDEX_MEDIA_TYPE, manifests: result.manifests }),
  );
}
