// `/v2/_catalog`: every repository, or with access control only those the caller may pull.
import type { IncomingMessage } from 'node:http';
import type { ListPage } from '@stowage/oci';
import { refusalError } from '../errors.js';
import type { HandlerContext } from '../internal/context.js';
import { type Exchange, json } from '../internal/exchange.js';
import { linkHeader, paging, readOnlyRoute } from '../internal/params.js';

/** Repositories asked about per store page while building a filtered catalog page. */
const CATALOG_BATCH = 1000;

export async function catalog(context: HandlerContext, exchange: Exchange): Promise<void> {
  readOnlyRoute(exchange.request);
  const options = paging(exchange.url);
  const page = context.openAccess
    ? await context.registry.listRepositories({ ...options, signal: exchange.signal })
    : await pullableRepositories(context, exchange, options);
  json(
    exchange,
    200,
    { repositories: page.items },
    { link: linkHeader('/v2/_catalog', options.n, page.next) },
  );
}

/** Which of `names` the request may pull, in their order: the authorizer's `pullable`, else `authorize` per name. */
async function pullableOf(
  context: HandlerContext,
  request: IncomingMessage,
  names: readonly string[],
): Promise<Set<string>> {
  const { authorizer } = context;
  if (names.length === 0) return new Set();
  if (authorizer.pullable) return new Set(await authorizer.pullable(request, names));
  const decisions = await Promise.all(
    names.map((name) => authorizer.authorize(request, [{ type: 'repository', name, actions: ['pull'] }])),
  );
  // An authorizer that cannot decide now (429) fails the page: leaving those repositories
  // out would be a wrong answer, not a slow one.
  const busy = decisions.find((decision) => !decision.ok && decision.status === 429);
  if (busy && !busy.ok) throw refusalError(busy);
  return new Set(names.filter((_, i) => decisions[i]?.ok === true));
}

/**
 * A catalog page of only the repositories the caller may pull: `n` and `last`
 * apply to that filtered list, and `next` is set only when another entry the
 * caller may pull follows the page.
 */
async function pullableRepositories(
  context: HandlerContext,
  exchange: Exchange,
  options: { n?: number; last?: string },
): Promise<ListPage> {
  const { n } = options;
  if (n === 0) return { items: [] };
  const batch = n === undefined ? CATALOG_BATCH : Math.min(Math.max(n + 1, 100), CATALOG_BATCH);
  const items: string[] = [];
  let cursor = options.last;
  for (;;) {
    const page = await context.registry.listRepositories({
      n: batch,
      ...(cursor !== undefined ? { last: cursor } : {}),
      signal: exchange.signal,
    });
    const allowed = await pullableOf(context, exchange.request, page.items);
    for (const name of page.items) {
      if (!allowed.has(name)) continue;
      if (n !== undefined && items.length === n) return { items, next: items[items.length - 1] as string };
      items.push(name);
    }
    if (page.next === undefined || page.items.length === 0) return { items };
    cursor = page.next;
  }
}
