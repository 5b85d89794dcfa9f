import { mkdtemp, readdir, rm, unlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, expect, it } from 'vitest';
import { createImageStore } from './image-store.js';

const dirs: string[] = [];
afterEach(async () => {
  for (const dir of dirs.splice(0)) await rm(dir, { recursive: true, force: true });
});

it('cancelling a session whose removal a crash cut short removes what is left of it', async () => {
  const root = await mkdtemp(join(tmpdir(), 'stowage-upload-leftover-'));
  dirs.push(root);
  const store = await createImageStore({ root });
  try {
    const { id } = await store.startUpload('app');
    // What a kill in the middle of removing the session leaves: the directory without its state.
    await unlink(join(root, '.stowage', 'uploads', id, 'state.json'));
    await expect(store.cancelUpload('app', id)).rejects.toMatchObject({ code: 'BLOB_UPLOAD_UNKNOWN' });
    expect(await readdir(join(root, '.stowage', 'uploads'))).toEqual([]);
  } finally {
    await store.close();
  }
});
