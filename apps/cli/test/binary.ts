// The built `stowage` binary, for the tests that run it as a user does: built
// (with the workspace packages it imports) when a dist is missing or older than
// its sources, then spawned with node, its output gathered.
import { execFile, spawn } from 'node:child_process';
import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';

const repoRoot = join(import.meta.dirname, '../../..');
export const bin = join(import.meta.dirname, '../dist/cli.js');

/** The CLI and every workspace package it depends on, each with its built entry point. */
async function builtFrom(): Promise<[string, string][]> {
  const pkg = JSON.parse(await readFile(join(import.meta.dirname, '../package.json'), 'utf8')) as {
    dependencies?: Record<string, string>;
  };
  const names = Object.keys(pkg.dependencies ?? {}).filter((n) => n.startsWith('@stowage/'));
  return [
    ['apps/cli', 'dist/cli.js'],
    ...names.map((n) => [`packages/${n.slice('@stowage/'.length)}`, 'dist/index.js'] as [string, string]),
  ];
}

async function newestSource(dir: string): Promise<number> {
  let newest = 0;
  for (const entry of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (!entry.isFile() || entry.name.endsWith('.test.ts')) continue;
    newest = Math.max(newest, (await stat(join(entry.parentPath, entry.name))).mtimeMs);
  }
  return newest;
}

/** Builds what is out of date (a beforeAll of every binary test; allow it minutes). */
export async function ensureBinary(): Promise<void> {
  const packages = await builtFrom();
  const stale: string[] = [];
  for (const [pkg, output] of packages) {
    const built = await stat(join(repoRoot, pkg, output)).then(
      (s) => s.mtimeMs,
      () => -1,
    );
    if (built < (await newestSource(join(repoRoot, pkg, 'src')))) stale.push(pkg);
  }
  if (stale.length === 0) return;
  // turbo builds the CLI and everything it depends on, in order (and skips what is current)
  try {
    await promisify(execFile)(
      'pnpm',
      ['turbo', 'run', 'build', '--filter=@stowage/cli...', '--output-logs=errors-only'],
      {
        cwd: repoRoot,
        maxBuffer: 1 << 24,
      },
    );
  } catch (error) {
    const { stdout, stderr } = error as { stdout?: string; stderr?: string };
    throw new Error(
      `building the stowage binary failed (${stale.join(', ')} out of date):\n${stdout}\n${stderr}`,
    );
  }
}

export interface Run {
  readonly code: number | null;
  readonly out: string;
  /** stdout as bytes (a manifest or a blob printed byte for byte). */
  readonly bytes: Buffer;
  readonly err: string;
  /** stderr's lines, without the empty one after the last newline */
  readonly lines: string[];
}

export interface RunOptions {
  readonly cwd: string;
  readonly env?: Readonly<Record<string, string>>;
  readonly onStderr?: (text: string, child: ReturnType<typeof spawn>) => void;
  /** What stdin holds (else it is closed at once). */
  readonly input?: Uint8Array | string;
}

/** Runs `stowage <args>` (no database URL from this environment unless `env` gives one). */
export function stowage(args: readonly string[], options: RunOptions): Promise<Run> {
  const env = { ...process.env };
  delete env.STOWAGE_DATABASE_URL;
  delete env.DATABASE_URL;
  const child = spawn(process.execPath, [bin, ...args], {
    cwd: options.cwd,
    env: { ...env, ...options.env },
    stdio: [options.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
  });
  if (options.input !== undefined) child.stdin?.end(options.input);
  const { stdout, stderr } = child;
  if (!stdout || !stderr) throw new Error('spawned without pipes');
  const out: Buffer[] = [];
  let err = '';
  stdout.on('data', (chunk: Buffer) => out.push(chunk));
  stderr.on('data', (chunk: Buffer) => {
    err += chunk.toString();
    options.onStderr?.(err, child);
  });
  return new Promise((resolve) =>
    child.once('close', (code) => {
      const bytes = Buffer.concat(out);
      resolve({ code, out: bytes.toString(), bytes, err, lines: err.replace(/\n$/, '').split('\n') });
    }),
  );
}
