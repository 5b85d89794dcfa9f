// A read-only store serves a tree on a read-only filesystem (a bind mount
// remounted read-only): reads of blobs, manifests, tags and records all work,
// and writes are refused with a typed error.
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { isStowageError } from '@stowage/oci';
import { pushImage, randomImage, requirePeers } from '@stowage/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createImageStore } from './image-store.js';

const run = promisify(execFile);

describe('a read-only store on a read-only filesystem', () => {
  if (
    !requirePeers({
      name: 'root (for a read-only bind mount)',
      available: process.getuid?.() === 0,
      reason: 'mounting needs root',
    })
  )
    return;
  let work: string;
  let mounted: string;
  const image = randomImage({ layers: 2 });

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'stowage-ro-'));
    const source = join(work, 'source');
    mounted = join(work, 'mounted');
    await mkdir(mounted);
    const store = await createImageStore({ root: source });
    await pushImage(store, 'apps/web', image, 'v1');
    await store.images.create({ id: 'web', digest: image.manifest.digest, names: ['apps/web:v1'] });
    await store.close();
    await run('mount', ['--bind', source, mounted]);
    await run('mount', ['-o', 'remount,bind,ro', mounted]);
  });

  afterAll(async () => {
    await run('umount', [mounted]).catch(() => undefined);
    await rm(work, { recursive: true, force: true });
  });

  it('reads everything and refuses writes', async () => {
    const store = await createImageStore({ root: mounted, readOnly: true });
    expect((await store.listTags('apps/web')).items).toEqual(['v1']);
    expect((await store.getManifest('apps/web', 'v1')).digest).toBe(image.manifest.digest);
    for (const blob of image.blobs) {
      expect((await store.headBlob('apps/web', blob.descriptor.digest))?.size).toBe(blob.bytes.byteLength);
    }
    expect((await store.images.get('apps/web:v1')).id).toBe('web');
    expect((await store.images.list()).map((r) => r.id)).toEqual(['web']);
    let caught: unknown;
    try {
      await store.putBlob('apps/web', new Uint8Array([1]), {
        digest: 'sha256:4bf5122f344554c53bde2ebb8cd2b7e3d1600ad631c385a5d7cce23c7785459a',
      });
    } catch (error) {
      caught = error;
    }
    expect(isStowageError(caught, 'DENIED')).toBe(true);
    expect((await store.fsck()).problems).toEqual([]);
    await store.close();
  });
});
