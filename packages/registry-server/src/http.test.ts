// Every endpoint and error code of the server, spoken to as raw HTTP.
import { createServer, request as httpRequest } from 'node:http';
import { type AddressInfo, connect } from 'node:net';
import { digestOf, MediaType, type Registry, RegistryError, StowageError } from '@stowage/oci';
import { createMemoryRegistry, pushImage, randomArtifact, randomBlob, randomImage } from '@stowage/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Served, serve } from '../test/serve.js';
import { createRulesAuthorizer } from './auth/anonymous.js';
import type { Authorizer } from './auth/types.js';
import { createRegistryHandler } from './handler.js';

let served: Served;
let registry: Registry;
let records: { route: string; status: number }[] = [];

beforeAll(async () => {
  registry = createMemoryRegistry();
  served = await serve({
    registry,
    limits: { maxManifestSize: 64 * 1024, maxBlobSize: 1 << 20, bodyIdleTimeoutMs: 300 },
    onRequest: (record) => records.push({ route: record.route, status: record.status }),
  });
});
afterAll(() => served?.close());

async function call(
  method: string,
  path: string,
  init: { headers?: Record<string, string>; body?: string | Uint8Array } = {},
) {
  const response = await fetch(`${served.url}${path}`, {
    method,
    ...(init.headers ? { headers: init.headers } : {}),
    ...(init.body !== undefined ? { body: init.body, duplex: 'half' } : {}),
    redirect: 'manual',
  } as RequestInit);
  const text = method === 'HEAD' ? '' : await response.text();
  return { response, status: response.status, headers: response.headers, text, json: () => JSON.parse(text) };
}

async function errorsOf(response: Response): Promise<{ code: string; message: string }[]> {
  return ((await response.json()) as { errors: { code: string; message: string }[] }).errors;
}

/** Asserts an OCI error body with the code (and the status). */
async function expectError(promise: ReturnType<typeof call>, status: number, code: string) {
  const result = await promise;
  expect(result.status).toBe(status);
  if (result.response.headers.get('content-length') !== '0') {
    const body = result.json();
    expect(body.errors[0].code).toBe(code);
    expect(typeof body.errors[0].message).toBe('string');
  }
  expect(result.headers.get('content-type')).toBe('application/json');
  return result;
}

describe('registry-server over HTTP', () => {
  it('answers the ping with the API version header', async () => {
    const result = await call('GET', '/v2/');
    expect(result.status).toBe(200);
    expect(result.headers.get('docker-distribution-api-version')).toBe('registry/2.0');
    expect(result.headers.get('x-request-id')).toMatch(/.+/);
    expect((await call('GET', '/v2')).status).toBe(200);
  });

  it('refuses unknown routes and methods with OCI errors', async () => {
    // 404 with an OCI code either way: outside the API, or a /v2/ path naming no endpoint
    await expectError(call('GET', '/v3/'), 404, 'UNSUPPORTED');
    await expectError(call('GET', '/v2/a/unknown/x'), 404, 'NAME_UNKNOWN');
    const wrong = await expectError(call('POST', '/v2/a/tags/list'), 405, 'UNSUPPORTED');
    expect(wrong.headers.get('allow')).toBe('GET');
    await expectError(call('PATCH', '/v2/a/manifests/v1'), 405, 'UNSUPPORTED');
  });

  it('pushes a blob in one POST, serves it whole and by range, deletes it', async () => {
    const blob = randomBlob(5000);
    const digest = blob.descriptor.digest;
    const put = await call('POST', `/v2/mono/blobs/uploads/?digest=${digest}`, { body: blob.bytes });
    expect(put.status).toBe(201);
    expect(put.headers.get('location')).toBe(`/v2/mono/blobs/${digest}`);
    expect(put.headers.get('docker-content-digest')).toBe(digest);
    const head = await call('HEAD', `/v2/mono/blobs/${digest}`);
    expect(head.status).toBe(200);
    expect(head.headers.get('content-length')).toBe('5000');
    expect(head.headers.get('docker-content-digest')).toBe(digest);
    const get = await fetch(`${served.url}/v2/mono/blobs/${digest}`);
    expect(new Uint8Array(await get.arrayBuffer())).toEqual(blob.bytes);
    const part = await fetch(`${served.url}/v2/mono/blobs/${digest}`, { headers: { range: 'bytes=10-19' } });
    expect(part.status).toBe(206);
    expect(part.headers.get('content-range')).toBe('bytes 10-19/5000');
    expect(new Uint8Array(await part.arrayBuffer())).toEqual(blob.bytes.subarray(10, 20));
    const open = await fetch(`${served.url}/v2/mono/blobs/${digest}`, { headers: { range: 'bytes=4990-' } });
    expect(open.status).toBe(206);
    expect((await open.arrayBuffer()).byteLength).toBe(10);
    await expectError(
      call('GET', `/v2/mono/blobs/${digest}`, { headers: { range: 'bytes=6000-7000' } }),
      416,
      'BLOB_UPLOAD_INVALID',
    );
    // a Range in a unit we do not know is ignored (RFC 9110): the whole blob
    const items = await fetch(`${served.url}/v2/mono/blobs/${digest}`, { headers: { range: 'items=1-2' } });
    expect(items.status).toBe(200);
    expect(new Uint8Array(await items.arrayBuffer())).toEqual(blob.bytes);
    expect((await call('DELETE', `/v2/mono/blobs/${digest}`)).status).toBe(202);
    await expectError(call('GET', `/v2/mono/blobs/${digest}`), 404, 'BLOB_UNKNOWN');
    expect((await call('HEAD', `/v2/mono/blobs/${digest}`)).status).toBe(404);
    await expectError(call('DELETE', `/v2/mono/blobs/${digest}`), 404, 'BLOB_UNKNOWN');
    await expectError(call('GET', '/v2/mono/blobs/sha256:nothex'), 400, 'DIGEST_INVALID');
    await expectError(call('GET', `/v2/mono/blobs/md5:${'0'.repeat(32)}`), 400, 'DIGEST_INVALID');
  });

  it('serves suffix ranges, ignores multiple ranges, and answers 416 with the size', async () => {
    const blob = randomBlob(1000);
    const digest = blob.descriptor.digest;
    await call('POST', `/v2/ranges/blobs/uploads/?digest=${digest}`, { body: blob.bytes });
    const get = (range: string) => fetch(`${served.url}/v2/ranges/blobs/${digest}`, { headers: { range } });
    const tail = await get('bytes=-10');
    expect(tail.status).toBe(206);
    expect(tail.headers.get('content-range')).toBe('bytes 990-999/1000');
    expect(tail.headers.get('content-length')).toBe('10');
    expect(new Uint8Array(await tail.arrayBuffer())).toEqual(blob.bytes.subarray(990));
    // a suffix longer than the blob is the whole blob, still as a range
    const longer = await get('bytes=-5000');
    expect(longer.status).toBe(206);
    expect(longer.headers.get('content-range')).toBe('bytes 0-999/1000');
    expect(new Uint8Array(await longer.arrayBuffer())).toEqual(blob.bytes);
    // an end past the blob is cut to its last byte
    const clipped = await get('bytes=995-5000');
    expect(clipped.status).toBe(206);
    expect(clipped.headers.get('content-range')).toBe('bytes 995-999/1000');
    for (const ignored of ['bytes=0-1,5-6', 'bytes=-1, 0-0', 'pages=0-1', 'lines']) {
      const whole = await get(ignored);
      expect(whole.status, ignored).toBe(200);
      expect(whole.headers.get('content-range'), ignored).toBeNull();
      expect(new Uint8Array(await whole.arrayBuffer()), ignored).toEqual(blob.bytes);
    }
    for (const unsatisfiable of ['bytes=1000-', 'bytes=2000-3000', 'bytes=-0', 'bytes=9-1', 'bytes=x-']) {
      const refused = await expectError(
        call('GET', `/v2/ranges/blobs/${digest}`, { headers: { range: unsatisfiable } }),
        416,
        'BLOB_UPLOAD_INVALID',
      );
      expect(refused.headers.get('content-range'), unsatisfiable).toBe('bytes */1000');
    }
    await expectError(
      call('GET', `/v2/ranges/blobs/${digestOf('absent')}`, { headers: { range: 'bytes=-1' } }),
      404,
      'BLOB_UNKNOWN',
    );
  });

  it('pushes a sha512 blob in one POST and reads it back', async () => {
    const bytes = randomBlob(3000).bytes;
    const digest = digestOf(bytes, 'sha512');
    const put = await call('POST', `/v2/sha512/blobs/uploads/?digest=${digest}`, { body: bytes });
    expect(put.status).toBe(201);
    expect(put.headers.get('location')).toBe(`/v2/sha512/blobs/${digest}`);
    expect(put.headers.get('docker-content-digest')).toBe(digest);
    const head = await call('HEAD', `/v2/sha512/blobs/${digest}`);
    expect(head.status).toBe(200);
    expect(head.headers.get('content-length')).toBe('3000');
    const get = await fetch(`${served.url}/v2/sha512/blobs/${digest}`);
    expect(get.status).toBe(200);
    expect(get.headers.get('docker-content-digest')).toBe(digest);
    expect(new Uint8Array(await get.arrayBuffer())).toEqual(bytes);
    // the sha256 of the same bytes names nothing here
    expect((await call('HEAD', `/v2/sha512/blobs/${digestOf(bytes)}`)).status).toBe(404);
  });

  it('refuses a monolithic push whose content does not match its digest or size', async () => {
    const blob = randomBlob(100);
    await expectError(
      call('POST', `/v2/mono/blobs/uploads/?digest=${digestOf('other')}`, { body: blob.bytes }),
      400,
      'DIGEST_INVALID',
    );
    await expectError(
      call('POST', '/v2/mono/blobs/uploads/?digest=sha256:zz', { body: blob.bytes }),
      400,
      'DIGEST_INVALID',
    );
    expect((await call('HEAD', `/v2/mono/blobs/${digestOf('other')}`)).status).toBe(404);
  });

  it('runs chunked uploads: PATCH with Content-Range, status, out-of-order refusal, PUT to finish', async () => {
    const blob = randomBlob(3000);
    const start = await call('POST', '/v2/chunks/blobs/uploads/');
    expect(start.status).toBe(202);
    const location = start.headers.get('location') as string;
    expect(location).toMatch(/^\/v2\/chunks\/blobs\/uploads\/.+/);
    expect(start.headers.get('range')).toBe('0-0');
    expect(start.headers.get('docker-upload-uuid')).toBeTruthy();
    const first = await call('PATCH', location, {
      headers: { 'content-range': '0-999', 'content-type': 'application/octet-stream' },
      body: blob.bytes.subarray(0, 1000),
    });
    expect(first.status).toBe(202);
    expect(first.headers.get('range')).toBe('0-999');
    // a chunk that does not start where the upload is
    await expectError(
      call('PATCH', location, { headers: { 'content-range': '2000-2999' }, body: blob.bytes.subarray(2000) }),
      416,
      'BLOB_UPLOAD_INVALID',
    );
    const status = await call('GET', location);
    expect(status.status).toBe(204);
    expect(status.headers.get('range')).toBe('0-999');
    expect(status.headers.get('location')).toBe(location);
    // a chunk without Content-Range appends (docker's streaming form)
    expect((await call('PATCH', location, { body: blob.bytes.subarray(1000, 2000) })).status).toBe(202);
    const done = await call('PUT', `${location}?digest=${blob.descriptor.digest}`, {
      headers: { 'content-range': '2000-2999' },
      body: blob.bytes.subarray(2000),
    });
    expect(done.status).toBe(201);
    expect(done.headers.get('location')).toBe(`/v2/chunks/blobs/${blob.descriptor.digest}`);
    expect(
      (await call('HEAD', `/v2/chunks/blobs/${blob.descriptor.digest}`)).headers.get('content-length'),
    ).toBe('3000');
    await expectError(call('GET', location), 404, 'BLOB_UPLOAD_UNKNOWN');
    await expectError(
      call('PATCH', '/v2/chunks/blobs/uploads/nope', { body: 'x' }),
      404,
      'BLOB_UPLOAD_UNKNOWN',
    );
  });

  it('finishes with POST then PUT carrying the whole blob; refuses a wrong digest; cancels', async () => {
    const blob = randomBlob(700);
    const start = await call('POST', '/v2/postput/blobs/uploads/');
    const location = start.headers.get('location') as string;
    const done = await call('PUT', `${location}?digest=${blob.descriptor.digest}`, {
      headers: { 'content-type': 'application/octet-stream' },
      body: blob.bytes,
    });
    expect(done.status).toBe(201);
    const other = await call('POST', '/v2/postput/blobs/uploads/');
    const otherLocation = other.headers.get('location') as string;
    await expectError(
      call('PUT', `${otherLocation}?digest=${digestOf('x')}`, { body: blob.bytes }),
      400,
      'DIGEST_INVALID',
    );
    await expectError(call('PUT', `${otherLocation}`, { body: blob.bytes }), 400, 'DIGEST_INVALID');
    const third = await call('POST', '/v2/postput/blobs/uploads/');
    const thirdLocation = third.headers.get('location') as string;
    expect((await call('DELETE', thirdLocation)).status).toBe(204);
    await expectError(call('DELETE', thirdLocation), 404, 'BLOB_UPLOAD_UNKNOWN');
  });

  it('mounts across repositories, and falls back to a session when it cannot', async () => {
    const blob = randomBlob(100);
    await call('POST', `/v2/mount-src/blobs/uploads/?digest=${blob.descriptor.digest}`, { body: blob.bytes });
    const mounted = await call(
      'POST',
      `/v2/mount-dst/blobs/uploads/?mount=${blob.descriptor.digest}&from=mount-src`,
    );
    expect(mounted.status).toBe(201);
    expect(mounted.headers.get('location')).toBe(`/v2/mount-dst/blobs/${blob.descriptor.digest}`);
    const fallback = await call(
      'POST',
      `/v2/mount-dst/blobs/uploads/?mount=${digestOf('absent')}&from=mount-src`,
    );
    expect(fallback.status).toBe(202);
    expect(fallback.headers.get('location')).toMatch(/\/blobs\/uploads\//);
    await expectError(
      call('POST', '/v2/mount-dst/blobs/uploads/?mount=bad&from=mount-src'),
      400,
      'DIGEST_INVALID',
    );
    await expectError(
      call('POST', `/v2/mount-dst/blobs/uploads/?mount=${blob.descriptor.digest}&from=Bad..Name`),
      400,
      'NAME_INVALID',
    );
    // with no access control at all, a mount without `from` finds the blob wherever it is
    const anywhere = await call('POST', `/v2/mount-any/blobs/uploads/?mount=${blob.descriptor.digest}`);
    expect(anywhere.status).toBe(201);
    expect((await call('HEAD', `/v2/mount-any/blobs/${blob.descriptor.digest}`)).status).toBe(200);
  });

  it('stores a Docker schema 2 manifest and serves it with its own media type and digest', async () => {
    const image = randomImage({ format: 'docker', layers: 1 });
    expect(image.manifest.mediaType).toBe('application/vnd.docker.distribution.manifest.v2+json');
    for (const blob of image.blobs) {
      const pushed = await call('POST', `/v2/docker/blobs/uploads/?digest=${blob.descriptor.digest}`, {
        body: blob.bytes,
      });
      expect(pushed.status).toBe(201);
    }
    const put = await call('PUT', '/v2/docker/manifests/latest', {
      headers: { 'content-type': 'application/vnd.docker.distribution.manifest.v2+json' },
      body: image.manifest.bytes,
    });
    expect(put.status).toBe(201);
    expect(put.headers.get('docker-content-digest')).toBe(image.manifest.digest);
    expect(put.headers.get('docker-content-digest')).toBe(digestOf(image.manifest.bytes));
    for (const reference of ['latest', image.manifest.digest]) {
      const get = await call('GET', `/v2/docker/manifests/${reference}`, {
        headers: { accept: 'application/vnd.docker.distribution.manifest.v2+json' },
      });
      expect(get.status, reference).toBe(200);
      expect(get.headers.get('content-type'), reference).toBe(
        'application/vnd.docker.distribution.manifest.v2+json',
      );
      expect(get.headers.get('docker-content-digest'), reference).toBe(image.manifest.digest);
      expect(new TextEncoder().encode(get.text), reference).toEqual(image.manifest.bytes);
      const head = await call('HEAD', `/v2/docker/manifests/${reference}`);
      expect(head.headers.get('content-type'), reference).toBe(
        'application/vnd.docker.distribution.manifest.v2+json',
      );
      expect(head.headers.get('docker-content-digest'), reference).toBe(image.manifest.digest);
    }
  });

  it('stores manifests by tag and digest with the right headers, and untags or deletes', async () => {
    const image = randomImage({ layers: 2 });
    for (const blob of image.blobs) {
      await call('POST', `/v2/app/blobs/uploads/?digest=${blob.descriptor.digest}`, { body: blob.bytes });
    }
    const put = await call('PUT', '/v2/app/manifests/v1', {
      headers: { 'content-type': image.manifest.mediaType },
      body: image.manifest.bytes,
    });
    expect(put.status).toBe(201);
    expect(put.headers.get('docker-content-digest')).toBe(image.manifest.digest);
    expect(put.headers.get('location')).toBe(`/v2/app/manifests/${image.manifest.digest}`);
    for (const reference of ['v1', image.manifest.digest]) {
      const get = await call('GET', `/v2/app/manifests/${reference}`, {
        headers: { accept: `${MediaType.OciManifest}, ${MediaType.DockerManifest}` },
      });
      expect(get.status).toBe(200);
      expect(get.headers.get('content-type')).toBe(image.manifest.mediaType);
      expect(get.headers.get('docker-content-digest')).toBe(image.manifest.digest);
      expect(new TextEncoder().encode(get.text)).toEqual(image.manifest.bytes);
      const head = await call('HEAD', `/v2/app/manifests/${reference}`);
      expect(head.headers.get('content-length')).toBe(String(image.manifest.size));
    }
    const cached = await call('GET', '/v2/app/manifests/v1', {
      headers: { 'if-none-match': `"${image.manifest.digest}"` },
    });
    expect(cached.status).toBe(304);
    // the same manifest pushed without a Content-Type is recognized from its body
    expect((await call('PUT', '/v2/app/manifests/v2', { body: image.manifest.bytes })).status).toBe(201);
    expect((await call('DELETE', '/v2/app/manifests/v2')).status).toBe(202);
    await expectError(call('GET', '/v2/app/manifests/v2'), 404, 'MANIFEST_UNKNOWN');
    expect((await call('GET', '/v2/app/manifests/v1')).status).toBe(200);
    expect((await call('DELETE', `/v2/app/manifests/${image.manifest.digest}`)).status).toBe(202);
    await expectError(call('GET', '/v2/app/manifests/v1'), 404, 'MANIFEST_UNKNOWN');
    expect((await call('HEAD', '/v2/app/manifests/v1')).status).toBe(404);
    await expectError(call('DELETE', '/v2/app/manifests/v1'), 404, 'MANIFEST_UNKNOWN');
  });

  it('refuses bad manifests with the right codes', async () => {
    const image = randomImage();
    const type = { 'content-type': image.manifest.mediaType };
    await expectError(
      call('PUT', '/v2/bad/manifests/v1', { headers: type, body: 'not json' }),
      400,
      'MANIFEST_INVALID',
    );
    await expectError(
      call('PUT', '/v2/bad/manifests/v1', { headers: type, body: image.manifest.bytes }),
      404,
      'MANIFEST_BLOB_UNKNOWN',
    );
    await pushImage(registry, 'bad', image);
    await expectError(
      call('PUT', `/v2/bad/manifests/${digestOf('something else')}`, {
        headers: type,
        body: image.manifest.bytes,
      }),
      400,
      'DIGEST_INVALID',
    );
    await expectError(
      call('PUT', '/v2/bad/manifests/-bad-tag', { headers: type, body: image.manifest.bytes }),
      400,
      'TAG_INVALID',
    );
    // a reference that is neither a tag nor a digest names nothing: 404 for reads and deletes,
    // as distribution and the distribution-spec conformance suite have it; a push says what is wrong
    for (const reference of ['.INVALID_MANIFEST_NAME', 'sha256:123', '-bad-tag', `md5:${'0'.repeat(32)}`]) {
      for (const method of ['GET', 'HEAD', 'DELETE']) {
        const refused = await call(method, `/v2/bad/manifests/${reference}`);
        expect(refused.status, `${method} ${reference}`).toBe(404);
        if (method !== 'HEAD') expect(refused.json().errors[0].code).toBe('MANIFEST_UNKNOWN');
      }
    }
    await expectError(
      call('PUT', '/v2/bad/manifests/.INVALID_MANIFEST_NAME', { headers: type, body: image.manifest.bytes }),
      400,
      'TAG_INVALID',
    );
    await expectError(
      call('PUT', '/v2/bad/manifests/sha256:123', { headers: type, body: image.manifest.bytes }),
      400,
      'DIGEST_INVALID',
    );
    const huge = new Uint8Array(65 * 1024).fill(32);
    await expectError(
      call('PUT', '/v2/bad/manifests/v1', { headers: type, body: huge }),
      413,
      'SIZE_INVALID',
    );
    const schema1 = { 'content-type': 'application/vnd.docker.distribution.manifest.v1+prettyjws' };
    const refused = await call('PUT', '/v2/bad/manifests/v1', {
      headers: schema1,
      body: '{"schemaVersion":1}',
    });
    expect([400, 405]).toContain(refused.status);
    expect(refused.json().errors[0].code).toMatch(/MANIFEST_INVALID|UNSUPPORTED/);
  });

  it('answers OCI-Subject on push and lists referrers with the artifactType filter', async () => {
    const image = randomImage();
    await pushImage(registry, 'refs', image, 'v1');
    const signature = randomArtifact({
      subject: image.descriptor,
      artifactType: 'application/vnd.example.sig',
    });
    const sbom = randomArtifact({ subject: image.descriptor, artifactType: 'application/vnd.example.sbom' });
    for (const artifact of [signature, sbom]) {
      for (const blob of artifact.blobs) {
        await call('POST', `/v2/refs/blobs/uploads/?digest=${blob.descriptor.digest}`, { body: blob.bytes });
      }
      const put = await call('PUT', `/v2/refs/manifests/${artifact.manifest.digest}`, {
        headers: { 'content-type': artifact.manifest.mediaType },
        body: artifact.manifest.bytes,
      });
      expect(put.status).toBe(201);
      expect(put.headers.get('oci-subject')).toBe(image.manifest.digest);
    }
    const all = await call('GET', `/v2/refs/referrers/${image.manifest.digest}`);
    expect(all.status).toBe(200);
    expect(all.headers.get('content-type')).toBe(MediaType.OciIndex);
    expect(all.json().manifests).toHaveLength(2);
    expect(all.headers.get('oci-filters-applied')).toBeNull();
    const filtered = await call(
      'GET',
      `/v2/refs/referrers/${image.manifest.digest}?artifactType=application/vnd.example.sig`,
    );
    expect(filtered.headers.get('oci-filters-applied')).toBe('artifactType');
    expect(filtered.json().manifests.map((m: { digest: string }) => m.digest)).toEqual([
      signature.manifest.digest,
    ]);
    const none = await call('GET', `/v2/refs/referrers/${digestOf('nothing')}`);
    expect(none.json()).toEqual({ schemaVersion: 2, mediaType: MediaType.OciIndex, manifests: [] });
    await expectError(call('GET', '/v2/refs/referrers/v1'), 400, 'DIGEST_INVALID');
  });

  it('lists tags and the catalog sorted, paged with n, last and Link', async () => {
    const image = randomImage();
    await pushImage(registry, 'paged/app', image);
    for (const tag of ['c', 'a', 'b', 'e', 'd'])
      await registry.putManifest('paged/app', tag, {
        bytes: image.manifest.bytes,
        mediaType: image.manifest.mediaType,
      });
    const all = await call('GET', '/v2/paged/app/tags/list');
    expect(all.json()).toEqual({ name: 'paged/app', tags: ['a', 'b', 'c', 'd', 'e'] });
    expect(all.headers.get('link')).toBeNull();
    const first = await call('GET', '/v2/paged/app/tags/list?n=2');
    expect(first.json().tags).toEqual(['a', 'b']);
    expect(first.headers.get('link')).toBe('</v2/paged/app/tags/list?n=2&last=b>; rel="next"');
    const second = await call('GET', '/v2/paged/app/tags/list?n=2&last=b');
    expect(second.json().tags).toEqual(['c', 'd']);
    const last = await call('GET', '/v2/paged/app/tags/list?n=2&last=d');
    expect(last.json().tags).toEqual(['e']);
    expect(last.headers.get('link')).toBeNull();
    expect((await call('GET', '/v2/paged/app/tags/list?n=0')).json().tags).toEqual([]);
    await expectError(call('GET', '/v2/paged/app/tags/list?n=-1'), 400, 'PAGINATION_NUMBER_INVALID');
    await expectError(call('GET', '/v2/paged/app/tags/list?n=abc'), 400, 'PAGINATION_NUMBER_INVALID');
    await expectError(call('GET', '/v2/no/such/repo/tags/list'), 404, 'NAME_UNKNOWN');
    const catalog = await call('GET', '/v2/_catalog');
    const names: string[] = catalog.json().repositories;
    expect(names).toContain('paged/app');
    expect([...names].sort()).toEqual(names);
    const page = await call('GET', '/v2/_catalog?n=1');
    expect(page.json().repositories).toHaveLength(1);
    expect(page.headers.get('link')).toMatch(/^<\/v2\/_catalog\?n=1&last=.+>; rel="next"$/);
  });

  it('validates repository names before anything else (raw paths, nothing normalized)', async () => {
    for (const path of [
      '/v2/UPPER/tags/list',
      '/v2/a..b/tags/list',
      '/v2/%2e%2e/tags/list',
      '/v2/../../etc/tags/list',
      '/v2/a%2F..%2Fb/manifests/v1',
      '/v2/a%00b/blobs/uploads/',
      '/v2//abs/tags/list',
      `/v2/${'a'.repeat(300)}/tags/list`,
    ]) {
      const method = path.endsWith('uploads/') ? 'POST' : 'GET';
      const { status, body } = await new Promise<{ status: number; body: string }>((resolve, reject) => {
        const req = httpRequest(
          { host: '127.0.0.1', port: Number(served.host.split(':')[1]), method, path },
          (res) => {
            let text = '';
            res.on('data', (chunk) => {
              text += chunk;
            });
            res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
          },
        );
        req.on('error', reject);
        req.end();
      });
      expect(status, path).toBe(400);
      expect(JSON.parse(body).errors[0].code, path).toBe('NAME_INVALID');
    }
  });

  it('enforces the blob size limit on every upload path', async () => {
    const big = new Uint8Array((1 << 20) + 1);
    await expectError(
      call('POST', `/v2/limits/blobs/uploads/?digest=${digestOf(big)}`, { body: big }),
      413,
      'SIZE_INVALID',
    );
    const start = await call('POST', '/v2/limits/blobs/uploads/');
    const location = start.headers.get('location') as string;
    await expectError(call('PATCH', location, { body: big }), 413, 'SIZE_INVALID');
    expect((await call('HEAD', `/v2/limits/blobs/${digestOf(big)}`)).status).toBe(404);
  });

  it('abandons a request body that stalls', async () => {
    const start = await call('POST', '/v2/stall/blobs/uploads/');
    const location = start.headers.get('location') as string;
    const stalled = (request: string) =>
      new Promise<string>((resolve, reject) => {
        const socket = connect(Number(served.url.split(':')[2]), '127.0.0.1');
        let data = '';
        socket.on('data', (chunk) => {
          data += chunk.toString();
        });
        socket.on('close', () => resolve(data));
        socket.on('error', reject);
        socket.write(request);
      });
    const response = await stalled(
      `PATCH ${location} HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n0123456789`,
    );
    // the server gave up on the body: a 408 with an OCI error body, then the connection is closed
    expect(response).toMatch(/^HTTP\/1\.1 408 /);
    const [head, payload] = response.split('\r\n\r\n') as [string, string];
    expect(head.toLowerCase()).toContain('connection: close');
    expect(head.toLowerCase()).toContain('content-type: application/json');
    expect(JSON.parse(payload).errors[0].code).toBe('BLOB_UPLOAD_INVALID');
    const status = await call('GET', location);
    expect(status.headers.get('range')).toBe('0-0');
    // the same for a monolithic push whose body stalls
    const blob = randomBlob(100);
    const mono = await stalled(
      `POST /v2/stall/blobs/uploads/?digest=${blob.descriptor.digest} HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n0123`,
    );
    expect(mono).toMatch(/^HTTP\/1\.1 408 /);
    expect((await call('HEAD', `/v2/stall/blobs/${blob.descriptor.digest}`)).status).toBe(404);
  });

  it('counts every request under its route', () => {
    expect(records.length).toBeGreaterThan(50);
    expect(new Set(records.map((r) => r.route))).toEqual(
      new Set(['ping', 'unknown', 'tags', 'manifest', 'blob', 'uploads', 'upload', 'referrers', 'catalog']),
    );
    records = [];
  });
});

describe('registry-server refusals from the backend and the authorizer', () => {
  function failing(error: Error): Registry {
    const base = createMemoryRegistry();
    return new Proxy(base, {
      get(target, key, receiver) {
        if (key === 'listTags' || key === 'getManifest') return async () => Promise.reject(error);
        return Reflect.get(target, key, receiver);
      },
    });
  }

  it('maps TOOMANYREQUESTS to 429 with Retry-After, and unexpected failures to 500 UNKNOWN', async () => {
    const busy = await serve({ registry: failing(new RegistryError('TOOMANYREQUESTS', 'slow down')) });
    const broken = await serve({ registry: failing(new Error('disk on fire')) });
    try {
      const limited = await fetch(`${busy.url}/v2/a/tags/list`);
      expect(limited.status).toBe(429);
      expect(limited.headers.get('retry-after')).toBe('1');
      expect((await errorsOf(limited))[0]?.code).toBe('TOOMANYREQUESTS');
      const crashed = await fetch(`${broken.url}/v2/a/manifests/v1`);
      expect(crashed.status).toBe(500);
      const body = await errorsOf(crashed);
      expect(body[0]).toEqual({ code: 'UNKNOWN', message: 'internal error' });
    } finally {
      await busy.close();
      await broken.close();
    }
  });

  it("sends Retry-After from the delay of the backend's 429 or 503, rounded up to whole seconds", async () => {
    const busy = await serve({
      registry: failing(new RegistryError('TOOMANYREQUESTS', 'slow down', { retryAfterMs: 2500 })),
    });
    const draining = await serve({
      registry: failing(new RegistryError('UNAVAILABLE', 'draining', { retryAfterMs: 10_000 })),
    });
    const quick = await serve({
      registry: failing(new RegistryError('UNAVAILABLE', 'draining', { retryAfterMs: 1 })),
    });
    try {
      const limited = await fetch(`${busy.url}/v2/a/tags/list`);
      expect(limited.status).toBe(429);
      expect(limited.headers.get('retry-after')).toBe('3');
      const unavailable = await fetch(`${draining.url}/v2/a/manifests/v1`);
      expect(unavailable.status).toBe(503);
      expect(unavailable.headers.get('retry-after')).toBe('10');
      expect((await errorsOf(unavailable))[0]).toEqual({ code: 'UNAVAILABLE', message: 'draining' });
      expect((await fetch(`${quick.url}/v2/a/tags/list`)).headers.get('retry-after')).toBe('1');
    } finally {
      await busy.close();
      await draining.close();
      await quick.close();
    }
  });

  it('answers a Stowage error whose code the wire lacks with a fixed 500, and logs the real one with the request id', async () => {
    class LockError extends StowageError<'LOCK_TIMEOUT'> {}
    const logged: { fields: Record<string, unknown>; message?: string }[] = [];
    const broken = await serve({
      registry: failing(new LockError('LOCK_TIMEOUT', 'lock /srv/stowage/.lock held by pid 4242')),
      // pino's shape, object first; only the level it needs
      logger: {
        error: (fields, message) => logged.push({ fields: fields as Record<string, unknown>, message }),
      },
    });
    try {
      const response = await fetch(`${broken.url}/v2/a/tags/list`, { headers: { 'x-request-id': 'req-42' } });
      expect(response.status).toBe(500);
      const text = await response.text();
      expect(JSON.parse(text)).toEqual({ errors: [{ code: 'UNKNOWN', message: 'internal error' }] });
      expect(text).not.toContain('/srv/stowage');
      const entry = logged.find((line) => line.fields.requestId === 'req-42');
      expect(entry?.message).toBe('request failed');
      expect((entry?.fields.err as Error).message).toBe('lock /srv/stowage/.lock held by pid 4242');
    } finally {
      await broken.close();
    }
  });

  it('answers 503 UNAVAILABLE with Retry-After once the backend is closed', async () => {
    const registry = createMemoryRegistry();
    const closing = await serve({ registry });
    try {
      await registry.close?.();
      const response = await fetch(`${closing.url}/v2/a/tags/list`);
      expect(response.status).toBe(503);
      expect(response.headers.get('retry-after')).toBe('1');
      expect((await errorsOf(response))[0]?.code).toBe('UNAVAILABLE');
    } finally {
      await closing.close();
    }
  });

  it('sends 401 with the challenge and 403 for what the authorizer refuses', async () => {
    const authorizer: Authorizer = {
      async authorize(request, access) {
        if (request.headers.authorization !== 'Bearer good') {
          return {
            ok: false,
            status: 401,
            code: 'UNAUTHORIZED',
            message: 'log in',
            challenge: 'Basic realm="test"',
          };
        }
        if (access.some((a) => a.actions.includes('delete'))) {
          return { ok: false, status: 403, code: 'DENIED', message: 'no deletes' };
        }
        return { ok: true, principal: { subject: 'me' } };
      },
    };
    const guarded = await serve({ registry: createMemoryRegistry(), auth: authorizer });
    try {
      const anonymous = await fetch(`${guarded.url}/v2/`);
      expect(anonymous.status).toBe(401);
      expect(anonymous.headers.get('www-authenticate')).toBe('Basic realm="test"');
      expect((await errorsOf(anonymous))[0]?.code).toBe('UNAUTHORIZED');
      const ok = await fetch(`${guarded.url}/v2/`, { headers: { authorization: 'Bearer good' } });
      expect(ok.status).toBe(200);
      const denied = await fetch(`${guarded.url}/v2/a/manifests/v1`, {
        method: 'DELETE',
        headers: { authorization: 'Bearer good' },
      });
      expect(denied.status).toBe(403);
      expect((await errorsOf(denied))[0]?.code).toBe('DENIED');
    } finally {
      await guarded.close();
    }
  });

  it("sends an authorizer's 429 with its Retry-After and other headers", async () => {
    const busy: Authorizer = {
      async authorize(request) {
        if (request.headers.authorization === 'Bearer ok') return { ok: true, principal: {} };
        return {
          ok: false,
          status: 429,
          code: 'TOOMANYREQUESTS',
          message: 'too many logins in flight',
          headers: { 'retry-after': '7', 'x-ratelimit-reason': 'logins' },
        };
      },
    };
    const guarded = await serve({ registry: createMemoryRegistry(), auth: busy });
    try {
      for (const path of ['/v2/', '/v2/a/manifests/v1', '/v2/_catalog']) {
        const { status, headers, body } = await new Promise<{
          status: number;
          headers: Record<string, unknown>;
          body: string;
        }>((resolve, reject) => {
          const req = httpRequest(
            { host: '127.0.0.1', port: Number(guarded.host.split(':')[1]), path },
            (res) => {
              let text = '';
              res.on('data', (chunk) => {
                text += chunk;
              });
              res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: text }));
            },
          );
          req.on('error', reject);
          req.end();
        });
        expect(status, path).toBe(429);
        expect(headers['retry-after'], path).toBe('7');
        expect(headers['x-ratelimit-reason'], path).toBe('logins');
        expect(headers['content-type'], path).toBe('application/json');
        expect(JSON.parse(body).errors[0].code, path).toBe('TOOMANYREQUESTS');
      }
      const ok = await fetch(`${guarded.url}/v2/`, { headers: { authorization: 'Bearer ok' } });
      expect(ok.status).toBe(200);
      expect(ok.headers.get('retry-after')).toBeNull();
    } finally {
      await guarded.close();
    }
  });

  it('still accepts the deprecated `authorizer` option when `auth` is not given', async () => {
    const refuseAll: Authorizer = {
      async authorize() {
        return { ok: false, status: 403, code: 'DENIED', message: 'no' };
      },
    };
    const allowAll: Authorizer = {
      async authorize() {
        return { ok: true, principal: {} };
      },
    };
    const legacy = await serve({ registry: createMemoryRegistry(), authorizer: refuseAll });
    const both = await serve({ registry: createMemoryRegistry(), auth: allowAll, authorizer: refuseAll });
    try {
      expect((await fetch(`${legacy.url}/v2/`)).status).toBe(403);
      expect((await fetch(`${both.url}/v2/`)).status).toBe(200);
    } finally {
      await legacy.close();
      await both.close();
    }
  });

  it('mounts only what the caller may pull once access is checked, else opens a session', async () => {
    const store = createMemoryRegistry();
    const secret = randomBlob(64);
    const shared = randomBlob(64);
    await store.putBlob('secret', secret.bytes, { digest: secret.descriptor.digest });
    await store.putBlob('shared', shared.bytes, { digest: shared.descriptor.digest });
    // anonymous use, but nobody may pull (or do anything else) in `secret`
    const guarded = await serve({ registry: store, auth: createRulesAuthorizer([{ repository: 'secret' }]) });
    const post = (query: string) =>
      fetch(`${guarded.url}/v2/mine/blobs/uploads/${query}`, { method: 'POST' });
    try {
      expect((await fetch(`${guarded.url}/v2/secret/blobs/${secret.descriptor.digest}`)).status).toBe(403);
      // no `from`: the blob might come from any repository, so no mount, a fresh session instead
      const anywhere = await post(`?mount=${secret.descriptor.digest}`);
      expect(anywhere.status).toBe(202);
      expect(anywhere.headers.get('location')).toMatch(/^\/v2\/mine\/blobs\/uploads\/.+/);
      // `from` the caller cannot pull: not an error, a session
      const denied = await post(`?mount=${secret.descriptor.digest}&from=secret`);
      expect(denied.status).toBe(202);
      expect(denied.headers.get('location')).toMatch(/^\/v2\/mine\/blobs\/uploads\/.+/);
      expect((await fetch(`${guarded.url}/v2/mine/blobs/${secret.descriptor.digest}`)).status).toBe(404);
      // `from` the caller may pull: mounted
      const mounted = await post(`?mount=${shared.descriptor.digest}&from=shared`);
      expect(mounted.status).toBe(201);
      expect(mounted.headers.get('location')).toBe(`/v2/mine/blobs/${shared.descriptor.digest}`);
      // the target still needs push: refused outright
      const target = await fetch(
        `${guarded.url}/v2/secret/blobs/uploads/?mount=${shared.descriptor.digest}&from=shared`,
        { method: 'POST' },
      );
      expect(target.status).toBe(403);
      expect((await errorsOf(target))[0]?.code).toBe('DENIED');
    } finally {
      await guarded.close();
    }
  });

  it('keeps Connection: close and the challenge on an error answer', async () => {
    const handler = createRegistryHandler({
      registry: createMemoryRegistry(),
      auth: {
        async authorize(request) {
          if (request.headers.authorization) return { ok: true, principal: {} };
          return {
            ok: false,
            status: 401,
            code: 'UNAUTHORIZED',
            message: 'log in',
            challenge: 'Basic realm="x"',
          };
        },
      },
    });
    // as stowage-server does while draining: every answer closes its connection
    const server = createServer((request, response) => {
      response.setHeader('connection', 'close');
      void handler(request, response);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as AddressInfo;
    const get = (path: string, headers: Record<string, string> = {}) =>
      new Promise<{ status: number; headers: Record<string, unknown>; body: string }>((resolve, reject) => {
        const req = httpRequest({ host: '127.0.0.1', port, path, headers, agent: false }, (res) => {
          let body = '';
          res.on('data', (chunk) => {
            body += chunk;
          });
          res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
        });
        req.on('error', reject);
        req.end();
      });
    try {
      const missing = await get('/v2/a/manifests/v1', { authorization: 'Basic eDp5' });
      expect(missing.status).toBe(404);
      expect(missing.headers.connection).toBe('close');
      expect(JSON.parse(missing.body).errors[0].code).toBe('MANIFEST_UNKNOWN');
      const unauthorized = await get('/v2/');
      expect(unauthorized.status).toBe(401);
      expect(unauthorized.headers.connection).toBe('close');
      expect(unauthorized.headers['www-authenticate']).toBe('Basic realm="x"');
    } finally {
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });

  it('reports each upload session once when it starts and once when it ends, however it ends', async () => {
    let clock = Date.now();
    const store = createMemoryRegistry({ uploadTtlMs: 60_000, now: () => clock });
    let open = 0;
    const counted = await serve({
      registry: store,
      onUpload: (delta) => {
        open += delta;
      },
    });
    const start = async () => {
      const response = await fetch(`${counted.url}/v2/counted/blobs/uploads/`, { method: 'POST' });
      expect(response.status).toBe(202);
      return `${counted.url}${response.headers.get('location')}`;
    };
    const blob = randomBlob(200);
    try {
      // finished
      const finished = await start();
      expect(open).toBe(1);
      expect(
        (await fetch(`${finished}?digest=${blob.descriptor.digest}`, { method: 'PUT', body: blob.bytes }))
          .status,
      ).toBe(201);
      expect(open).toBe(0);
      // a finishing PUT the store refuses, ending the session (a wrong digest)
      const refused = await start();
      expect(open).toBe(1);
      const wrong = await fetch(`${refused}?digest=${digestOf('other')}`, {
        method: 'PUT',
        body: blob.bytes,
      });
      expect(wrong.status).toBe(400);
      expect(open).toBe(0);
      expect((await fetch(refused)).status).toBe(404);
      expect(open).toBe(0);
      // a refused chunk leaves the session open
      const kept = await start();
      const outOfOrder = await fetch(kept, {
        method: 'PATCH',
        headers: { 'content-range': '10-19' },
        body: blob.bytes.subarray(10, 20),
      });
      expect(outOfOrder.status).toBe(416);
      expect(open).toBe(1);
      // cancelled, and a second cancel counts nothing
      expect((await fetch(kept, { method: 'DELETE' })).status).toBe(204);
      expect((await fetch(kept, { method: 'DELETE' })).status).toBe(404);
      expect(open).toBe(0);
      // expired in the store: found by a sweep
      await start();
      await start();
      expect(open).toBe(2);
      expect(await counted.handler.sweepUploads()).toBe(0);
      clock += 120_000;
      expect(await counted.handler.sweepUploads()).toBe(2);
      expect(open).toBe(0);
      expect(await counted.handler.sweepUploads()).toBe(0);
      // sessions started elsewhere are not counted when they end here
      const elsewhere = await store.startUpload('counted');
      const other = `${counted.url}/v2/counted/blobs/uploads/${elsewhere.id}`;
      expect((await fetch(other, { method: 'DELETE' })).status).toBe(204);
      expect(open).toBe(0);
    } finally {
      await counted.close();
    }
  });

  it('refuses writes in read-only mode', async () => {
    const readOnly = await serve({ registry: createMemoryRegistry(), readOnly: true });
    try {
      const refused = await fetch(`${readOnly.url}/v2/a/blobs/uploads/`, { method: 'POST' });
      expect(refused.status).toBe(405);
      expect((await errorsOf(refused))[0]?.code).toBe('UNSUPPORTED');
      expect((await fetch(`${readOnly.url}/v2/_catalog`)).status).toBe(200);
    } finally {
      await readOnly.close();
    }
  });
});
