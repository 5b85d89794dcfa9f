import type { ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSource } from '@stowage/testing';
import { afterAll, describe, expect, it } from 'vitest';
import { createImageStore } from './image-store.js';

const roots: string[] = [];
afterAll(async () => {
  for (const root of roots) await rm(root, { recursive: true, force: true });
});

/** Starts a process holding the lock; resolves once it holds it. */
function holder(
  root: string,
  name: string,
  releaseAfterMs?: number,
  staleMs = 60_000,
): Promise<ChildProcess> {
  return new Promise((resolve, reject) => {
    const args = [root, name];
    if (releaseAfterMs !== undefined) args.push(String(releaseAfterMs));
    const child = spawnSource(join(import.meta.dirname, '../test/lock-holder.ts'), args, {
      env: { ...process.env, LOCK_STALE_MS: String(staleMs) },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    child.stdout?.once('data', () => resolve(child));
    child.once('exit', (code) => reject(new Error(`lock holder exited early with ${code}`)));
  });
}

describe('store locks across processes', () => {
  it('exclude another process until it releases', async () => {
    const root = await mkdtemp(join(tmpdir(), 'stowage-lock-'));
    roots.push(root);
    const child = await holder(root, 'gc', 400);
    const exited = new Promise((resolve) => child.once('exit', resolve));
    const store = await createImageStore({ root });
    const started = Date.now();
    const lock = await store.lock('gc');
    expect(Date.now() - started).toBeGreaterThanOrEqual(300);
    await lock.release();
    await exited;
    await store.close();
  });

  it('a holder killed with SIGKILL does not block others beyond the stale-lock timeout', async () => {
    const root = await mkdtemp(join(tmpdir(), 'stowage-lock-'));
    roots.push(root);
    const child = await holder(root, 'writer');
    const store = await createImageStore({ root, staleLockMs: 2_000 });
    const waiting = store.lock('writer');
    let held = false;
    void waiting.then(() => {
      held = true;
    });
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(held).toBe(false);
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGKILL');
    await exited;
    const killedAt = Date.now();
    const lock = await waiting;
    expect(Date.now() - killedAt).toBeLessThan(2_000);
    await lock.release();
    await store.close();
  });

  it('never takes a live lock sooner than its holder’s own stale timeout', async () => {
    const root = await mkdtemp(join(tmpdir(), 'stowage-lock-'));
    roots.push(root);
    const child = await holder(root, 'patient', 1_500, 1_000);
    const exited = new Promise((resolve) => child.once('exit', resolve));
    const store = await createImageStore({ root, staleLockMs: 50 });
    const started = Date.now();
    const lock = await store.lock('patient');
    expect(Date.now() - started).toBeGreaterThanOrEqual(1_300);
    await lock.release();
    await exited;
    await store.close();
  });

  it('takes over a lock nobody has touched for the stale timeout', async () => {
    const root = await mkdtemp(join(tmpdir(), 'stowage-lock-'));
    roots.push(root);
    // The frozen holder itself declared a 500 ms stale timeout.
    const child = await holder(root, 'frozen', undefined, 500);
    child.kill('SIGSTOP');
    try {
      const store = await createImageStore({ root, staleLockMs: 100 });
      const started = Date.now();
      const lock = await store.lock('frozen');
      expect(Date.now() - started).toBeGreaterThanOrEqual(400);
      await lock.release();
      await store.close();
    } finally {
      child.kill('SIGKILL');
    }
  });
});
