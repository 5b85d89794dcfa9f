// bench/image-store:
//  (a) put then get a large blob through the image store vs `cp` + `sha256sum` of the same file;
//  (b) 10,000 tag writes into one repository (cost per write early vs late), and listing
//      those tags vs docker-registry listing the same tags over HTTP.
//  (c) 100,000 image records: the cost of one record write at 1,000 records and at
//      100,000 (each write holds the cross-process lock, writes the change token,
//      the journal and one record file), and of a lookup by name at 100,000.
// Usage: pnpm bench image-store [blobMiB=1024] [tags=10000] [records=100000]
import { randomFillSync } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createImageStore } from '@stowage/image-store';
import { type Digest, digestStream } from '@stowage/oci';
import { createRegistryClient } from '@stowage/registry-client';
import { pushImage, randomImage, startDockerRegistry } from '@stowage/testing';
import { best, report, run } from '../lib.js';

const blobMiB = Number(process.argv[2] ?? 1024);
const tagCount = Number(process.argv[3] ?? 10_000);
const recordCount = Number(process.argv[4] ?? 100_000);
const work = await mkdtemp(join(tmpdir(), 'stowage-bench-image-store-'));

async function inParallel(count: number, limit: number, fn: (i: number) => Promise<unknown>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: limit }, async () => {
      while (next < count) await fn(next++);
    }),
  );
}

try {
  // (a) a large blob
  const file = join(work, 'blob');
  const out = createWriteStream(file);
  const chunk = Buffer.alloc(1 << 20);
  for (let i = 0; i < blobMiB; i++) {
    randomFillSync(chunk);
    if (!out.write(chunk)) await new Promise<void>((resolve) => out.once('drain', () => resolve()));
  }
  await new Promise<void>((resolve, reject) =>
    out.end((error?: Error | null) => (error ? reject(error) : resolve())),
  );
  const { digest } = await digestStream(createReadStream(file, { highWaterMark: 1 << 20 }));
  const copy = join(work, 'copy');
  const peer = await best(2, async () => {
    await rm(copy, { force: true });
    await run('cp', [file, copy]);
    await run('sha256sum', [copy]);
  });
  const store = await createImageStore({ root: join(work, 'store') });
  const ours = await best(2, async () => {
    await rm(join(work, 'store', '.stowage', 'blobs'), { recursive: true, force: true });
    await rm(join(work, 'store', 'bench'), { recursive: true, force: true });
    await store.putBlob('bench/blob', createReadStream(file, { highWaterMark: 1 << 20 }), {
      digest: digest as Digest,
    });
    const content = await store.getBlob('bench/blob', digest as Digest);
    await pipeline(content.stream, new Writable({ write: (_c, _e, done) => done() }));
  });
  report({ name: `put+get ${blobMiB} MiB blob vs cp+sha256sum`, ours, peer, unit: 's' });

  // (b) many tags
  const image = randomImage();
  await pushImage(store, 'bench/tags', image);
  const perWrite: number[] = [];
  for (let i = 0; i < tagCount; i++) {
    const started = performance.now();
    await store.putManifest('bench/tags', `t${i}`, {
      bytes: image.manifest.bytes,
      mediaType: image.manifest.mediaType,
    });
    perWrite.push(performance.now() - started);
  }
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
  const early = mean(perWrite.slice(0, 1000));
  const late = mean(perWrite.slice(-1000));
  console.log(
    `tag write cost: first 1,000 ${early.toFixed(3)} ms, last 1,000 (at ${tagCount}) ${late.toFixed(3)} ms, ratio ${(late / early).toFixed(3)}`,
  );
  await store.flush();

  const registry = await startDockerRegistry({ dataDir: join(work, 'docker-registry') });
  const client = createRegistryClient({ registry: registry.host });
  try {
    await pushImage(client, 'bench/tags', image);
    await inParallel(tagCount, 16, (i) =>
      client.putManifest('bench/tags', `t${i}`, {
        bytes: image.manifest.bytes,
        mediaType: image.manifest.mediaType,
      }),
    );
    const peerList = await best(3, async () => {
      const response = await fetch(`${registry.url}/v2/bench/tags/tags/list`);
      const body = (await response.json()) as { tags: string[] };
      if (body.tags.length !== tagCount + 0)
        throw new Error(`docker-registry listed ${body.tags.length} tags`);
    });
    const oursList = await best(3, async () => {
      const page = await store.listTags('bench/tags');
      if (page.items.length !== tagCount) throw new Error(`the store listed ${page.items.length} tags`);
    });
    report({
      name: `list ${tagCount} tags (store API vs docker-registry over HTTP)`,
      ours: oursList,
      peer: peerList,
      unit: 's',
    });
  } finally {
    await client.close();
    await registry.stop();
  }

  // (c) many records
  const sample = 1000;
  const recordWrite: number[] = [];
  for (let i = 0; i < recordCount; i++) {
    const started = performance.now();
    await store.images.create({ names: [`bench/records:r${i}`] });
    recordWrite.push(performance.now() - started);
    if (i % 10_000 === 9_999) console.log(`  ${i + 1} records`);
  }
  const atFirst = mean(recordWrite.slice(0, sample));
  const atLast = mean(recordWrite.slice(-sample));
  console.log(
    `record write cost: first ${sample} (up to ${sample} records) ${atFirst.toFixed(3)} ms, last ${sample} (at ${recordCount}) ${atLast.toFixed(3)} ms, ratio ${(atLast / atFirst).toFixed(3)} (goal: at most 2)`,
  );
  const lookups = 1000;
  const started = performance.now();
  for (let i = 0; i < lookups; i++) await store.images.get(`bench/records:r${(i * 7919) % recordCount}`);
  console.log(
    `record lookup by name at ${recordCount} records: ${((performance.now() - started) / lookups).toFixed(3)} ms`,
  );
  await store.close();
} finally {
  await rm(work, { recursive: true, force: true });
}
