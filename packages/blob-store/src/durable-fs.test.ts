import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { syncDir } from './durable-fs.js';

const dirs: string[] = [];
afterAll(async () => {
  for (const dir of dirs) await rm(dir, { recursive: true, force: true });
});

describe('syncDir', () => {
  it('shares one fsync among callers that arrive before it starts, and never hands out one already running', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'stowage-syncdir-'));
    dirs.push(dir);
    const first = syncDir(dir);
    const same = syncDir(dir);
    expect(same).toBe(first);
    // once the first has started, a new caller gets the next one, shared with later callers
    await Promise.resolve();
    await Promise.resolve();
    const next = syncDir(dir);
    expect(next).not.toBe(first);
    expect(syncDir(dir)).toBe(next);
    await Promise.all([first, next]);
    // after both, a caller starts afresh
    const fresh = syncDir(dir);
    expect(fresh).not.toBe(next);
    await fresh;
  });

  it('fails every caller sharing an fsync that fails, and recovers after', async () => {
    const missing = join(tmpdir(), `stowage-syncdir-missing-${process.pid}`);
    const a = syncDir(missing);
    const b = syncDir(missing);
    await expect(a).rejects.toMatchObject({ code: 'ENOENT' });
    await expect(b).rejects.toMatchObject({ code: 'ENOENT' });
    const dir = await mkdtemp(join(tmpdir(), 'stowage-syncdir-'));
    dirs.push(dir);
    await expect(syncDir(dir)).resolves.toBeUndefined();
  });
});
