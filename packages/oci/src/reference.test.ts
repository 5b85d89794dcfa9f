import { describe, expect, it } from 'vitest';
import { isStowageError } from './errors.js';
import {
  formatReference,
  isValidRepositoryName,
  isValidTag,
  parseReference,
  parseRepositoryName,
  parseTag,
  referenceTarget,
} from './reference.js';

const D = `sha256:${'a'.repeat(64)}`;

function code(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (error) {
    if (!isStowageError(error)) throw error;
    return error.code;
  }
  return undefined;
}

describe('parseReference', () => {
  it.each<[string, string, string, string?, string?]>([
    ['alpine', 'docker.io', 'library/alpine'],
    ['alpine:3.20', 'docker.io', 'library/alpine', '3.20'],
    ['library/alpine', 'docker.io', 'library/alpine'],
    ['docker.io/alpine', 'docker.io', 'library/alpine'],
    ['index.docker.io/library/alpine:latest', 'docker.io', 'library/alpine', 'latest'],
    ['bitnami/redis', 'docker.io', 'bitnami/redis'],
    ['localhost/foo', 'localhost', 'foo'],
    ['localhost:5000/foo/bar:tag', 'localhost:5000', 'foo/bar', 'tag'],
    [`example.com:8080/a/b@${D}`, 'example.com:8080', 'a/b', undefined, D],
    [`a/b:tag@${D}`, 'docker.io', 'a/b', 'tag', D],
    ['[::1]:5000/x', '[::1]:5000', 'x'],
    ['[2001:db8::1]/x:y', '[2001:db8::1]', 'x', 'y'],
    ['ghcr.io/owner/repo/sub:v1.2.3-rc_1', 'ghcr.io', 'owner/repo/sub', 'v1.2.3-rc_1'],
    ['Registry/foo', 'Registry', 'foo'],
    ['a__b', 'docker.io', 'library/a__b'],
    ['a---b', 'docker.io', 'library/a---b'],
    ['a.b_c-d', 'docker.io', 'library/a.b_c-d'],
    ['127.0.0.1:5000/x/y/z', '127.0.0.1:5000', 'x/y/z'],
    ['foo:_tag', 'docker.io', 'library/foo', '_tag'],
    [`x:${'t'.repeat(128)}`, 'docker.io', 'library/x', 't'.repeat(128)],
    ['localhost:5000', 'docker.io', 'library/localhost', '5000'],
  ])('parses %s', (input, registry, repository, tag, digest) => {
    const ref = parseReference(input);
    expect(ref).toEqual({
      registry,
      repository,
      ...(tag === undefined ? {} : { tag }),
      ...(digest === undefined ? {} : { digest }),
    });
  });

  it.each<[string, string]>([
    ['', 'NAME_INVALID'],
    ['Foo', 'NAME_INVALID'],
    ['a//b', 'NAME_INVALID'],
    ['/a', 'NAME_INVALID'],
    ['a/', 'NAME_INVALID'],
    ['-a', 'NAME_INVALID'],
    ['a-', 'NAME_INVALID'],
    ['a___b', 'NAME_INVALID'],
    ['a..b', 'NAME_INVALID'],
    ['a/../b', 'NAME_INVALID'],
    ['a/%2e%2e/b', 'NAME_INVALID'],
    ['a\\b', 'NAME_INVALID'],
    ['a\0b', 'NAME_INVALID'],
    ['https://example.com/a', 'NAME_INVALID'],
    [' alpine', 'NAME_INVALID'],
    ['a b', 'NAME_INVALID'],
    ['-bad.com/x', 'NAME_INVALID'],
    ['bad-.com/x', 'NAME_INVALID'],
    ['example.com:port/x', 'NAME_INVALID'],
    ['[zz::1]/x', 'NAME_INVALID'],
    ['a'.repeat(64).replace(/a/g, 'f'), 'NAME_INVALID'],
    [`${'a'.repeat(256)}`, 'NAME_INVALID'],
    [`example.com/${'a'.repeat(250)}`, 'NAME_INVALID'],
    ['x'.repeat(5000), 'NAME_INVALID'],
    ['alpine:', 'TAG_INVALID'],
    ['alpine:-x', 'TAG_INVALID'],
    ['alpine:.x', 'TAG_INVALID'],
    [`x:${'t'.repeat(129)}`, 'TAG_INVALID'],
    ['alpine:a+b', 'TAG_INVALID'],
    ['alpine@', 'DIGEST_INVALID'],
    ['alpine@sha256:abc', 'DIGEST_INVALID'],
    [`alpine@sha384:${'a'.repeat(96)}`, 'DIGEST_INVALID'],
    [`alpine@${D}@${D}`, 'DIGEST_INVALID'],
    [':tag', 'NAME_INVALID'],
    [`@${D}`, 'NAME_INVALID'],
  ])('refuses %j with %s', (input, expected) => {
    expect(code(() => parseReference(input))).toBe(expected);
  });

  it('keeps names as written without normalization', () => {
    expect(parseReference('alpine', { normalize: false })).toEqual({
      registry: 'docker.io',
      repository: 'alpine',
    });
    expect(parseReference('alpine', { defaultRegistry: 'registry.local:5000' })).toEqual({
      registry: 'registry.local:5000',
      repository: 'alpine',
    });
    expect(parseReference('index.docker.io/x/y', { normalize: false }).registry).toBe('index.docker.io');
  });
});

describe('formatReference', () => {
  it('formats canonical and familiar forms', () => {
    const ref = parseReference('alpine:3');
    expect(formatReference(ref)).toBe('docker.io/library/alpine:3');
    expect(formatReference(ref, { familiar: true })).toBe('alpine:3');
    expect(formatReference(parseReference('bitnami/redis'), { familiar: true })).toBe('bitnami/redis');
    expect(formatReference(parseReference('library/a/b'), { familiar: true })).toBe('library/a/b');
    expect(formatReference(parseReference(`ghcr.io/a/b:t@${D}`), { familiar: true })).toBe(
      `ghcr.io/a/b:t@${D}`,
    );
  });

  it('round-trips canonical strings', () => {
    for (const s of [
      'localhost:5000/a/b:c',
      `example.com/x@${D}`,
      'docker.io/library/alpine:latest',
      '[::1]:80/x',
    ]) {
      expect(formatReference(parseReference(s))).toBe(s);
    }
  });

  it('names what to fetch', () => {
    expect(referenceTarget(parseReference('a'))).toBe('latest');
    expect(referenceTarget(parseReference('a:t'))).toBe('t');
    expect(referenceTarget(parseReference(`a:t@${D}`))).toBe(D);
  });
});

describe('repository names and tags', () => {
  it.each(['library/alpine', 'a', 'a/b/c', 'a.b/c_d/e__f/g-h--i', '0/1', 'x'.repeat(255)])(
    'accepts %s',
    (name) => {
      expect(parseRepositoryName(name)).toBe(name);
      expect(isValidRepositoryName(name)).toBe(true);
    },
  );

  it.each([
    '',
    'UPPER',
    'a/../b',
    '..',
    '.',
    'a/./b',
    '%2e%2e',
    '/abs',
    'abs/',
    'a//b',
    'a\0b',
    'a\\b',
    'x'.repeat(256),
    'a/b c',
    'localhost:5000/a',
    'a@b',
  ])('refuses %j', (name) => {
    expect(code(() => parseRepositoryName(name))).toBe('NAME_INVALID');
    expect(isValidRepositoryName(name)).toBe(false);
  });

  it('says lowercase when that is the only problem', () => {
    expect(() => parseRepositoryName('Library/Alpine')).toThrowError(/lowercase/);
  });

  it('validates tags', () => {
    expect(parseTag('v1.0')).toBe('v1.0');
    expect(isValidTag('_')).toBe(true);
    expect(isValidTag('t'.repeat(128))).toBe(true);
    for (const bad of ['', '.x', '-x', 't'.repeat(129), 'a/b', 'a:b', '..', 'a\0']) {
      expect(code(() => parseTag(bad))).toBe('TAG_INVALID');
    }
    expect(isValidTag(5)).toBe(false);
  });
});

describe('parseManifestReference', () => {
  it('reads a tag or a digest and refuses anything else by code', async () => {
    const { parseManifestReference } = await import('./reference.js');
    const { digestOf } = await import('./digest.js');
    const digest = digestOf('x');
    expect(parseManifestReference('v1.0')).toEqual({ tag: 'v1.0' });
    expect(parseManifestReference(digest)).toEqual({ digest });
    expect(() => parseManifestReference('sha256:zz')).toThrow(
      expect.objectContaining({ code: 'DIGEST_INVALID' }),
    );
    expect(() => parseManifestReference('-bad')).toThrow(expect.objectContaining({ code: 'TAG_INVALID' }));
    expect(() => parseManifestReference('')).toThrow(expect.objectContaining({ code: 'TAG_INVALID' }));
  });
});
