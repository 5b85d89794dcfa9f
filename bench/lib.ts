// The bench convention: every benchmark runs our code and a real peer side by
// side in one run and prints one line per measurement:
//   <name>: ours <X>, peer <Y>, ratio <Z>
// where ratio = ours / peer for times (below 1 means we are faster) and is
// labelled when it is a throughput ratio instead.
import { spawn } from 'node:child_process';
import { createHash, randomFillSync } from 'node:crypto';
import { open, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';

const MiB = 1 << 20;

export interface Measurement {
  readonly name: string;
  readonly ours: number;
  readonly peer: number;
  /** What the numbers are: `s` (seconds, lower is better) or a throughput unit (higher is better). */
  readonly unit: string;
  readonly lowerIsBetter?: boolean;
}

export function report(m: Measurement): void {
  const ratio = m.ours / m.peer;
  const fmt = (v: number) => `${v.toFixed(3)} ${m.unit}`;
  const note = (m.lowerIsBetter ?? true) ? 'ours/peer, lower is better' : 'ours/peer, higher is better';
  console.log(`${m.name}: ours ${fmt(m.ours)}, peer ${fmt(m.peer)}, ratio ${ratio.toFixed(3)} (${note})`);
}

/** Seconds taken by an async function. */
export async function time(fn: () => Promise<unknown>): Promise<number> {
  const start = performance.now();
  await fn();
  return (performance.now() - start) / 1000;
}

/** Best (lowest) of several timed runs, to keep page-cache and scheduling noise out. */
export async function best(runs: number, fn: () => Promise<unknown>): Promise<number> {
  let min = Number.POSITIVE_INFINITY;
  for (let i = 0; i < runs; i++) min = Math.min(min, await time(fn));
  return min;
}

/** Runs a command to completion; resolves with its stdout, rejects on a non-zero exit. */
export function run(command: string, args: readonly string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (chunk: Buffer) => {
      out += chunk.toString();
    });
    child.once('error', reject);
    child.once('exit', (code) =>
      code === 0 ? resolve(out) : reject(new Error(`${command} exited with ${code}`)),
    );
  });
}

// The machine's limits, measured in the same run as a bench and printed beside it.

/** sha256 over `mib` MiB in 1 MiB updates, MB/s (10^6 bytes). */
export function sha256Rate(mib: number): number {
  const chunk = randomFillSync(Buffer.alloc(MiB));
  const hash = createHash('sha256');
  const started = performance.now();
  for (let i = 0; i < mib; i++) hash.update(chunk);
  hash.digest();
  return (mib * MiB) / 1e6 / ((performance.now() - started) / 1000);
}

/** Writes `mib` MiB in 1 MiB writes to a new file under `dir`, then fsyncs it: MB/s. */
export async function durableWriteRate(dir: string, mib: number): Promise<number> {
  const chunk = randomFillSync(Buffer.alloc(MiB));
  const path = join(dir, 'fsync-probe');
  const seconds = await time(async () => {
    const file = await open(path, 'w');
    try {
      for (let i = 0; i < mib; i++) await file.write(chunk, 0, chunk.byteLength);
      await file.sync();
    } finally {
      await file.close();
    }
  });
  await rm(path, { force: true });
  return (mib * MiB) / 1e6 / seconds;
}
