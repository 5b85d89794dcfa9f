import { describe, expect, it } from 'vitest';
import { loginHref, manifestHref, parseRoute, repositoriesHref, tagsHref } from './routes.js';

const digest = `sha256:${'a'.repeat(64)}`;

describe('parseRoute', () => {
  it('reads the pages of the contract', () => {
    expect(parseRoute('')).toMatchObject({ page: 'repositories' });
    expect(parseRoute('#/')).toMatchObject({ page: 'repositories' });
    expect(parseRoute('#/r/library/alpine')).toMatchObject({ page: 'tags', repository: 'library/alpine' });
    expect(parseRoute('#/r/library/alpine/m/3.20')).toEqual({
      page: 'manifest',
      repository: 'library/alpine',
      reference: '3.20',
    });
    expect(parseRoute(`#/r/a/b/m/${digest}`)).toEqual({
      page: 'manifest',
      repository: 'a/b',
      reference: digest,
    });
    expect(parseRoute('#/login?next=%23%2Fr%2Fa')).toMatchObject({ page: 'login' });
    expect(parseRoute('#main')).toMatchObject({ page: 'not-found' });
  });

  it('keeps the view state of the query', () => {
    const route = parseRoute('#/r/demo?q=v1&p=3&order=desc');
    expect(route).toMatchObject({ page: 'tags', repository: 'demo' });
    if (route.page !== 'tags') throw new Error(route.page);
    expect([route.query.get('q'), route.query.get('p'), route.query.get('order')]).toEqual([
      'v1',
      '3',
      'desc',
    ]);
  });

  it('takes the last /m/ as the manifest, so a repository may end in m', () => {
    expect(parseRoute('#/r/a/m/m/v1')).toEqual({ page: 'manifest', repository: 'a/m', reference: 'v1' });
    expect(parseRoute('#/r/a/m')).toMatchObject({ page: 'tags', repository: 'a/m' });
  });
});

describe('hrefs', () => {
  it('round-trip every name, an m path component included', () => {
    for (const repository of ['demo', 'library/alpine', 'a/m/b', 'm/x', 'x/m', 'a/m/m/b']) {
      expect(parseRoute(tagsHref(repository))).toMatchObject({ page: 'tags', repository });
      for (const reference of ['latest', 'v1.2.3', digest]) {
        expect(parseRoute(manifestHref(repository, reference))).toEqual({
          page: 'manifest',
          repository,
          reference,
        });
      }
    }
  });

  it('keep slashes and digests readable', () => {
    expect(tagsHref('library/alpine')).toBe('#/r/library/alpine');
    expect(manifestHref('library/alpine', digest)).toBe(`#/r/library/alpine/m/${digest}`);
    expect(tagsHref('a/m/b')).toBe('#/r/a%2Fm%2Fb');
  });

  it('leave empty query values out', () => {
    expect(repositoriesHref({ q: '', p: undefined })).toBe('#/');
    expect(tagsHref('demo', { q: 'rc', p: 2, order: 'desc' })).toBe('#/r/demo?q=rc&p=2&order=desc');
    expect(loginHref('#/r/demo')).toBe('#/login?next=%23%2Fr%2Fdemo');
  });
});
