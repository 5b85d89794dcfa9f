// With auth on, /v2/_catalog lists only what the caller may pull, and paging
// (`n`, `last`, `Link`) runs over that filtered list.
import { generateKeyPairSync } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import { type Registry, RegistryError } from '@stowage/oci';
import { createMemoryRegistry, pushImage, randomImage } from '@stowage/testing';
import bcrypt from 'bcryptjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { now, signJwt } from '../test/jwt.js';
import { serve } from '../test/serve.js';
import { createRulesAuthorizer } from './auth/anonymous.js';
import { createHtpasswdAuthorizer } from './auth/htpasswd.js';
import { createTokenAuthorizer } from './auth/token.js';
import type { Authorizer } from './auth/types.js';

const image = randomImage({ layers: 1 });
const NAMES = ['a', 'b/app', 'public/x', 'public/y', 'secret/one', 'secret/two', 'team/z'];
let registry: Registry;

beforeAll(async () => {
  registry = createMemoryRegistry();
  for (const name of NAMES) await pushImage(registry, name, image, 'v1');
  // many repositories, few of them visible, so one page of the answer spans several store pages
  for (let i = 0; i < 250; i++) await pushImage(registry, `r/${String(i).padStart(3, '0')}`, image, 'v1');
});

const closers: (() => Promise<void>)[] = [];
afterAll(async () => {
  for (const close of closers) await close();
});

async function catalogOf(auth: Authorizer) {
  const served = await serve({ registry, auth });
  closers.push(() => served.close());
  /** One page: the names and the `last` its Link points at. */
  async function page(query: string, headers: Record<string, string> = {}) {
    const response = await fetch(`${served.url}/v2/_catalog${query}`, { headers });
    expect(response.status, query).toBe(200);
    const link = response.headers.get('link');
    const body = (await response.json()) as { repositories: string[] };
    return { names: body.repositories, link };
  }
  /** Every page of size n, following Link, checking each Link names the page's last entry. */
  async function walk(n: number, headers: Record<string, string> = {}): Promise<string[]> {
    const all: string[] = [];
    let query = `?n=${n}`;
    for (let pages = 0; pages < 1000; pages++) {
      const { names, link } = await page(query, headers);
      expect(names.length).toBeLessThanOrEqual(n);
      all.push(...names);
      if (link === null) return all;
      expect(names).toHaveLength(n);
      const last = names[names.length - 1] as string;
      expect(link).toBe(`</v2/_catalog?${new URLSearchParams({ n: String(n), last })}>; rel="next"`);
      query = `?n=${n}&last=${encodeURIComponent(last)}`;
    }
    throw new Error('no end to the pages');
  }
  return { page, walk, url: served.url };
}

const visible = (names: readonly string[], keep: (name: string) => boolean) => names.filter(keep).sort();
const everything = () => [
  ...NAMES,
  ...Array.from({ length: 250 }, (_, i) => `r/${String(i).padStart(3, '0')}`),
];
const fortieth = (name: string) => !name.startsWith('r/') || Number(name.slice(2)) % 40 === 0;

describe('the catalog with auth on', () => {
  it('lists for htpasswd users what their rules let them pull', async () => {
    const users = new Map([
      ['admin', bcrypt.hashSync('adminpw', 4)],
      ['reader', bcrypt.hashSync('readerpw', 4)],
    ]);
    const auth = createHtpasswdAuthorizer({
      realm: 'catalog',
      users,
      rules: [
        { repository: 'public/**', anonymous: ['pull'] },
        { repository: 'secret/**', users: { admin: ['*'] } },
        { repository: 'r/**', users: { admin: ['pull'] } },
      ],
    });
    closers.push(async () => (auth as { close?: () => Promise<void> }).close?.());
    const { page, walk } = await catalogOf(auth);
    const login = (user: string, password: string) => ({
      authorization: `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`,
    });
    const reader = login('reader', 'readerpw');
    const readerSees = ['a', 'b/app', 'public/x', 'public/y', 'team/z'];
    expect((await page('', reader)).names).toEqual(readerSees);
    expect((await page('', reader)).link).toBeNull();
    expect(await walk(1, reader)).toEqual(readerSees);
    expect(await walk(2, reader)).toEqual(readerSees);
    expect(await page('?n=0', reader)).toEqual({ names: [], link: null });
    expect((await page('?n=2&last=b/app', reader)).names).toEqual(['public/x', 'public/y']);
    // `last` may name a repository the caller cannot see: the page starts after it all the same
    expect((await page('?n=1&last=secret/one', reader)).names).toEqual(['team/z']);
    const admin = login('admin', 'adminpw');
    expect(await walk(7, admin)).toEqual(everything().sort());
  });

  it('lists for a token what it grants, plus what the rules give anyone', async () => {
    const keys = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const auth = createTokenAuthorizer({
      realm: 'https://auth.example/token',
      service: 'catalog',
      issuer: 'auth.example',
      keys: [keys.publicKey.export({ type: 'spki', format: 'pem' }).toString()],
      rules: [{ repository: 'public/**', anonymous: ['pull'] }],
    });
    const token = (access: { type: string; name: string; actions: string[] }[]) => ({
      authorization: `Bearer ${signJwt(
        { iss: 'auth.example', sub: 'ci', aud: 'catalog', exp: now() + 300, access },
        keys.privateKey,
      )}`,
    });
    const { page, walk } = await catalogOf(auth);
    const catalog = { type: 'registry', name: 'catalog', actions: ['*'] };
    const holder = token([
      catalog,
      { type: 'repository', name: 'a', actions: ['pull'] },
      { type: 'repository', name: 'team/z', actions: ['push'] },
      { type: 'repository', name: 'r/040', actions: ['*'] },
    ]);
    expect((await page('', holder)).names).toEqual(['a', 'public/x', 'public/y', 'r/040']);
    expect(await walk(1, holder)).toEqual(['a', 'public/x', 'public/y', 'r/040']);
  });

  it('lists anonymously, with rules only, everything but what the rules close', async () => {
    const { walk } = await catalogOf(createRulesAuthorizer([{ repository: 'secret/**' }]));
    expect(await walk(3)).toEqual(visible(everything(), (name) => !name.startsWith('secret/')));
  });

  it("uses an authorizer's pullable, else asks authorize per repository; the same pages either way", async () => {
    const asked: string[] = [];
    const byAuthorize: Authorizer = {
      async authorize(_request, access) {
        for (const entry of access) if (entry.type === 'repository') asked.push(entry.name);
        return access.every((entry) => entry.type === 'registry' || fortieth(entry.name))
          ? { ok: true, principal: {} }
          : { ok: false, status: 403, code: 'DENIED', message: 'no' };
      },
    };
    let calls = 0;
    const byPullable: Authorizer = {
      async authorize() {
        return { ok: true, principal: {} };
      },
      async pullable(request: { headers: IncomingHttpHeaders }, repositories: readonly string[]) {
        calls++;
        expect(request.headers.host).toBeDefined();
        // names it was not asked about never make it into the answer
        return [...repositories.filter(fortieth), 'injected/name'];
      },
    };
    const expected = visible(everything(), fortieth);
    const first = await catalogOf(byAuthorize);
    const second = await catalogOf(byPullable);
    for (const n of [1, 2, 5, 1000]) {
      expect(await first.walk(n), `authorize, n=${n}`).toEqual(expected);
      expect(await second.walk(n), `pullable, n=${n}`).toEqual(expected);
    }
    expect((await second.page('')).names).toEqual(expected);
    expect(calls).toBeGreaterThan(0);
    // each repository is asked about once per request at most
    asked.length = 0;
    await first.page('');
    expect(asked.length).toBe(new Set(asked).size);
    expect(new Set(asked).size).toBe(everything().length);
  });

  it('fails the page with the 429 of an authorizer that cannot decide now, instead of leaving names out', async () => {
    const busy: Authorizer = {
      async authorize(_request, access) {
        if (access.some((entry) => entry.name === 'public/y')) {
          return {
            ok: false,
            status: 429,
            code: 'TOOMANYREQUESTS',
            message: 'busy',
            headers: { 'retry-after': '3' },
          };
        }
        return { ok: true, principal: {} };
      },
    };
    const { url } = await catalogOf(busy);
    const response = await fetch(`${url}/v2/_catalog`);
    expect(response.status).toBe(429);
    expect(response.headers.get('retry-after')).toBe('3');
    expect(((await response.json()) as { errors: { code: string }[] }).errors[0]?.code).toBe(
      'TOOMANYREQUESTS',
    );
    // the same from a `pullable` that throws
    const throwing = await catalogOf({
      async authorize() {
        return { ok: true, principal: {} };
      },
      async pullable() {
        throw new RegistryError('TOOMANYREQUESTS', 'busy');
      },
    });
    const refused = await fetch(`${throwing.url}/v2/_catalog`);
    expect(refused.status).toBe(429);
    expect(refused.headers.get('retry-after')).toBe('1');
  });
});
