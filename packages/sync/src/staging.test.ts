import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createMemoryRegistry } from '@stowage/testing';
import { afterEach, describe, expect, it } from 'vitest';
import { openJournal, readJournal, recoverStaging } from './staging.js';

const dirs: string[] = [];
afterEach(async () => {
  for (const dir of dirs.splice(0)) await rm(dir, { recursive: true, force: true });
});

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'stowage-sync-journal-'));
  dirs.push(dir);
  return dir;
}

describe('readJournal', () => {
  it('keeps sessions opened and never closed, and repositories where an opening never got its id', () => {
    const text = ['? a', '+ a s1', '? a', '+ a s2', '- a s1', '? b', '? c', '+ c s3', '- c s3', '+ d'].join(
      '\n',
    );
    expect(readJournal(text)).toEqual({ open: [{ repository: 'a', id: 's2' }], interrupted: ['b'] });
  });

  it('ignores a torn last line', () => {
    expect(readJournal('? a\n+ a s1\n- a')).toEqual({
      open: [{ repository: 'a', id: 's1' }],
      interrupted: [],
    });
  });
});

describe('the staging journal', () => {
  it('is removed on close once every session it named was closed', async () => {
    const dir = await tempDir();
    const journal = await openJournal(dir);
    journal.opening('app');
    journal.opened('app', 'x');
    expect(await readFile(journal.path, 'utf8')).toBe('? app\n+ app x\n');
    journal.closed('app', 'x');
    await journal.close();
    expect(await readdir(dir)).toEqual([]);
  });

  it('stays for the next run when a session is still open, and is not recovered while its process lives', async () => {
    const dir = await tempDir();
    const registry = createMemoryRegistry();
    const { id } = await registry.startUpload('app');
    const journal = await openJournal(dir);
    journal.opening('app');
    journal.opened('app', id);
    // Ours: alive, so another run leaves it alone.
    expect(await recoverStaging(dir, registry)).toEqual({ cancelled: 0, journals: 0, interrupted: [] });
    expect((await registry.getUpload('app', id)).id).toBe(id);
    await journal.close();
    expect(await readdir(dir)).toHaveLength(1);
  });

  it('recovery of a dead run cancels its open sessions and names the repositories it was opening in', async () => {
    const dir = await tempDir();
    const registry = createMemoryRegistry();
    const open = await registry.startUpload('app');
    const { writeFile } = await import('node:fs/promises');
    await writeFile(join(dir, 'journal-2147483646-abc.log'), `? app\n+ app ${open.id}\n? web\n`);
    expect(await recoverStaging(dir, registry)).toEqual({ cancelled: 1, journals: 1, interrupted: ['web'] });
    await expect(registry.getUpload('app', open.id)).rejects.toMatchObject({ code: 'BLOB_UPLOAD_UNKNOWN' });
    expect(await readdir(dir)).toEqual([]);
  });
});
