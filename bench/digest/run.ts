// bench/digest: verify a 1 GiB file with our streaming digester
// (createReadStream → VerifyingStream) against `sha256sum` on the same file.
// Usage: pnpm bench digest [sizeMiB=1024] [runs=3]
import { randomFillSync } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { type Digest, VerifyingStream } from '@stowage/oci';
import { best, report, run } from '../lib.js';

const sizeMiB = Number(process.argv[2] ?? 1024);
const runs = Number(process.argv[3] ?? 3);
const dir = await mkdtemp(join(tmpdir(), 'stowage-bench-digest-'));
const file = join(dir, 'blob');

try {
  const chunk = Buffer.alloc(1 << 20);
  const out = createWriteStream(file);
  for (let i = 0; i < sizeMiB; i++) {
    randomFillSync(chunk);
    if (!out.write(chunk)) await new Promise<void>((resolve) => out.once('drain', () => resolve()));
  }
  await new Promise<void>((resolve, reject) =>
    out.end((error?: Error | null) => (error ? reject(error) : resolve())),
  );

  let expected = '' as Digest;
  const peer = await best(runs, async () => {
    const output = await run('sha256sum', [file]);
    expected = `sha256:${output.split(/\s/)[0]}` as Digest;
  });
  const size = sizeMiB * (1 << 20);
  const ours = await best(runs, () =>
    pipeline(
      createReadStream(file, { highWaterMark: 1 << 20 }),
      new VerifyingStream({ digest: expected, size }),
      new Writable({ write: (_chunk, _enc, done) => done() }),
    ),
  );
  report({ name: `digest verify ${sizeMiB} MiB`, ours, peer, unit: 's' });
  console.log(`peak rss: ${(process.resourceUsage().maxRSS / 1024).toFixed(1)} MiB`);
} finally {
  await rm(dir, { recursive: true, force: true });
}
