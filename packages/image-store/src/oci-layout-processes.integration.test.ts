// Two processes tagging into one OCI layout at the same time: each index.json
// edit is made under a lock file both honour, so no process's tag is lost to
// the other's replacement of the file.
import type { ChildProcess } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSource } from '@stowage/testing';
import { afterAll, expect, it } from 'vitest';

const dirs: string[] = [];
afterAll(async () => {
  for (const dir of dirs) await rm(dir, { recursive: true, force: true });
});

function tagger(
  dir: string,
  prefix: string,
  count: number,
): { child: ChildProcess; ready: Promise<void>; done: Promise<void> } {
  const child = spawnSource(
    join(import.meta.dirname, '../test/layout-tagger.ts'),
    [dir, prefix, String(count)],
    {
      stdio: ['pipe', 'pipe', 'inherit'],
    },
  );
  let out = '';
  const seen = (word: string) =>
    new Promise<void>((resolve, reject) => {
      const onData = (chunk: Buffer) => {
        out += chunk.toString();
        if (out.includes(`${word}\n`)) resolve();
      };
      child.stdout?.on('data', onData);
      child.once('exit', (code) =>
        out.includes(`${word}\n`) ? resolve() : reject(new Error(`tagger exited with ${code}`)),
      );
    });
  return { child, ready: seen('ready'), done: seen('done') };
}

it('two processes tagging one layout at once lose no tag', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'stowage-layout-processes-'));
  dirs.push(dir);
  const count = 60;
  const taggers = [tagger(dir, 'a', count), tagger(dir, 'b', count)];
  await Promise.all(taggers.map((t) => t.ready));
  for (const t of taggers) t.child.stdin?.end('go\n');
  await Promise.all(taggers.map((t) => t.done));
  const index = JSON.parse(await readFile(join(dir, 'index.json'), 'utf8')) as {
    manifests: { annotations: Record<string, string> }[];
  };
  const tags = index.manifests.map((m) => m.annotations['org.opencontainers.image.ref.name']).sort();
  const expected = ['a', 'b'].flatMap((p) => [
    `${p}-first`,
    ...Array.from({ length: count }, (_, i) => `${p}-${i}`),
  ]);
  expect(tags).toEqual(expected.sort());
  // the lock is there only while held: the layout is left as skopeo would write it
  expect((await readdir(dir)).sort()).toEqual(['blobs', 'index.json', 'oci-layout']);
}, 120_000);
