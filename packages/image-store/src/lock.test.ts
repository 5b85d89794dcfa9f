import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { StoreLocks } from './lock.js';

const dirs: string[] = [];
async function freshDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'stowage-locks-'));
  dirs.push(dir);
  return dir;
}
afterAll(async () => {
  for (const dir of dirs) await rm(dir, { recursive: true, force: true });
});

/** A pid that no process has: the highest pid Linux hands out is below 2^22. */
const DEAD_PID = 2 ** 22 + 17;

describe('store locks', () => {
  it('a held lock always names its owner, and release leaves nothing behind', async () => {
    const dir = await freshDir();
    const locks = new StoreLocks(dir, 60_000);
    const lock = await locks.acquire('a');
    const entries = await readdir(dir);
    expect(entries).toHaveLength(1);
    const owner = JSON.parse(await readFile(join(dir, entries[0] as string), 'utf8'));
    expect(owner.pid).toBe(process.pid);
    await lock.release();
    expect(await readdir(dir)).toEqual([]);
  });

  it('takes over at once a lock whose owner died, an empty one at once, an unreadable one when stale', async () => {
    const dir = await freshDir();
    const first = new StoreLocks(dir, 60_000);
    const held = await first.acquire('a');
    const [name] = await readdir(dir);
    const path = join(dir, name as string);
    // forge the owner of the held lock into a dead process on this host
    await writeFile(path, JSON.stringify({ pid: DEAD_PID, host: hostname(), token: 'x' }));
    const second = new StoreLocks(dir, 60_000);
    const taken = await second.acquire('a');
    await expect(held.release()).rejects.toMatchObject({ code: 'DENIED' });
    await taken.release();

    // an empty lock directory (an older version killed between mkdir and its owner file) is free
    await mkdir(path);
    const quick = await new StoreLocks(dir, 60_000).acquire('a');
    await quick.release();

    // the lock directory of an earlier version, owned by a dead process, is taken at once too
    await mkdir(path);
    await writeFile(
      join(path, 'owner.json'),
      JSON.stringify({ pid: DEAD_PID, host: hostname(), token: 'y' }),
    );
    const legacy = await new StoreLocks(dir, 60_000).acquire('a');
    await legacy.release();

    // a lock whose owner cannot be read (another tool's) is taken only once it is stale
    await writeFile(path, 'not json');
    const patient = new StoreLocks(dir, 200);
    const started = Date.now();
    const lock = await patient.acquire('a');
    expect(Date.now() - started).toBeGreaterThanOrEqual(150);
    await lock.release();
    expect(await readdir(dir)).toEqual([]);
  });

  it('an aborted wait removes its draft', async () => {
    const dir = await freshDir();
    const locks = new StoreLocks(dir, 60_000);
    const held = await locks.acquire('a');
    const other = new StoreLocks(dir, 60_000);
    const controller = new AbortController();
    const waiting = other.acquire('a', { signal: controller.signal });
    await new Promise((resolve) => setTimeout(resolve, 50));
    controller.abort(new Error('gave up'));
    await expect(waiting).rejects.toThrow('gave up');
    expect(await readdir(dir)).toHaveLength(1);
    await held.release();
    expect(await readdir(dir)).toEqual([]);
  });
});
