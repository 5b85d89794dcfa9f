import { randomBytes } from 'node:crypto';
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { mkdir, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { type Digest, digestHex, digestOf } from '@stowage/oci';
import { describe, expect, it } from 'vitest';
import { blob, chunked, codeOf, collect, tempDirs } from '../test/helpers.js';
import type { BlobStore } from './blob-store.js';
import { BLOB_WRITE_CHANNEL, type BlobWriteMessage } from './diagnostics.js';
import { createFileBlobStore } from './file-blob-store.js';
import { createMemoryBlobStore } from './memory-blob-store.js';

const tempDir = tempDirs('stowage-blob-store-');

async function listed(store: BlobStore): Promise<Map<Digest, number>> {
  const out = new Map<Digest, number>();
  for await (const info of store.list()) out.set(info.digest, info.size);
  return out;
}

/** Every file under a directory, relative to it. */
async function filesUnder(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true }).catch(() => []);
  return entries
    .filter((entry) => entry.isFile())
    .map((entry) => join(entry.parentPath, entry.name).slice(dir.length + 1))
    .sort();
}

/** The behaviour every blob store shares, run once for each. */
function blobStoreContract(name: string, open: () => Promise<BlobStore>) {
  describe(`${name}: the BlobStore contract`, () => {
    it('writes, stats and reads a blob back', async () => {
      const store = await open();
      const b = blob(5000);
      expect(await store.stat(b.digest)).toBeUndefined();
      expect(await store.write(b.bytes, { digest: b.digest, size: 5000 })).toEqual({
        digest: b.digest,
        size: 5000,
        created: true,
      });
      const info = await store.stat(b.digest);
      expect(info).toMatchObject({ digest: b.digest, size: 5000 });
      expect(typeof info?.modifiedAt).toBe('number');
      const content = await store.read(b.digest);
      expect(content.size).toBe(5000);
      expect(content.range).toBeUndefined();
      expect((await collect(content.stream)).equals(b.bytes)).toBe(true);
    });

    it('streams a body of many chunks larger than one write batch, and sha512 blobs', async () => {
      const store = await open();
      const big = blob(3 * 1024 * 1024 + 17);
      expect((await store.write(chunked(big.bytes, 64 * 1024), { digest: big.digest })).size).toBe(
        big.bytes.byteLength,
      );
      expect(digestOf(await collect((await store.read(big.digest)).stream))).toBe(big.digest);
      const long = blob(777, 'sha512');
      await store.write(chunked(long.bytes, 100), { digest: long.digest });
      expect(digestOf(await collect((await store.read(long.digest)).stream), 'sha512')).toBe(long.digest);
    });

    it('stores the empty blob', async () => {
      const store = await open();
      const digest = digestOf('');
      expect((await store.write(new Uint8Array(0), { digest })).size).toBe(0);
      expect((await collect((await store.read(digest)).stream)).byteLength).toBe(0);
    });

    it('serves ranges, cuts an end past the blob, refuses a start outside it', async () => {
      const store = await open();
      const b = blob(100);
      await store.write(b.bytes, { digest: b.digest });
      const part = await store.read(b.digest, { range: { start: 10, end: 19 } });
      expect(part.range).toEqual({ start: 10, end: 19 });
      expect(part.size).toBe(100);
      expect((await collect(part.stream)).equals(b.bytes.subarray(10, 20))).toBe(true);
      const tail = await store.read(b.digest, { range: { start: 90, end: 500 } });
      expect(tail.range).toEqual({ start: 90, end: 99 });
      expect((await collect(tail.stream)).equals(b.bytes.subarray(90))).toBe(true);
      const open_ = await store.read(b.digest, { range: { start: 50 } });
      expect((await collect(open_.stream)).equals(b.bytes.subarray(50))).toBe(true);
      expect(await codeOf(store.read(b.digest, { range: { start: 100 } }))).toBe('RANGE_INVALID');
      expect(await codeOf(store.read(b.digest, { range: { start: 20, end: 10 } }))).toBe('RANGE_INVALID');
    });

    it('answers BLOB_UNKNOWN and undefined for a blob it does not hold, DIGEST_INVALID for a bad digest', async () => {
      const store = await open();
      const absent = digestOf('absent');
      expect(await codeOf(store.read(absent))).toBe('BLOB_UNKNOWN');
      expect(await store.stat(absent)).toBeUndefined();
      expect(await store.delete(absent)).toBe(false);
      expect(await codeOf(store.stat('sha256:../../etc' as Digest))).toBe('DIGEST_INVALID');
      expect(await codeOf(store.write(new Uint8Array(1), { digest: 'md5:00' as Digest }))).toBe(
        'DIGEST_INVALID',
      );
    });

    it('a body that does not match its digest or size leaves nothing behind', async () => {
      const store = await open();
      const b = blob(2000);
      const wrong = digestOf('something else');
      expect(await codeOf(store.write(chunked(b.bytes, 300), { digest: wrong }))).toBe('DIGEST_INVALID');
      expect(await codeOf(store.write(b.bytes, { digest: b.digest, size: 1999 }))).toBe('SIZE_INVALID');
      expect(await codeOf(store.write(b.bytes, { digest: b.digest, size: 2001 }))).toBe('SIZE_INVALID');
      expect(await store.stat(wrong)).toBeUndefined();
      expect(await store.stat(b.digest)).toBeUndefined();
      expect(await listed(store)).toEqual(new Map());
    });

    it('writing a stored blob again verifies the body and creates nothing', async () => {
      const store = await open();
      const b = blob(1000);
      expect((await store.write(b.bytes, { digest: b.digest })).created).toBe(true);
      expect(await store.write(chunked(b.bytes, 7), { digest: b.digest })).toEqual({
        digest: b.digest,
        size: 1000,
        created: false,
      });
      // Different bytes under the stored digest are refused, and the stored blob is intact.
      expect(await codeOf(store.write(randomBytes(1000), { digest: b.digest }))).toBe('DIGEST_INVALID');
      expect((await collect((await store.read(b.digest)).stream)).equals(b.bytes)).toBe(true);
    });

    it('concurrent writes of one blob all succeed and exactly one creates it', async () => {
      const store = await open();
      const b = blob(200_000);
      const results = await Promise.all(
        Array.from({ length: 8 }, () => store.write(chunked(b.bytes, 8192), { digest: b.digest })),
      );
      expect(results.every((r) => r.digest === b.digest && r.size === 200_000)).toBe(true);
      expect(results.filter((r) => r.created)).toHaveLength(1);
      expect(digestOf(await collect((await store.read(b.digest)).stream))).toBe(b.digest);
    });

    it('deletes a blob', async () => {
      const store = await open();
      const b = blob(10);
      const keep = blob(11);
      await store.write(b.bytes, { digest: b.digest });
      await store.write(keep.bytes, { digest: keep.digest });
      expect(await store.delete(b.digest)).toBe(true);
      expect(await store.delete(b.digest)).toBe(false);
      expect(await store.stat(b.digest)).toBeUndefined();
      expect(await codeOf(store.read(b.digest))).toBe('BLOB_UNKNOWN');
      expect(await store.stat(keep.digest)).toMatchObject({ size: 11 });
    });

    it('lists every blob with its size', async () => {
      const store = await open();
      expect(await listed(store)).toEqual(new Map());
      const blobs = [
        blob(1),
        blob(2),
        blob(300),
        blob(4, 'sha512'),
        { bytes: new Uint8Array(0), digest: digestOf('') },
      ];
      for (const b of blobs) await store.write(b.bytes, { digest: b.digest });
      expect(await listed(store)).toEqual(new Map(blobs.map((b) => [b.digest, b.bytes.byteLength])));
    });

    it('honours an abort before and during a write, and commits nothing', async () => {
      const store = await open();
      const b = blob(10_000);
      expect(await codeOf(store.write(b.bytes, { digest: b.digest, signal: AbortSignal.abort() }))).toBe(
        'AbortError',
      );
      const controller = new AbortController();
      async function* stalls(): AsyncGenerator<Uint8Array> {
        yield b.bytes.subarray(0, 5000);
        controller.abort();
        await new Promise((resolve) => setTimeout(resolve, 10));
        yield b.bytes.subarray(5000);
      }
      expect(await codeOf(store.write(stalls(), { digest: b.digest, signal: controller.signal }))).toBe(
        'AbortError',
      );
      expect(await store.stat(b.digest)).toBeUndefined();
      expect(await listed(store)).toEqual(new Map());
      await store.write(b.bytes, { digest: b.digest });
      expect(await codeOf(store.read(b.digest, { signal: AbortSignal.abort() }))).toBe('AbortError');
      expect(await codeOf(store.stat(b.digest, { signal: AbortSignal.abort() }))).toBe('AbortError');
      const reading = new AbortController();
      const content = await store.read(b.digest, { signal: reading.signal });
      reading.abort();
      expect(await codeOf(collect(content.stream))).toBe('AbortError');
    });

    it('a body that fails midway commits nothing', async () => {
      const store = await open();
      const b = blob(4000);
      async function* breaks(): AsyncGenerator<Uint8Array> {
        yield b.bytes.subarray(0, 1000);
        throw new Error('connection reset');
      }
      await expect(store.write(breaks(), { digest: b.digest })).rejects.toThrow('connection reset');
      expect(await store.stat(b.digest)).toBeUndefined();
    });
  });
}

blobStoreContract('memory', async () => createMemoryBlobStore());
blobStoreContract('file, stowage layout', async () =>
  createFileBlobStore({ root: join(await tempDir(), 'blobs'), layout: 'stowage' }),
);
blobStoreContract('file, distribution layout', async () =>
  createFileBlobStore({ root: await tempDir(), layout: 'distribution' }),
);

describe('file blob stores', () => {
  it('the stowage layout is <root>/<algorithm>/<hex>, the image store content store', async () => {
    const root = join(await tempDir(), '.stowage', 'blobs');
    const store = createFileBlobStore({ root, layout: 'stowage', tmpDir: join(root, '..', 'tmp') });
    const b = blob(64);
    await store.write(b.bytes, { digest: b.digest });
    const expected = join(root, 'sha256', digestHex(b.digest));
    expect(store.path(b.digest)).toBe(expected);
    expect((await readFile(expected)).equals(b.bytes)).toBe(true);
    expect(await filesUnder(root)).toEqual([`sha256/${digestHex(b.digest)}`]);
  });

  it('the distribution layout is docker/registry/v2/blobs/<algorithm>/<two hex>/<hex>/data', async () => {
    const root = await tempDir();
    const store = createFileBlobStore({ root, layout: 'distribution' });
    const b = blob(64);
    const long = blob(65, 'sha512');
    await store.write(b.bytes, { digest: b.digest });
    await store.write(long.bytes, { digest: long.digest });
    const hex = digestHex(b.digest);
    const hex512 = digestHex(long.digest);
    expect(await filesUnder(root)).toEqual(
      [
        `docker/registry/v2/blobs/sha256/${hex.slice(0, 2)}/${hex}/data`,
        `docker/registry/v2/blobs/sha512/${hex512.slice(0, 2)}/${hex512}/data`,
      ].sort(),
    );
    expect(store.path(b.digest)).toBe(
      join(root, 'docker/registry/v2/blobs/sha256', hex.slice(0, 2), hex, 'data'),
    );
    // Deleting removes the blob's directory, as distribution does, and keeps the others.
    expect(await store.delete(b.digest)).toBe(true);
    expect(
      await stat(join(root, 'docker/registry/v2/blobs/sha256', hex.slice(0, 2), hex)).catch(() => 'gone'),
    ).toBe('gone');
    expect(await filesUnder(root)).toEqual([
      `docker/registry/v2/blobs/sha512/${hex512.slice(0, 2)}/${hex512}/data`,
    ]);
  });

  it('serves a tree written in distribution layout in place, ignoring what is not a blob', async () => {
    const root = await tempDir();
    const v2 = join(root, 'docker', 'registry', 'v2');
    const layer = blob(3000);
    const config = blob(200);
    const put = async (digest: Digest, bytes: Uint8Array) => {
      const hex = digestHex(digest);
      await mkdir(join(v2, 'blobs', 'sha256', hex.slice(0, 2), hex), { recursive: true });
      await writeFile(join(v2, 'blobs', 'sha256', hex.slice(0, 2), hex, 'data'), bytes);
    };
    await put(layer.digest, layer.bytes);
    await put(config.digest, config.bytes);
    // What else a registry root holds: repository links, an upload in progress, litter.
    const repo = join(v2, 'repositories', 'demo', 'app');
    await mkdir(join(repo, '_layers', 'sha256', digestHex(layer.digest)), { recursive: true });
    await writeFile(join(repo, '_layers', 'sha256', digestHex(layer.digest), 'link'), layer.digest);
    await mkdir(join(repo, '_uploads', 'a3f1e9c2-0000-4000-8000-000000000000'), { recursive: true });
    await writeFile(join(repo, '_uploads', 'a3f1e9c2-0000-4000-8000-000000000000', 'data'), 'partial');
    const stray = digestHex(digestOf('stray'));
    await mkdir(join(v2, 'blobs', 'sha256', 'zz', stray), { recursive: true }); // shard is not the hex's prefix
    await writeFile(join(v2, 'blobs', 'sha256', 'zz', stray, 'data'), 'stray');
    const nodata = digestOf('no data file');
    await mkdir(join(v2, 'blobs', 'sha256', digestHex(nodata).slice(0, 2), digestHex(nodata)), {
      recursive: true,
    });
    await writeFile(join(v2, 'blobs', 'sha256', digestHex(layer.digest).slice(0, 2), 'README'), 'not a blob');
    await mkdir(join(v2, 'blobs', 'md5', 'ab'), { recursive: true });

    const store = createFileBlobStore({ root, layout: 'distribution', readOnly: true });
    expect(await listed(store)).toEqual(
      new Map([
        [layer.digest, 3000],
        [config.digest, 200],
      ]),
    );
    expect((await collect((await store.read(layer.digest)).stream)).equals(layer.bytes)).toBe(true);
    expect(await store.stat(config.digest)).toMatchObject({ size: 200 });
    expect(await store.stat(nodata)).toBeUndefined();
    const before = await filesUnder(root);
    expect(await codeOf(store.write(blob(5).bytes, { digest: digestOf('x') }))).toBe('DENIED');
    expect(await codeOf(store.delete(layer.digest))).toBe('DENIED');
    expect(await filesUnder(root)).toEqual(before);
  });

  it('a read-only store creates nothing, not even its root', async () => {
    const root = join(await tempDir(), 'absent');
    const store = createFileBlobStore({ root, layout: 'stowage', readOnly: true });
    const b = blob(5);
    expect(await codeOf(store.write(b.bytes, { digest: b.digest }))).toBe('DENIED');
    expect(await store.stat(b.digest)).toBeUndefined();
    expect(await listed(store)).toEqual(new Map());
    expect(await stat(root).catch(() => 'absent')).toBe('absent');
  });

  for (const layout of ['stowage', 'distribution'] as const) {
    it(`${layout}: a write of the wrong digest leaves no file anywhere in the root`, async () => {
      const root = await tempDir();
      const store = createFileBlobStore({ root, layout });
      const b = blob(300_000);
      expect(await codeOf(store.write(chunked(b.bytes, 10_000), { digest: digestOf('not it') }))).toBe(
        'DIGEST_INVALID',
      );
      expect(await codeOf(store.write(b.bytes, { digest: b.digest, size: 5 }))).toBe('SIZE_INVALID');
      expect(await filesUnder(root)).toEqual([]);
      await store.write(b.bytes, { digest: b.digest });
      expect(await filesUnder(root)).toHaveLength(1);
    });
  }

  it('refuses options it cannot work with', () => {
    expect(() => createFileBlobStore({ root: '', layout: 'stowage' })).toThrow(
      expect.objectContaining({ code: 'OPTIONS_INVALID' }),
    );
    expect(() => createFileBlobStore({ root: '/tmp/x', layout: 'oci' as 'stowage' })).toThrow(
      expect.objectContaining({ code: 'OPTIONS_INVALID' }),
    );
  });
});

describe('diagnostics', () => {
  it(`publishes each write on ${BLOB_WRITE_CHANNEL}`, async () => {
    const messages: BlobWriteMessage[] = [];
    const listener = (message: unknown) => messages.push(message as BlobWriteMessage);
    subscribe(BLOB_WRITE_CHANNEL, listener);
    try {
      const root = await tempDir();
      const file = createFileBlobStore({ root, layout: 'distribution' });
      const memory = createMemoryBlobStore();
      const b = blob(42);
      await file.write(b.bytes, { digest: b.digest });
      await file.write(b.bytes, { digest: b.digest });
      await codeOf(file.write(b.bytes, { digest: digestOf('wrong') }));
      await memory.write(b.bytes, { digest: b.digest });
      expect(messages).toEqual([
        { store: root, digest: b.digest, size: 42, created: true },
        { store: root, digest: b.digest, size: 42, created: false },
        { store: 'memory', digest: b.digest, size: 42, created: true },
      ]);
    } finally {
      unsubscribe(BLOB_WRITE_CHANNEL, listener);
    }
  });
});
