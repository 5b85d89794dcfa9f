// The hash routes: `#/`, `#/r/<repository>`, `#/r/<repository>/m/<reference>`, `#/login`, each
// with an optional `?query` (filter, view page, order). Hash routing: the server serves one file.
//
// A repository name keeps its slashes (`#/r/library/alpine`), except a name with an `m` path
// component (`a/m/b`), which would read as repository `a`, manifest `b`: its slashes are
// written `%2F`. Parsing takes the last `/m/` followed by a tag or digest as the manifest.

export type Route =
  | { readonly page: 'repositories'; readonly query: URLSearchParams }
  | { readonly page: 'tags'; readonly repository: string; readonly query: URLSearchParams }
  | { readonly page: 'manifest'; readonly repository: string; readonly reference: string }
  | { readonly page: 'login'; readonly query: URLSearchParams }
  | { readonly page: 'not-found'; readonly path: string };

const REFERENCE = /^(?:\w[\w.-]{0,127}|[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+)$/;

function decode(text: string): string | undefined {
  try {
    return decodeURIComponent(text);
  } catch {
    return undefined;
  }
}

export function parseRoute(hash: string): Route {
  const raw = hash.startsWith('#') ? hash.slice(1) : hash;
  const at = raw.indexOf('?');
  const path = at === -1 ? raw : raw.slice(0, at);
  const query = new URLSearchParams(at === -1 ? '' : raw.slice(at + 1));
  if (path === '' || path === '/') return { page: 'repositories', query };
  if (path === '/login') return { page: 'login', query };
  if (path.startsWith('/r/') && path.length > 3) {
    const rest = path.slice(3);
    const split = rest.lastIndexOf('/m/');
    if (split > 0) {
      const reference = decode(rest.slice(split + 3));
      const repository = decode(rest.slice(0, split));
      if (reference !== undefined && repository !== undefined && REFERENCE.test(reference)) {
        return { page: 'manifest', repository, reference };
      }
    }
    const repository = decode(rest.replace(/\/+$/, ''));
    if (repository) return { page: 'tags', repository, query };
  }
  return { page: 'not-found', path };
}

function encodeRepository(repository: string): string {
  return repository.includes('/m/')
    ? encodeURIComponent(repository)
    : repository.split('/').map(encodeURIComponent).join('/');
}

function withQuery(path: string, query?: Record<string, string | number | undefined>): string {
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(query ?? {})) {
    if (value !== undefined && value !== '') params.set(key, String(value));
  }
  const search = params.toString();
  return search ? `${path}?${search}` : path;
}

export function repositoriesHref(query?: { readonly q?: string; readonly p?: number }): string {
  return withQuery('#/', query);
}

export function tagsHref(
  repository: string,
  query?: { readonly q?: string; readonly p?: number; readonly order?: string },
): string {
  return withQuery(`#/r/${encodeRepository(repository)}`, query);
}

export function manifestHref(repository: string, reference: string): string {
  return `#/r/${encodeRepository(repository)}/m/${REFERENCE.test(reference) ? reference : encodeURIComponent(reference)}`;
}

export function loginHref(next?: string): string {
  return withQuery('#/login', { next });
}
