import { randomUUID } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { type Digest, digestOf, type ListPage, MediaType } from '@stowage/oci';
import { type DockerRegistry, requirePeers, startDockerRegistry } from '@stowage/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRegistryClient, type RegistryClient } from './client.js';

const COUNT = 2_600;
const names = (prefix: string) =>
  Array.from({ length: COUNT }, (_, i) => `${prefix}${String(i).padStart(4, '0')}`).sort();

/** Runs `task` over `items` with at most `limit` at a time. */
async function eachLimited<T>(
  items: readonly T[],
  limit: number,
  task: (item: T) => Promise<unknown>,
): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: limit }, async () => {
      while (next < items.length) await task(items[next++] as T);
    }),
  );
}

/** Follows `next` page by page, as a caller would. */
async function walk(
  list: (last: string | undefined) => Promise<ListPage>,
): Promise<{ items: string[]; pages: number }> {
  const items: string[] = [];
  let last: string | undefined;
  let pages = 0;
  for (;;) {
    const page = await list(last);
    pages++;
    items.push(...page.items);
    if (page.next === undefined) return { items, pages };
    last = page.next;
  }
}

describe('paging against docker-registry', () => {
  if (!requirePeers('docker-registry')) return;

  let registry: DockerRegistry;
  let client: RegistryClient;
  const tags = names('tag-');
  const repositories = names('paging/repo-');

  beforeAll(async () => {
    registry = await startDockerRegistry();
    client = createRegistryClient({ registry: registry.host, auth: { useConfigFiles: false } });
    const layer = new TextEncoder().encode(`paging ${randomUUID()}`);
    const config = new TextEncoder().encode(
      '{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}',
    );
    await client.putBlob('paging/base', layer, { digest: digestOf(layer) });
    await client.putBlob('paging/base', config, { digest: digestOf(config) });
    const manifest = new TextEncoder().encode(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: MediaType.OciManifest,
        config: { mediaType: MediaType.OciConfig, digest: digestOf(config), size: config.byteLength },
        layers: [{ mediaType: MediaType.OciLayer, digest: digestOf(layer), size: layer.byteLength }],
      }),
    );
    // One image, 2,600 tags: each tag is one manifest PUT of the same bytes.
    await eachLimited(tags, 16, (tag) =>
      client.putManifest('paging/base', tag, { bytes: manifest, mediaType: MediaType.OciManifest }),
    );
    // distribution 2.8 lists a repository in the catalog once it has a layer link: one mount each.
    await eachLimited(repositories, 16, (repo) =>
      client.mountBlob(repo, digestOf(layer) as Digest, { from: 'paging/base' }),
    );
  }, 120_000);

  afterAll(async () => {
    await client?.close();
    await registry?.stop();
  });

  it('lists more than 2,500 tags, every one exactly once and sorted', async () => {
    const { items } = await client.listTags('paging/base');
    expect(items).toHaveLength(COUNT);
    expect(items).toEqual(tags);
  });

  it('pages tags with n/last even though distribution 2.8 ignores them for tags', async () => {
    const { items, pages } = await walk((last) =>
      client.listTags('paging/base', { n: 700, ...(last ? { last } : {}) }),
    );
    expect(items).toEqual(tags);
    expect(pages).toBe(4);
  });

  it('lists a catalog of more than 2,500 repositories by following its Link pages', async () => {
    const { items } = await client.listRepositories();
    expect(items).toEqual([...repositories, 'paging/base'].sort());
  });

  it('pages the catalog with n/last, each page ending where the next begins', async () => {
    const { items, pages } = await walk((last) =>
      client.listRepositories({ n: 500, ...(last ? { last } : {}) }),
    );
    expect(items).toEqual([...repositories, 'paging/base'].sort());
    expect(new Set(items).size).toBe(COUNT + 1);
    expect(pages).toBe(Math.ceil((COUNT + 1) / 500));
  });
});

interface PagingServer {
  readonly host: string;
  requests: number;
  close(): Promise<void>;
}

/**
 * A registry that pages listings 7 entries at a time whatever `n` asks,
 * points to the next page with a `Link` header, and (for one repository) sends
 * each page unsorted and overlapping the previous one.
 */
async function startPagingServer(entries: {
  tags: readonly string[];
  repositories: readonly string[];
}): Promise<PagingServer> {
  const state = { requests: 0 };
  const server: Server = createServer((request, response) => {
    state.requests++;
    const url = new URL(request.url ?? '/', 'http://localhost');
    const json = (status: number, body: unknown, headers: Record<string, string> = {}) => {
      response.writeHead(status, { 'content-type': 'application/json', ...headers });
      response.end(JSON.stringify(body));
    };
    if (url.pathname === '/v2/') return json(200, {});
    const page = (all: readonly string[], path: string, key: string, messy: boolean) => {
      const last = url.searchParams.get('last');
      const start = last === null ? 0 : all.findIndex((item) => item > last);
      const from = start < 0 ? all.length : start;
      // The messy variant repeats the previous page's last entry and reverses each page.
      const slice = all.slice(Math.max(0, messy && from > 0 ? from - 1 : from), from + 7);
      const headers: Record<string, string> = {};
      if (from + 7 < all.length) {
        headers.link = `<${path}?n=7&last=${encodeURIComponent(all[from + 6] as string)}>; rel="next"`;
      }
      return json(200, { [key]: messy ? [...slice].reverse() : slice }, headers);
    };
    if (url.pathname === '/v2/_catalog')
      return page(entries.repositories, '/v2/_catalog', 'repositories', false);
    const match = /^\/v2\/(.+)\/tags\/list$/.exec(url.pathname);
    if (match?.[1] === 'loop/app') {
      return json(200, { tags: ['a'] }, { link: '</v2/loop/app/tags/list?n=7&last=a>; rel="next"' });
    }
    if (match?.[1] === 'short/app' || match?.[1] === 'messy/app') {
      return page(entries.tags, url.pathname, 'tags', match[1] === 'messy/app');
    }
    json(404, { errors: [{ code: 'NAME_UNKNOWN', message: 'unknown' }] });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    host: `127.0.0.1:${(server.address() as AddressInfo).port}`,
    get requests() {
      return state.requests;
    },
    set requests(value: number) {
      state.requests = value;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

describe('paging against a registry with short pages', () => {
  const tags = names('t');
  const repositories = names('org/r');
  let server: PagingServer;
  let client: RegistryClient;

  beforeAll(async () => {
    server = await startPagingServer({ tags, repositories });
    client = createRegistryClient({ registry: server.host, auth: { useConfigFiles: false } });
  });
  afterAll(async () => {
    await client?.close();
    await server?.close();
  });

  it('follows every Link page of a tag list', async () => {
    server.requests = 0;
    const { items } = await client.listTags('short/app');
    expect(items).toEqual(tags);
    expect(server.requests).toBeGreaterThanOrEqual(Math.ceil(COUNT / 7));
  });

  it('follows every Link page of the catalog', async () => {
    expect((await client.listRepositories()).items).toEqual(repositories);
  });

  it('returns each entry once when pages overlap and arrive unsorted', async () => {
    expect((await client.listTags('messy/app')).items).toEqual(tags);
  });

  it('with n, returns one page and takes next from the Link header', async () => {
    const first = await client.listTags('short/app', { n: 7 });
    expect(first).toEqual({ items: tags.slice(0, 7), next: tags[6] });
    const second = await client.listTags('short/app', { n: 7, last: first.next as string });
    expect(second.items).toEqual(tags.slice(7, 14));
    const tail = await client.listTags('short/app', { n: 7, last: tags[COUNT - 3] as string });
    expect(tail).toEqual({ items: tags.slice(COUNT - 2) });
  });

  it('trims a page longer than n and pages on from its last entry', async () => {
    const { items, pages } = await walk((last) =>
      client.listTags('short/app', { n: 3, ...(last ? { last } : {}) }),
    );
    expect(items).toEqual(tags);
    expect(pages).toBeGreaterThan(COUNT / 7);
  });

  it('stops on a Link that points back at the same page', async () => {
    expect((await client.listTags('loop/app')).items).toEqual(['a']);
  });

  it('reports a missing repository as NAME_UNKNOWN', async () => {
    await expect(client.listTags('nope/app')).rejects.toMatchObject({ code: 'NAME_UNKNOWN', status: 404 });
  });
});
