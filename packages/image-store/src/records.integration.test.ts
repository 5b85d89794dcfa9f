// Several processes on one root: two workers create, rename and delete 1,000
// records and tags each at the same time; workers killed at random points leave
// every acknowledged write in place and do not block the next process.

import { Buffer } from 'node:buffer';
import type { ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pushImage, randomImage, spawnSource } from '@stowage/testing';
import { afterAll, describe, expect, it } from 'vitest';
import {
  CONTESTED,
  type Expected,
  keeperId,
  opsFor,
  replay,
  SHARED_REPOSITORY,
} from '../test/records-ops.js';
import { createImageStore, type ImageStore } from './image-store.js';

const roots: string[] = [];
afterAll(async () => {
  for (const root of roots) await rm(root, { recursive: true, force: true });
});

async function prepare(): Promise<{ root: string; manifestFile: string }> {
  const root = await mkdtemp(join(tmpdir(), 'stowage-records-mp-'));
  roots.push(root);
  const store = await createImageStore({ root });
  const image = randomImage({ layers: 1 });
  await pushImage(store, SHARED_REPOSITORY, image);
  await store.close();
  const manifestFile = join(root, 'manifest.json');
  await writeFile(
    manifestFile,
    JSON.stringify({
      bytes: Buffer.from(image.manifest.bytes).toString('base64'),
      mediaType: image.manifest.mediaType,
    }),
  );
  return { root, manifestFile };
}

interface Run {
  readonly child: ChildProcess;
  readonly started: Promise<void>;
  /** Resolves with the acknowledged count, whether it finished, and how many of the other's records it saw. */
  readonly finished: Promise<{ acknowledged: number; done: boolean; seen: number }>;
}

function worker(
  root: string,
  manifestFile: string,
  label: string,
  other: string,
  count: number,
  staleMs = 60_000,
): Run {
  const child = spawnSource(
    join(import.meta.dirname, '../test/records-worker.ts'),
    [root, label, other, String(count), manifestFile],
    { env: { ...process.env, LOCK_STALE_MS: String(staleMs) }, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let out = '';
  let err = '';
  let markStarted: () => void = () => undefined;
  const started = new Promise<void>((resolve) => {
    markStarted = resolve;
  });
  child.stdout?.on('data', (chunk: Buffer) => {
    out += chunk.toString();
    if (out.includes('start\n')) markStarted();
  });
  child.stderr?.on('data', (chunk: Buffer) => {
    err += chunk.toString();
  });
  const finished = new Promise<{ acknowledged: number; done: boolean; seen: number }>((resolve, reject) => {
    // 'close', not 'exit': only then has all the output been read (at 'exit' the last
    // acks may still be in the pipe, and an op done but not counted looks like a bug).
    child.once('close', (code, signal) => {
      // Only whole lines count: the kill may cut the last one.
      const lines = out.split('\n').slice(0, -1);
      const acks = lines.filter((l) => /^ack \d+$/.test(l)).map((l) => Number(l.slice(4)));
      const done = lines.find((l) => l.startsWith('done '));
      if (code !== 0 && signal !== 'SIGKILL')
        reject(new Error(`worker ${label} exited with ${code}: ${err}`));
      else
        resolve({
          acknowledged: Math.max(0, ...acks),
          done: done !== undefined,
          seen: Number(done?.slice(5) ?? 0),
        });
    });
  });
  return { child, started, finished };
}

async function check(store: ImageStore, label: string, expected: Expected): Promise<void> {
  const records = (await store.images.list()).filter((r) => r.id.startsWith(`${label}-`));
  const byId = new Map(records.map((r) => [r.id, r]));
  for (const [id, names] of expected.records) {
    if (expected.uncertain.has(id)) continue;
    const record = byId.get(id);
    expect(record, `acknowledged record ${id}`).toBeDefined();
    const own = record?.names.filter((n) => n !== CONTESTED);
    expect(own, `names of ${id}`).toEqual(names);
  }
  for (const record of records) {
    if (!expected.uncertain.has(record.id))
      expect(expected.records.has(record.id), `record ${record.id}`).toBe(true);
  }
  const tags = new Set(
    (await store.listTags(SHARED_REPOSITORY)).items.filter((t) => t.startsWith(`${label}-`)),
  );
  for (const tag of expected.tags)
    if (!expected.uncertain.has(tag)) expect(tags.has(tag), `tag ${tag}`).toBe(true);
  for (const tag of tags)
    if (!expected.uncertain.has(tag)) expect(expected.tags.has(tag), `tag ${tag}`).toBe(true);
}

async function checkNoDuplicates(store: ImageStore): Promise<void> {
  const names = (await store.images.list()).flatMap((r) => r.names);
  expect(names.length).toBe(new Set(names).size);
}

describe('image records across processes', () => {
  it('two processes writing 1,000 records and tags each lose nothing and see each other', async () => {
    const { root, manifestFile } = await prepare();
    const count = 1000;
    const a = worker(root, manifestFile, 'a', 'b', count);
    const b = worker(root, manifestFile, 'b', 'a', count);
    const [ra, rb] = await Promise.all([a.finished, b.finished]);
    expect(ra.done && rb.done).toBe(true);
    // both saw records of the other while running
    expect(ra.seen).toBeGreaterThan(0);
    expect(rb.seen).toBeGreaterThan(0);
    const store = await createImageStore({ root });
    for (const [label, result] of [
      ['a', ra],
      ['b', rb],
    ] as const) {
      const ops = opsFor(label, count);
      expect(result.acknowledged).toBe(ops.length);
      await check(store, label, replay(ops, ops.length));
    }
    await checkNoDuplicates(store);
    const holders = (await store.images.list()).filter((r) => r.names.includes(CONTESTED)).map((r) => r.id);
    expect(holders).toHaveLength(1);
    expect([keeperId('a'), keeperId('b')]).toContain(holders[0]);
    expect((await store.fsck()).problems).toEqual([]);
    await store.close();
  }, 240_000);

  it('a worker killed at random points loses no acknowledged write and blocks nobody', async () => {
    const { root, manifestFile } = await prepare();
    const count = 400;
    for (let round = 0; round < 4; round++) {
      const label = `k${round}`;
      const run = worker(root, manifestFile, label, 'none', count);
      await run.started;
      await new Promise((resolve) => setTimeout(resolve, 100 + Math.floor(Math.random() * 900)));
      run.child.kill('SIGKILL');
      const result = await run.finished;
      expect(result.done).toBe(false);
      // The next process gets the lock the killed one may have held without waiting
      // out the 60 s stale timeout (the test's own timeout is shorter than that).
      const store = await createImageStore({ root, staleLockMs: 60_000 });
      await check(store, label, replay(opsFor(label, count), result.acknowledged));
      await checkNoDuplicates(store);
      await store.images.create({ id: `after-${round}` });
      await store.close();
    }
  }, 50_000);
});
