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

export interface SourceServer {
  readonly port: number;
  readonly pid: number | undefined;
  /** SIGTERM, and wait for the exit (nothing when it already exited). */
  stop(): Promise<void>;
}

/**
 * Starts `stowage-server` from source (tsx, the source condition) in its own
 * process on a free port, with `args` (`--root`, `--database-url`, …) and
 * `--log-level warn`, and waits until `probe` answers `status` (60 s at most).
 */
export async function startStowageServer(options: {
  readonly args: readonly string[];
  readonly probe?: {
    readonly path: string;
    readonly status: number;
    readonly headers?: Record<string, string>;
  };
}): Promise<SourceServer> {
  const { freePort } = await import('@stowage/testing');
  const { request } = await import('node:http');
  const repoRoot = join(import.meta.dirname, '..');
  const port = await freePort();
  const child = spawn(
    process.execPath,
    [
      '--conditions=@stowage/source',
      '--import',
      'tsx',
      join(repoRoot, 'apps/server/src/cli.ts'),
      ...options.args,
      '--addr',
      `127.0.0.1:${port}`,
      '--log-level',
      'warn',
    ],
    { cwd: repoRoot, stdio: ['ignore', 'ignore', 'inherit'] },
  );
  let exited = false;
  const gone = new Promise<void>((resolve) =>
    child.once('exit', () => {
      exited = true;
      resolve();
    }),
  );
  const probe = options.probe ?? { path: '/readyz', status: 200 };
  const status = () =>
    new Promise<number>((resolve) => {
      const req = request(
        { host: '127.0.0.1', port, path: probe.path, headers: probe.headers ?? {} },
        (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        },
      );
      req.on('error', () => resolve(0));
      req.end();
    });
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (exited)
      throw new Error(`stowage-server ${options.args.join(' ')} exited before answering ${probe.path}`);
    if (Date.now() > deadline) throw new Error(`stowage-server did not answer ${probe.path} within 60 s`);
    if ((await status()) === probe.status) break;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return {
    port,
    pid: child.pid,
    stop: async () => {
      if (exited) return;
      child.kill('SIGTERM');
      await gone;
    },
  };
}
