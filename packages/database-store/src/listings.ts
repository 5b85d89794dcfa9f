// Listings: one indexed query a page. Names compare with `COLLATE "C"`, the
// byte order the distribution API pages in, which the listing indexes of
// migration 0002 are built on.
import { type ListOptions, type ListPage, parseRepositoryName, RegistryError } from '@stowage/oci';
import type { StoreContext } from './context.js';

/** A page from rows fetched with one more than asked: `next` is set when that extra one came back. */
function pageFrom(names: readonly string[], n: number | undefined): ListPage {
  if (n === undefined || names.length <= n) return { items: names };
  const items = names.slice(0, n);
  return { items, next: items[items.length - 1] as string };
}

/** `n` as a row limit: undefined for no limit, the extra row for `next` included. */
function limitOf(n: number | undefined): number | null {
  return n === undefined ? null : Math.max(0, Math.floor(n)) + 1;
}

export function listingMembers(ctx: StoreContext) {
  const { db } = ctx;
  return {
    async listRepositories(options: ListOptions = {}): Promise<ListPage> {
      ctx.open(options.signal);
      if (options.n !== undefined && options.n <= 0) return { items: [] };
      const { rows } = await db.query<{ path: string }>(
        `SELECT r.path FROM repositories r
         WHERE (r.path COLLATE "C") > $1
           AND EXISTS (SELECT 1 FROM manifests m
                       WHERE m.top_level_namespace_id = r.top_level_namespace_id AND m.repository_id = r.id)
         ORDER BY (r.path COLLATE "C") LIMIT $2`,
        [options.last ?? '', limitOf(options.n)],
        { prepare: true },
      );
      return pageFrom(
        rows.map((row) => row.path),
        options.n,
      );
    },

    async listTags(repository: string, options: ListOptions = {}): Promise<ListPage> {
      ctx.open(options.signal);
      parseRepositoryName(repository);
      const repo = await ctx.findRepository(db, repository);
      if (!repo) {
        throw new RegistryError('NAME_UNKNOWN', `repository ${repository} is not known`, {
          details: { repository },
        });
      }
      if (options.n !== undefined && options.n <= 0) return { items: [] };
      const { rows } = await db.query<{ name: string }>(
        `SELECT name FROM tags
         WHERE top_level_namespace_id = $1 AND repository_id = $2 AND (name COLLATE "C") > $3
         ORDER BY (name COLLATE "C") LIMIT $4`,
        [repo.namespaceId, repo.id, options.last ?? '', limitOf(options.n)],
        { prepare: true },
      );
      return pageFrom(
        rows.map((row) => row.name),
        options.n,
      );
    },
  };
}
