import { mkdir, mkdtemp, readdir, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { digestOf } from '@stowage/oci';
import { afterEach, expect, it } from 'vitest';
import { createImageStore } from './image-store.js';

const dirs: string[] = [];
afterEach(async () => {
  for (const dir of dirs.splice(0)) await rm(dir, { recursive: true, force: true });
});

async function root(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'stowage-upload-files-'));
  dirs.push(dir);
  return dir;
}

it('a session is one file, gone once finished or cancelled', async () => {
  const dir = await root();
  const uploads = join(dir, '.stowage', 'uploads');
  const store = await createImageStore({ root: dir });
  try {
    const kept = await store.startUpload('app');
    const dropped = await store.startUpload('app');
    const names = await readdir(uploads);
    expect(names).toHaveLength(2);
    for (const name of names) {
      expect(name).toMatch(/^[0-9a-f]{40}-[0-9a-f]{16}$/);
      expect((await stat(join(uploads, name))).isFile()).toBe(true);
    }
    // The start time is in the id: the status gives it back, to the millisecond.
    expect(Math.abs(kept.startedAt - Date.now())).toBeLessThan(60_000);
    expect((await store.getUpload('app', kept.id)).startedAt).toBe(kept.startedAt);
    const bytes = new TextEncoder().encode('one file per session');
    await store.appendUpload('app', kept.id, { body: bytes, offset: 0 });
    await store.finishUpload('app', kept.id, { digest: digestOf(bytes) });
    await store.cancelUpload('app', dropped.id);
    expect(await readdir(uploads)).toEqual([]);
  } finally {
    await store.close();
  }
});

it('a session is bound to its repository: another repository does not know its id', async () => {
  const dir = await root();
  const store = await createImageStore({ root: dir });
  try {
    const { id } = await store.startUpload('app');
    await expect(store.getUpload('other', id)).rejects.toMatchObject({ code: 'BLOB_UPLOAD_UNKNOWN' });
    await expect(store.cancelUpload('other', id)).rejects.toMatchObject({ code: 'BLOB_UPLOAD_UNKNOWN' });
    await expect(store.getUpload('app', `${id.slice(0, 39)}x`)).rejects.toMatchObject({
      code: 'BLOB_UPLOAD_UNKNOWN',
    });
    expect((await store.getUpload('app', id)).offset).toBe(0);
  } finally {
    await store.close();
  }
});

it('the purge removes old sessions and the session directories of the earlier layout, and keeps young ones', async () => {
  const dir = await root();
  const uploads = join(dir, '.stowage', 'uploads');
  const store = await createImageStore({ root: dir, uploadTtlMs: 60_000 });
  try {
    const young = await store.startUpload('app');
    // A session started two minutes ago: its age is in its id.
    const oldId = `${(Date.now() - 120_000).toString(16).padStart(12, '0')}${'0'.repeat(28)}`;
    const [youngName] = await readdir(uploads);
    await writeFile(join(uploads, `${oldId}${(youngName as string).slice(40)}`), 'stale');
    // What an earlier version left: a directory per session, aged by its mtime.
    const legacy = join(uploads, 'ab'.repeat(16));
    await mkdir(legacy);
    await writeFile(join(legacy, 'data'), 'x');
    await writeFile(join(legacy, 'state.json'), '{"repository":"app","startedAt":0}');
    const past = new Date(Date.now() - 120_000);
    await utimes(legacy, past, past);
    const fresh = join(uploads, 'cd'.repeat(16));
    await mkdir(fresh);
    await expect(store.getUpload('app', oldId)).rejects.toMatchObject({ code: 'BLOB_UPLOAD_UNKNOWN' });
    expect(await store.purgeUploads()).toBe(1);
    expect((await readdir(uploads)).sort()).toEqual([youngName, 'cd'.repeat(16)].sort());
    expect((await store.getUpload('app', young.id)).offset).toBe(0);
    await rm(fresh, { recursive: true });
  } finally {
    await store.close();
  }
});
