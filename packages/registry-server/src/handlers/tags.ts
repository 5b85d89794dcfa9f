// `/v2/<name>/tags/list`.
import type { HandlerContext } from '../internal/context.js';
import { type Exchange, encodeName, json } from '../internal/exchange.js';
import { linkHeader, paging, readOnlyRoute, repositoryName } from '../internal/params.js';

export async function tags(context: HandlerContext, exchange: Exchange, route: { readonly name: string }) {
  readOnlyRoute(exchange.request);
  const name = repositoryName(route.name);
  const options = paging(exchange.url);
  const page = await context.registry.listTags(name, { ...options, signal: exchange.signal });
  json(
    exchange,
    200,
    { name, tags: page.items },
    { link: linkHeader(`/v2/${encodeName(name)}/tags/list`, options.n, page.next) },
  );
}
