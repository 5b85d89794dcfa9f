import { pushImage, randomBlob, randomImage } from '../random.js';
import { type Conformance, codeOf, manifestBody } from './suite.js';

/** Tags and repositories: listing order, paging, the catalog, name and tag validation. */
export function tagCases(c: Conformance): void {
  const { describe, expect, test, registry, repo } = c;
  describe('tags and repositories', () => {
    test('tags are listed in lexical order', [], async () => {
      const r = registry();
      const name = repo();
      const image = randomImage();
      await pushImage(r, name, image);
      const tags = ['v2', 'B', 'a', 'v10', '1', '_x', 'v1.0-rc', 'latest', 'Z9'];
      for (const tag of tags) await r.putManifest(name, tag, manifestBody(image.manifest));
      const expected = [...tags].sort((a, b) => (a < b ? -1 : 1));
      expect((await r.listTags(name)).items).toEqual(expected);
    });

    test('listing tags of an unknown repository', [], async () => {
      expect(await codeOf(registry().listTags(repo('never-created')))).toBe('NAME_UNKNOWN');
    });

    test('tag paging with n and last returns every tag once, in order', ['tagPaging'], async () => {
      const r = registry();
      const name = repo();
      const image = randomImage();
      await pushImage(r, name, image);
      const tags = Array.from({ length: 25 }, (_, i) => `t${String(i).padStart(2, '0')}`);
      for (const tag of [...tags].reverse()) {
        await r.putManifest(name, tag, manifestBody(image.manifest));
      }
      const seen: string[] = [];
      let last: string | undefined;
      for (let pages = 0; pages < 10; pages++) {
        const result = await r.listTags(name, { n: 7, ...(last === undefined ? {} : { last }) });
        expect(result.items.length).toBeLessThanOrEqual(7);
        seen.push(...result.items);
        if (result.next === undefined) break;
        last = result.next;
      }
      expect(seen).toEqual(tags);
      expect((await r.listTags(name, { last: 't20' })).items).toEqual(['t21', 't22', 't23', 't24']);
      expect((await r.listTags(name, { n: 5, last: 't22' })).items).toEqual(['t23', 't24']);
    });

    test('the catalog lists repositories', ['catalog'], async () => {
      const r = registry();
      const names = [repo('cat-b'), repo('cat-a')];
      for (const name of names) await pushImage(r, name, randomImage(), 'v1');
      const all: string[] = [];
      let last: string | undefined;
      for (let i = 0; i < 1000; i++) {
        const result = await r.listRepositories(last === undefined ? {} : { last });
        all.push(...result.items);
        if (result.next === undefined) break;
        last = result.next;
      }
      for (const name of names) expect(all).toContain(name);
      expect([...all].sort((a, b) => (a < b ? -1 : 1))).toEqual(all);
    });

    test('catalog paging', ['catalog', 'catalogPaging'], async () => {
      const r = registry();
      const names = Array.from({ length: 5 }, (_, i) => repo(`page${i}`));
      for (const name of names) await pushImage(r, name, randomImage(), 'v1');
      const first = await r.listRepositories({ n: 2 });
      expect(first.items).toHaveLength(2);
      expect(first.next).toBe(first.items[1]);
      const second = await r.listRepositories({ n: 2, last: first.next as string });
      expect(second.items[0]! > first.items[1]!).toBe(true);
    });

    test('invalid repository names are refused', [], async () => {
      const r = registry();
      const blob = randomBlob(8);
      const bad = [
        'UPPER',
        'a/../b',
        'a//b',
        '%2e%2e',
        '/abs',
        'trailing/',
        'nul\0byte',
        'a'.repeat(256),
        '..',
        'a/./b',
      ];
      for (const name of bad) {
        expect(await codeOf(r.putBlob(name, blob.bytes, { digest: blob.descriptor.digest }))).toBe(
          'NAME_INVALID',
        );
        expect(await codeOf(r.listTags(name))).toBe('NAME_INVALID');
        expect(await codeOf(r.getManifest(name, 'latest'))).toBe('NAME_INVALID');
      }
    });

    test('invalid tags are refused', [], async () => {
      const r = registry();
      const name = repo();
      const image = randomImage();
      await pushImage(r, name, image);
      for (const tag of ['.hidden', '-dash', 't'.repeat(129), 'a/b', 'sp ace', '']) {
        const code = await codeOf(r.putManifest(name, tag, manifestBody(image.manifest)));
        expect(['TAG_INVALID', 'DIGEST_INVALID', 'MANIFEST_UNKNOWN', 'NAME_INVALID']).toContain(code);
      }
      expect((await r.listTags(name).catch(() => ({ items: [] }))).items).toEqual([]);
    });
    test('a store without a catalog refuses to list repositories', ['!catalog'], async () => {
      const r = registry();
      await pushImage(r, repo(), randomImage(), 'v1');
      expect(['UNSUPPORTED', 'DENIED']).toContain(await codeOf(r.listRepositories()));
    });
  });
}
