import { type ListOptions, type ListPage, pageOf } from '@stowage/oci';
import { RegistryProtocolError } from '../errors.js';
import { checkRepository, LIST_BODY_LIMIT, MAX_PAGES, parseJson, signalOf } from '../internal/checks.js';
import type { ClientContext } from '../internal/context.js';
import { nextLink } from '../internal/link.js';
import { catalogScope, pullScope, type Scope } from '../internal/scope.js';

/** `GET /v2/_catalog`. */
export async function listRepositories(context: ClientContext, options: ListOptions = {}): Promise<ListPage> {
  return await list(context, '/v2/_catalog', 'repositories', 'catalog', [catalogScope], options);
}

/** `GET /v2/<name>/tags/list`. */
export async function listTags(
  context: ClientContext,
  repository: string,
  options: ListOptions = {},
): Promise<ListPage> {
  const repo = checkRepository(repository);
  return await list(context, `/v2/${repo}/tags/list`, 'tags', 'tags', [pullScope(repo)], options);
}

/**
 * A listing, followed through every `Link` page when no `n` is given. The
 * result is sorted and free of duplicates whatever order the registry uses,
 * and `n`/`last` are applied here too (`pageOf`), since some registries
 * ignore them (distribution 2.8 does for tags).
 */
async function list(
  context: ClientContext,
  path: string,
  key: 'tags' | 'repositories',
  endpoint: 'tags' | 'catalog',
  scopes: readonly Scope[],
  options: ListOptions,
): Promise<ListPage> {
  const { n, last } = options;
  if (n !== undefined && (!Number.isSafeInteger(n) || n < 0)) {
    throw new RangeError(`n must be a non-negative integer, got ${String(n)}`);
  }
  if (n === 0) return { items: [] };
  const query = new URLSearchParams({ n: String(n ?? context.options.pageSize) });
  if (last !== undefined) query.set('last', last);
  let target = `${path}?${query}`;
  // duplicates across pages are dropped by pageOf
  const items: string[] = [];
  const visited = new Set<string>([target]);
  const origin = context.registry.origin;
  let link: string | undefined;
  for (let page = 0; page < MAX_PAGES; page++) {
    const response = await context.sendForBytes(
      { method: 'GET', target, endpoint, accept: [200], scopes, ...signalOf(options) },
      LIST_BODY_LIMIT,
    );
    const body = parseJson(response.bytes, `${endpoint} listing`) as Record<string, unknown>;
    const found = body?.[key];
    if (found !== null && found !== undefined && !Array.isArray(found)) {
      throw new RegistryProtocolError(`${endpoint} listing has no "${key}" array`);
    }
    for (const item of (found ?? []) as unknown[]) if (typeof item === 'string') items.push(item);
    link = nextLink(response.headers.link);
    if (n !== undefined || link === undefined) break;
    const next = new URL(link, origin);
    const nextTarget = next.pathname + next.search;
    if (visited.has(nextTarget)) break; // a registry that pages in a circle
    visited.add(nextTarget);
    target = nextTarget;
  }
  const result = pageOf(items, {
    ...(n !== undefined ? { n } : {}),
    ...(last !== undefined ? { last } : {}),
  });
  // Everything this page holds came back, but the registry says more follow.
  if (n !== undefined && result.next === undefined && link !== undefined) {
    const next = new URL(link, origin).searchParams.get('last') ?? result.items[result.items.length - 1];
    if (next !== undefined) return { items: result.items, next };
  }
  return result;
}
