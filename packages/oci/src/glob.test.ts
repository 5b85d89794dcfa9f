import { describe, expect, it } from 'vitest';
import { globToRegExp } from './glob.js';

function matches(pattern: string, name: string): boolean {
  return globToRegExp(pattern).test(name);
}

describe('globToRegExp', () => {
  it('matches a literal pattern only exactly', () => {
    expect(matches('repo1/repo', 'repo1/repo')).toBe(true);
    expect(matches('repo1/repo', 'repo1/repo2')).toBe(false);
    expect(matches('repo1/repo', 'x/repo1/repo')).toBe(false);
    expect(matches('repo1/repo', 'repo1')).toBe(false);
  });

  it('`*` stays within one segment', () => {
    expect(matches('repo2/repo*', 'repo2/repo')).toBe(true);
    expect(matches('repo2/repo*', 'repo2/repository')).toBe(true);
    expect(matches('repo2/repo*', 'repo2/repo/sub')).toBe(false);
    expect(matches('repo2/*', 'repo2')).toBe(false);
    expect(matches('a/*/c', 'a/b/c')).toBe(true);
    expect(matches('a/*/c', 'a/b/x/c')).toBe(false);
    expect(matches('a**', 'abc')).toBe(true);
    expect(matches('a**', 'a/b')).toBe(false);
  });

  it('`**` is any number of segments, zero included', () => {
    expect(matches('repo3/**', 'repo3')).toBe(true);
    expect(matches('repo3/**', 'repo3/a')).toBe(true);
    expect(matches('repo3/**', 'repo3/a/b/c')).toBe(true);
    expect(matches('repo3/**', 'repo30')).toBe(false);
    expect(matches('**/b', 'b')).toBe(true);
    expect(matches('**/b', 'x/y/b')).toBe(true);
    expect(matches('**/b', 'xb')).toBe(false);
    expect(matches('a/**/b', 'a/b')).toBe(true);
    expect(matches('a/**/b', 'a/x/y/b')).toBe(true);
    expect(matches('a/**/b', 'a/xb')).toBe(false);
    expect(matches('**', 'anything/at/all')).toBe(true);
  });

  it('takes every other character literally', () => {
    expect(matches('a.b', 'a.b')).toBe(true);
    expect(matches('a.b', 'axb')).toBe(false);
    expect(matches('a+', 'aa')).toBe(false);
    expect(matches('a?', 'ab')).toBe(false);
    expect(matches('a[b]', 'ab')).toBe(false);
    expect(matches('a[b]', 'a[b]')).toBe(true);
  });

  it('compiles a pattern once', () => {
    expect(globToRegExp('x/**')).toBe(globToRegExp('x/**'));
  });
});
