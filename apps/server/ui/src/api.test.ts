import { describe, expect, it } from 'vitest';
import { isIndex, namePath, nextLink, referencePath } from './api.js';
import { errorOf, isApiError } from './errors.js';

const origin = 'http://registry.test:5000';

describe('nextLink', () => {
  it('follows rel="next", relative to the page', () => {
    expect(nextLink('</v2/_catalog?n=1000&last=b>; rel="next"', '/v2/_catalog?n=1000', origin)).toBe(
      '/v2/_catalog?n=1000&last=b',
    );
    expect(
      nextLink('<http://registry.test:5000/v2/x/tags/list?last=v2>; rel=next', '/v2/x/tags/list', origin),
    ).toBe('/v2/x/tags/list?last=v2');
    expect(
      nextLink('</v2/a?last=1>; rel="prev", </v2/a?last=3>; title="x"; rel="next"', '/v2/a?last=2', origin),
    ).toBe('/v2/a?last=3');
  });

  it('ends the listing without a next link, or with one that leaves the registry', () => {
    expect(nextLink(null, '/v2/_catalog', origin)).toBeUndefined();
    expect(nextLink('</v2/a?last=1>; rel="prev"', '/v2/a', origin)).toBeUndefined();
    expect(
      nextLink('<https://elsewhere.test/v2/_catalog?last=b>; rel="next"', '/v2/_catalog', origin),
    ).toBeUndefined();
    expect(nextLink('</ui/api/logout>; rel="next"', '/v2/_catalog', origin)).toBeUndefined();
  });
});

describe('paths', () => {
  it('send only valid names and references', () => {
    expect(namePath('library/alpine')).toBe('library/alpine');
    expect(referencePath('v1.2')).toBe('v1.2');
    expect(referencePath(`sha256:${'c'.repeat(64)}`)).toBe(`sha256:${'c'.repeat(64)}`);
    for (const bad of ['..', '../ui', 'Upper', 'a//b', '']) {
      expect(() => namePath(bad)).toThrow(/invalid repository name/);
    }
    for (const bad of ['..', '../../ui/api/logout', '-x', 'a/b']) {
      expect(() => referencePath(bad)).toThrow(/invalid tag or digest/);
    }
  });
});

describe('errorOf', () => {
  it('takes the OCI error message', async () => {
    const response = new Response(
      JSON.stringify({
        errors: [{ code: 'NAME_UNKNOWN', message: 'repository name not known to registry' }],
      }),
      { status: 404, statusText: 'Not Found' },
    );
    const error = await errorOf(response);
    expect(isApiError(error, 'NAME_UNKNOWN')).toBe(true);
    expect([error.status, error.message, error.needsLogin]).toEqual([
      404,
      'repository name not known to registry',
      false,
    ]);
  });

  it('says the status when the body is not OCI error JSON', async () => {
    const error = await errorOf(new Response('<html>', { status: 401, statusText: 'Unauthorized' }));
    expect([error.code, error.message, error.needsLogin]).toEqual(['HTTP_401', '401 Unauthorized', true]);
  });
});

describe('isIndex', () => {
  it('knows an index by media type, or by its manifests when the type is missing', () => {
    expect(isIndex({ mediaType: 'application/vnd.oci.image.index.v1+json', manifest: {} })).toBe(true);
    expect(
      isIndex({ mediaType: 'application/vnd.docker.distribution.manifest.list.v2+json', manifest: {} }),
    ).toBe(true);
    expect(isIndex({ mediaType: '', manifest: { manifests: [] } })).toBe(true);
    expect(
      isIndex({ mediaType: 'application/vnd.oci.image.manifest.v1+json', manifest: { layers: [] } }),
    ).toBe(false);
  });
});
