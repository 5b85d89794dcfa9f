// A backend without upload sessions of its own is served with the shared ones from @stowage/blob-store
// (`withUploadSessions` over a staging area): chunked uploads work over HTTP, offsets and refusals included.
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createFileStaging, createMemoryStaging } from '@stowage/blob-store';
import { digestOf, hasUploadSessions } from '@stowage/oci';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Served, serve } from '../test/serve.js';
import { withoutSessions } from '../test/without-sessions.js';

const bytes = (text: string) => new TextEncoder().encode(text);

describe('a backend without upload sessions', () => {
  let work: string;
  let staged: string;
  let withFiles: Served;
  let withMemory: Served;
  let withDefault: Served;
  const gauge: number[] = [];

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'stowage-server-shared-sessions-'));
    staged = join(work, 'staging');
    expect(hasUploadSessions(withoutSessions())).toBe(false);
    withFiles = await serve({
      registry: withoutSessions(),
      uploadStaging: createFileStaging({ dir: staged, durable: false }),
      onUpload: (delta) => gauge.push(delta),
    });
    withMemory = await serve({ registry: withoutSessions(), uploadStaging: createMemoryStaging() });
    withDefault = await serve({ registry: withoutSessions() });
  });

  afterAll(async () => {
    await withFiles?.close();
    await withMemory?.close();
    await withDefault?.close();
    await rm(work, { recursive: true, force: true });
  });

  it('takes a chunked upload: offsets, a refused out-of-order chunk that changes nothing, the last chunk with the PUT', async () => {
    for (const served of [withFiles, withMemory, withDefault]) {
      const content = bytes('hello, shared sessions!');
      const digest = digestOf(content);
      const started = await fetch(`${served.url}/v2/app/blobs/uploads/`, { method: 'POST' });
      expect(started.status).toBe(202);
      const location = new URL(started.headers.get('location') ?? '', served.url).href;
      const first = await fetch(location, {
        method: 'PATCH',
        headers: { 'content-range': '0-9', 'content-type': 'application/octet-stream' },
        body: content.subarray(0, 10),
      });
      expect(first.status).toBe(202);
      expect(first.headers.get('range')).toBe('0-9');
      const skipped = await fetch(location, {
        method: 'PATCH',
        headers: { 'content-range': '15-19' },
        body: content.subarray(15, 20),
      });
      expect(skipped.status).toBe(416);
      expect(((await skipped.json()) as { errors: { code: string }[] }).errors[0]?.code).toBe(
        'BLOB_UPLOAD_INVALID',
      );
      const status = await fetch(location);
      expect(status.status).toBe(204);
      expect(status.headers.get('range')).toBe('0-9');
      const finished = await fetch(`${location}?digest=${digest}`, {
        method: 'PUT',
        headers: { 'content-range': `10-${content.byteLength - 1}` },
        body: content.subarray(10),
      });
      expect(finished.status).toBe(201);
      expect(finished.headers.get('docker-content-digest')).toBe(digest);
      const fetched = await fetch(`${served.url}/v2/app/blobs/${digest}`);
      expect(new Uint8Array(await fetched.arrayBuffer())).toEqual(content);
      // the session is over
      expect((await fetch(location)).status).toBe(404);
    }
  });

  it('stages in the given area while a session is open, and cancels', async () => {
    gauge.length = 0;
    const started = await fetch(`${withFiles.url}/v2/app/blobs/uploads/`, { method: 'POST' });
    const id = started.headers.get('docker-upload-uuid') ?? '';
    expect(await readdir(staged)).toEqual([id]);
    const location = new URL(started.headers.get('location') ?? '', withFiles.url).href;
    expect((await fetch(location, { method: 'PATCH', body: bytes('abc') })).status).toBe(202);
    const cancelled = await fetch(location, { method: 'DELETE' });
    expect(cancelled.status).toBe(204);
    expect(await readdir(staged)).toEqual([]);
    const gone = await fetch(location);
    expect(gone.status).toBe(404);
    expect(((await gone.json()) as { errors: { code: string }[] }).errors[0]?.code).toBe(
      'BLOB_UPLOAD_UNKNOWN',
    );
    expect(gauge).toEqual([1, -1]);
  });

  it('ends a session whose whole blob has the wrong digest, committing nothing', async () => {
    const started = await fetch(`${withFiles.url}/v2/app/blobs/uploads/`, { method: 'POST' });
    const location = new URL(started.headers.get('location') ?? '', withFiles.url).href;
    const wrong = digestOf(bytes('something else'));
    const refused = await fetch(`${location}?digest=${wrong}`, { method: 'PUT', body: bytes('the bytes') });
    expect(refused.status).toBe(400);
    expect(((await refused.json()) as { errors: { code: string }[] }).errors[0]?.code).toBe('DIGEST_INVALID');
    expect((await fetch(`${withFiles.url}/v2/app/blobs/${wrong}`, { method: 'HEAD' })).status).toBe(404);
    expect((await fetch(location)).status).toBe(404);
  });
});
