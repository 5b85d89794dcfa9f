// Crash safety: SIGKILL a writer at random points while it writes blobs and
// manifests; on reopen fsck finds nothing partial or corrupt, and every write the
// writer saw acknowledged is intact.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { digestOf } from '@stowage/oci';
import { collect, spawnSource } from '@stowage/testing';
import { expect, it } from 'vitest';
import { createImageStore } from './image-store.js';

function writeUntilKilled(root: string, run: string, killAfterMs: number): Promise<string[]> {
  return new Promise((resolve, reject) => {
    const child = spawnSource(join(import.meta.dirname, '../test/crash-writer.ts'), [root, run], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout?.on('data', (chunk: Buffer) => {
      out += chunk.toString();
    });
    child.stderr?.on('data', (chunk: Buffer) => {
      err += chunk.toString();
    });
    // Start the clock once the writer is running (its first line), then kill it mid-write.
    let timer: NodeJS.Timeout | undefined;
    child.stdout?.once('data', () => {
      timer = setTimeout(() => child.kill('SIGKILL'), killAfterMs);
    });
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      if (signal === 'SIGKILL') resolve(out.split('\n'));
      else reject(new Error(`writer exited with ${code}: ${err}`));
    });
  });
}

it('a writer killed at random points leaves a consistent store with every acknowledged write', async () => {
  const root = await mkdtemp(join(tmpdir(), 'stowage-crash-'));
  try {
    const acknowledged: string[] = [];
    for (let run = 0; acknowledged.length < 200 * 2; run++) {
      const lines = await writeUntilKilled(root, `r${run}`, 20 + Math.floor(Math.random() * 200));
      // The last line may have been cut by the kill: only whole lines are acknowledgements.
      acknowledged.push(
        ...lines.filter((line) => /^(blob sha256:[0-9a-f]{64}|tag \S+ sha256:[0-9a-f]{64})$/.test(line)),
      );
      if (run > 200) throw new Error('the writer makes no progress');
    }
    const store = await createImageStore({ root });
    const report = await store.fsck();
    expect(report.problems).toEqual([]);
    for (const line of acknowledged) {
      const [kind, a, b] = line.split(' ') as [string, string, string?];
      if (kind === 'blob') {
        const content = await store.getBlob('crash/app', a as never);
        expect(digestOf(await collect(content.stream))).toBe(a);
      } else {
        expect((await store.headManifest('crash/app', a))?.digest).toBe(b);
      }
    }
    await store.close();
  } finally {
    await rm(root, { recursive: true, force: true });
  }
}, 180_000);
