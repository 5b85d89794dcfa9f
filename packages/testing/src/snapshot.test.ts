import { mkdir, mkdtemp, rm, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { snapshotTree } from './snapshot.js';

const dirs: string[] = [];
afterAll(async () => {
  for (const dir of dirs) await rm(dir, { recursive: true, force: true });
});

describe('snapshotTree', () => {
  it('changes with every file written, created or removed, and leaves out what it is told to', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'stowage-snapshot-'));
    dirs.push(dir);
    await mkdir(join(dir, 'a/b'), { recursive: true });
    await writeFile(join(dir, 'a/b/f'), 'one');
    const before = await snapshotTree(dir);
    expect(before).toHaveLength(4);
    expect(await snapshotTree(dir)).toEqual(before);
    await writeFile(join(dir, 'a/b/f'), 'two!');
    expect(await snapshotTree(dir)).not.toEqual(before);
    const withFile = await snapshotTree(dir);
    await writeFile(join(dir, 'a/g'), '');
    expect(await snapshotTree(dir)).not.toEqual(withFile);
    // a directory's mtime alone counts only when asked
    const quiet = await snapshotTree(dir, { directoryTimes: false });
    const loud = await snapshotTree(dir);
    await utimes(join(dir, 'a'), new Date(0), new Date(0));
    expect(await snapshotTree(dir, { directoryTimes: false })).toEqual(quiet);
    expect(await snapshotTree(dir)).not.toEqual(loud);
    // a skipped subtree may change at will
    const skipping = await snapshotTree(dir, { skip: join(dir, 'a/b') });
    await writeFile(join(dir, 'a/b/h'), 'x');
    expect(await snapshotTree(dir, { skip: join(dir, 'a/b') })).toEqual(skipping);
    expect(await snapshotTree(join(dir, 'missing'))).toEqual([]);
  });
});
