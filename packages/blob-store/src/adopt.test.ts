import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { digestOf } from '@stowage/oci';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { blob, codeOf, collect, tempDirs } from '../test/helpers.js';
import { BLOB_WRITE_CHANNEL, type BlobWriteMessage } from './diagnostics.js';
import { createFileBlobStore, type FileBlobLayout } from './file-blob-store.js';

// `link` can be made to fail as on a filesystem without hard links (a fault the
// test machine's filesystem cannot produce); every other call is the real one.
const linkFault = vi.hoisted(() => ({ code: undefined as string | undefined }));
vi.mock('./quick-fs.js', async (original) => {
  const real = await original<typeof import('./quick-fs.js')>();
  return {
    ...real,
    link: async (...args: Parameters<typeof real.link>) => {
      if (linkFault.code) throw Object.assign(new Error(`link: ${linkFault.code}`), { code: linkFault.code });
      return real.link(...args);
    },
  };
});
afterEach(() => {
  linkFault.code = undefined;
});

const tempDir = tempDirs('stowage-blob-adopt-');

/** A store and a verified file beside it, on the same filesystem. */
async function setup(layout: FileBlobLayout = 'stowage', size = 5000) {
  const dir = await tempDir();
  const store = createFileBlobStore({ root: join(dir, 'blobs'), layout });
  const b = blob(size);
  const file = join(dir, 'verified');
  await writeFile(file, b.bytes);
  return { dir, store, file, ...b };
}

describe('FileBlobStore.adopt', () => {
  for (const layout of ['stowage', 'distribution'] as const) {
    it(`${layout}: hard-links a verified file into place without copying it`, async () => {
      const { store, file, bytes, digest } = await setup(layout);
      expect(await store.adopt(file, { digest, size: bytes.byteLength })).toEqual({
        digest,
        size: bytes.byteLength,
        created: true,
      });
      // one inode under two names: the source stays, the blob is the same file
      expect((await stat(store.path(digest))).ino).toBe((await stat(file)).ino);
      expect(await store.stat(digest)).toMatchObject({ digest, size: bytes.byteLength });
      expect((await collect((await store.read(digest)).stream)).equals(bytes)).toBe(true);
    });
  }

  it('keeps a blob stored already and answers created: false', async () => {
    const { store, file, bytes, digest } = await setup();
    await store.write(bytes, { digest });
    const before = (await stat(store.path(digest))).ino;
    expect(await store.adopt(file, { digest })).toEqual({ digest, size: bytes.byteLength, created: false });
    expect((await stat(store.path(digest))).ino).toBe(before);
  });

  it('refuses a file of another size with SIZE_INVALID and stores nothing', async () => {
    const { store, file, bytes, digest } = await setup();
    expect(await codeOf(store.adopt(file, { digest, size: bytes.byteLength + 1 }))).toBe('SIZE_INVALID');
    expect(await store.stat(digest)).toBeUndefined();
  });

  it('refuses a missing file with BLOB_UNKNOWN, and a read-only store with DENIED', async () => {
    const { dir, store, file, digest } = await setup();
    expect(await codeOf(store.adopt(join(dir, 'absent'), { digest }))).toBe('BLOB_UNKNOWN');
    const readOnly = createFileBlobStore({ root: store.root, layout: 'stowage', readOnly: true });
    expect(await codeOf(readOnly.adopt(file, { digest }))).toBe('DENIED');
    expect(await store.stat(digest)).toBeUndefined();
  });

  it('renames the file into place where the filesystem has no hard links', async () => {
    const { store, file, bytes, digest } = await setup();
    linkFault.code = 'EPERM';
    expect(await store.adopt(file, { digest })).toMatchObject({ created: true });
    await expect(stat(file)).rejects.toMatchObject({ code: 'ENOENT' });
    expect((await readFile(store.path(digest))).equals(bytes)).toBe(true);
  });

  it('passes on a link failure that is not "no hard links here"', async () => {
    const { store, file, digest } = await setup();
    linkFault.code = 'EIO';
    await expect(store.adopt(file, { digest })).rejects.toMatchObject({ code: 'EIO' });
    expect(await store.stat(digest)).toBeUndefined();
  });

  it(`publishes each adoption on ${BLOB_WRITE_CHANNEL}`, async () => {
    const messages: BlobWriteMessage[] = [];
    const listener = (message: unknown) => messages.push(message as BlobWriteMessage);
    subscribe(BLOB_WRITE_CHANNEL, listener);
    try {
      const { store, file, digest } = await setup('distribution', 42);
      await store.adopt(file, { digest });
      await store.adopt(file, { digest });
      await codeOf(store.adopt(file, { digest: digestOf('other'), size: 1 }));
      expect(messages).toEqual([
        { store: store.root, digest, size: 42, created: true },
        { store: store.root, digest, size: 42, created: false },
      ]);
    } finally {
      unsubscribe(BLOB_WRITE_CHANNEL, listener);
    }
  });
});
