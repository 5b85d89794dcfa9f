// From a parsed route to its handler: the name check, the authorizer, the read-only and delete
// switches, then the route group (one file each under handlers/).
import type { Access } from './auth/types.js';
import { HttpError, refusalError } from './errors.js';
import { announceCapabilities, ping } from './handlers/base.js';
import { blobs } from './handlers/blobs.js';
import { catalog } from './handlers/catalog.js';
import { manifests } from './handlers/manifests.js';
import { referrers } from './handlers/referrers.js';
import { tags } from './handlers/tags.js';
import { startUpload, upload } from './handlers/uploads.js';
import type { HandlerContext } from './internal/context.js';
import type { Exchange } from './internal/exchange.js';
import { repositoryName } from './internal/params.js';
import type { Route } from './routes.js';

const WRITE_METHODS = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);

/**
 * What the route needs from the authorizer. Every upload route (start, status,
 * chunk, finish, cancel) needs pull and push, whatever the method: cancelling
 * your own upload is not a delete. Pull on a mount's `from` is asked for
 * separately, when mounting, because lacking it only means no mount.
 */
function accessFor(route: Route, method: string): Access[] {
  if (route.kind === 'ping') return [];
  if (route.kind === 'catalog') return [{ type: 'registry', name: 'catalog', actions: ['*'] }];
  const actions =
    route.kind === 'uploads' || route.kind === 'upload'
      ? ['pull', 'push']
      : method === 'GET' || method === 'HEAD'
        ? ['pull']
        : method === 'DELETE'
          ? ['delete']
          : ['pull', 'push'];
  return [{ type: 'repository', name: route.name, actions }];
}

/** Serves one request: every refusal is thrown, for the error edge to answer. */
export async function dispatch(
  context: HandlerContext,
  exchange: Exchange,
  route: Route | undefined,
): Promise<void> {
  const { request } = exchange;
  const method = request.method ?? 'GET';
  if (!route) {
    // 404 either way, as distribution: a path under /v2/ that names no endpoint of a
    // repository, or a path outside the API altogether
    if ((request.url ?? '/').startsWith('/v2/')) {
      throw new HttpError('NAME_UNKNOWN', 'no repository endpoint at this path', { status: 404 });
    }
    throw new HttpError('UNSUPPORTED', 'not a distribution API path', { status: 404 });
  }
  // Every answer of the ping says what the server can do, a 401 challenge included.
  if (route.kind === 'ping') await announceCapabilities(context, exchange);
  // Only a valid name goes on to the authorizer (and into a challenge's scope): an
  // invalid one is refused here, whoever asks.
  if ('name' in route) repositoryName(route.name);
  const access = accessFor(route, method);
  const decision = await context.authorizer.authorize(request, access);
  if (!decision.ok) throw refusalError(decision, access);
  exchange.principal = decision.principal;
  if (context.readOnly && WRITE_METHODS.has(method)) {
    throw new HttpError('UNSUPPORTED', 'the registry is in read-only mode', { status: 405 });
  }
  if (!context.allowDelete && method === 'DELETE' && route.kind !== 'upload') {
    throw new HttpError('UNSUPPORTED', 'deletes are disabled on this registry', { status: 405 });
  }
  switch (route.kind) {
    case 'ping':
      return ping(exchange);
    case 'catalog':
      return catalog(context, exchange);
    case 'tags':
      return tags(context, exchange, route);
    case 'manifest':
      return manifests(context, exchange, route);
    case 'blob':
      return blobs(context, exchange, route);
    case 'uploads':
      return startUpload(context, exchange, route);
    case 'upload':
      return upload(context, exchange, route);
    case 'referrers':
      return referrers(context, exchange, route);
  }
}
