import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { mkdir } from './quick-fs.js';

describe('quick-fs mkdir', () => {
  const made: string[] = [];
  afterAll(async () => {
    for (const dir of made) await rm(dir, { recursive: true, force: true });
  });

  it('makes the missing parents and answers the first one it made, as fs.mkdir does', async () => {
    const root = await mkdtemp(join(tmpdir(), 'stowage-quick-fs-'));
    made.push(root);
    expect(await mkdir(join(root, 'a', 'b', 'c'), { recursive: true })).toBe(join(root, 'a'));
    expect(existsSync(join(root, 'a', 'b', 'c'))).toBe(true);
    expect(await mkdir(join(root, 'a', 'b'), { recursive: true })).toBeUndefined();
    await writeFile(join(root, 'file'), 'x');
    await expect(mkdir(join(root, 'file', 'x'), { recursive: true })).rejects.toMatchObject({
      code: 'ENOTDIR',
    });
  });

  // Node's own recursive mkdir never returns here: /proc refuses new entries with ENOENT
  it.runIf(existsSync('/proc/self'))(
    'refuses a place that refuses new entries instead of looping',
    async () => {
      await expect(mkdir('/proc/stowage-nowhere/blobs', { recursive: true })).rejects.toMatchObject({
        code: 'ENOENT',
      });
    },
  );
});
