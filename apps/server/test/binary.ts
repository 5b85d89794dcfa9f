// The built `stowage-server` binary (apps/server/dist/cli.js), for the tests
// that run it as a user does: rebuilt (with the workspace packages it imports)
// when it is missing or older than its sources, run to its end, or started as
// a server that is ready once it logs `listening`; whatever is still running
// when a file's tests end is stopped.
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readdir, readFile, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const appDir = join(import.meta.dirname, '..');
const repoRoot = join(appDir, '../..');
export const bin = join(appDir, 'dist/cli.js');
/** The built web UI's page (apps/server/dist/ui/index.html), which the server serves at /ui/. */
export const uiIndex = join(appDir, 'dist/ui/index.html');

/** The modification time of `file`, or -1 when it does not exist. */
async function modified(file: string): Promise<number> {
  return stat(file).then(
    (s) => s.mtimeMs,
    () => -1,
  );
}

/** The newest modification time of the non-test sources (`extensions`) under `dir` (recursively). */
async function newestSource(dir: string, extensions: readonly string[] = ['.ts']): Promise<number> {
  let newest = 0;
  for (const entry of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (!entry.isFile() || entry.name.endsWith('.test.ts')) continue;
    if (!extensions.some((extension) => entry.name.endsWith(extension))) continue;
    newest = Math.max(newest, await modified(join(entry.parentPath, entry.name)));
  }
  return newest;
}

/** The newest modification time of the web UI's sources (apps/server/ui, built by Vite into dist/ui). */
async function newestUiSource(): Promise<number> {
  const ui = join(appDir, 'ui');
  const files = ['index.html', 'vite.config.ts', 'tsconfig.json'].map((name) => modified(join(ui, name)));
  return Math.max(...(await Promise.all(files)), await newestSource(join(ui, 'src'), ['.ts', '.css']));
}

/** The workspace packages (`packages/<name>`) that the package in `dir` depends on, and theirs in turn. */
async function workspaceDependencies(dir: string, found = new Set<string>()): Promise<Set<string>> {
  const manifest = JSON.parse(await readFile(join(dir, 'package.json'), 'utf8')) as {
    dependencies?: Record<string, string>;
  };
  for (const [name, version] of Object.entries(manifest.dependencies ?? {})) {
    if (!version.startsWith('workspace:')) continue;
    const dependency = join(repoRoot, 'packages', name.replace('@stowage/', ''));
    if (found.has(dependency) || !existsSync(join(dependency, 'package.json'))) continue;
    found.add(dependency);
    await workspaceDependencies(dependency, found);
  }
  return found;
}

/**
 * The binary is built by scripts/test.sh; a missing or stale one is rebuilt
 * here (a beforeAll of every file that runs it; allow it minutes). Stale means
 * older than the server's package.json or sources, a built web UI (dist/ui)
 * older than its sources (ui/), or a workspace package it imports (from its
 * dist/) older than that package's sources.
 */
export async function ensureBinary(): Promise<void> {
  const built: { sources: number; dist: string }[] = [
    {
      sources: Math.max(
        await modified(join(appDir, 'package.json')),
        await newestSource(join(appDir, 'src')),
      ),
      dist: bin,
    },
    { sources: await newestUiSource(), dist: uiIndex },
  ];
  for (const dir of await workspaceDependencies(appDir)) {
    built.push({ sources: await newestSource(join(dir, 'src')), dist: join(dir, 'dist', 'index.js') });
  }
  let stale = false;
  for (const { sources, dist } of built) if ((await modified(dist)) < sources) stale = true;
  if (!stale) return;
  // asynchronously: a worker blocked for the whole build misses vitest's RPC deadlines
  const build = await new Promise<{ status: number | null; output: string }>((resolve) => {
    const child = spawn(
      'pnpm',
      ['turbo', 'run', 'build', '--filter', '@stowage/server...', '--output-logs=errors-only'],
      {
        cwd: repoRoot,
        env: { ...process.env, TURBO_TELEMETRY_DISABLED: '1' },
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => {
      output += chunk.toString();
    });
    child.stderr.on('data', (chunk: Buffer) => {
      output += chunk.toString();
    });
    child.once('close', (status) => resolve({ status, output }));
  });
  if (build.status !== 0 || !existsSync(bin) || !existsSync(uiIndex)) {
    throw new Error(`apps/server/dist (cli.js, ui/) could not be built:\n${build.output}`);
  }
}

/** The test runner's environment without STOWAGE_* and REGISTRY_* variables, plus `extra`. */
export function environment(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env = Object.fromEntries(
    Object.entries(process.env).filter(([name]) => !/^(STOWAGE|REGISTRY)_/.test(name)),
  );
  return { ...env, ...extra };
}

export interface RunOptions {
  /** Where it runs (the system's temporary directory unless given). */
  readonly cwd?: string;
  /** Variables on top of `environment()`. */
  readonly env?: Record<string, string>;
}

export interface Run {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs the built binary to its end (for mistakes that stop it before it serves). */
export function run(args: string[], options: RunOptions = {}): Run {
  const result = spawnSync(process.execPath, [bin, ...args], {
    cwd: options.cwd ?? tmpdir(),
    env: environment(options.env),
    encoding: 'utf8',
    timeout: 60_000,
  });
  return { code: result.status, stdout: result.stdout, stderr: result.stderr };
}

export interface Serving {
  /** The URL it serves, from its `listening` line. */
  readonly url: string;
  /** Every JSON line it has logged on stdout so far. */
  readonly logs: Record<string, unknown>[];
  readonly child: ChildProcess;
  /** Resolves with the signal the process ended by, or else its exit code. */
  readonly exited: Promise<NodeJS.Signals | number | null>;
  /** SIGTERM; resolves with the exit code. */
  stop(): Promise<number | null>;
  /** Sends `signal` (SIGKILL unless told) to the process; resolves as `exited` does. */
  kill(signal?: NodeJS.Signals): Promise<NodeJS.Signals | number | null>;
}

/** Every process `serving` started, for `stopServers`. */
const children = new Set<ChildProcess>();

/** Starts a command that serves; resolves once it logs `listening` (or rejects with what it printed). */
export function serving(command: string, args: string[], options: RunOptions = {}): Promise<Serving> {
  const child = spawn(command, args, {
    cwd: options.cwd ?? tmpdir(),
    env: environment(options.env),
    stdio: ['ignore', 'pipe', 'pipe'],
    // its own process group, so that stopServers can end everything it started
    detached: true,
  });
  children.add(child);
  const ended = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  );
  const exited = ended.then(({ code, signal }) => signal ?? code);
  const logs: Record<string, unknown>[] = [];
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  return new Promise((resolve, reject) => {
    let pending = '';
    // read to the end, always: a full pipe would stop the server's logging (and the server)
    child.stdout.on('data', (chunk: Buffer) => {
      pending += chunk.toString();
      const lines = pending.split('\n');
      pending = lines.pop() ?? '';
      for (const line of lines) {
        if (!line.startsWith('{')) continue;
        const entry = JSON.parse(line) as Record<string, unknown>;
        logs.push(entry);
        if (entry.msg === 'listening') {
          resolve({
            url: entry.url as string,
            logs,
            child,
            exited,
            stop: () => {
              child.kill('SIGTERM');
              return ended.then(({ code }) => code);
            },
            kill: (signal = 'SIGKILL') => {
              child.kill(signal);
              return exited;
            },
          });
        }
      }
    });
    void exited.then((code) => reject(new Error(`exited with ${code} before listening:\n${stderr}`)));
  });
}

/**
 * Ends every process `serving` started that is still running (a test that
 * failed may leave a server behind): SIGTERM, then, five seconds on, SIGKILL
 * to its whole process group. An afterAll of every file that starts servers.
 */
export async function stopServers(): Promise<void> {
  await Promise.all(
    [...children].map(async (child) => {
      children.delete(child);
      if (child.exitCode !== null || child.signalCode !== null || !child.pid) return;
      const gone = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGTERM');
      const timer = setTimeout(() => {
        try {
          if (child.pid) process.kill(-child.pid, 'SIGKILL');
        } catch {}
      }, 5_000);
      await gone;
      clearTimeout(timer);
    }),
  );
}
