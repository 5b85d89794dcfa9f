import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import bcrypt from 'bcryptjs';
import { stringify } from 'yaml';
import { findExecutable } from './peers.js';

export interface HtpasswdUser {
  readonly username: string;
  readonly password: string;
}

export interface StartDockerRegistryOptions {
  /** Users for htpasswd basic auth (bcrypt hashes, as `htpasswd -B` writes). Without it the registry is anonymous. */
  readonly htpasswd?: readonly HtpasswdUser[];
  /** Any other distribution config (for example `auth.token`), merged over the defaults. */
  readonly config?: Readonly<Record<string, unknown>>;
  /** Use this data dir instead of a fresh temporary one (it is then not removed on stop). */
  readonly dataDir?: string;
  /** How long to wait for `/v2/` to answer. Default 20 s. */
  readonly readyTimeoutMs?: number;
}

export interface DockerRegistry {
  /** `http://127.0.0.1:<port>` */
  readonly url: string;
  /** `127.0.0.1:<port>`, the registry part of image references. */
  readonly host: string;
  readonly port: number;
  /** The filesystem storage root (distribution's v2 layout lives under `docker/registry/v2`). */
  readonly dataDir: string;
  readonly configPath: string;
  /** What the registry printed so far (for failure messages). */
  output(): string;
  stop(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

/**
 * A TCP port on 127.0.0.1 that nothing listens on at the moment of asking: for
 * a peer that must be told its port before it starts (docker-registry, a server
 * in a child process). Another process may take it in between; rare enough for tests.
 */
export async function freePort(): Promise<number> {
  return await new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() =>
        typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port')),
      );
    });
  });
}

function merge(
  base: Record<string, unknown>,
  extra: Readonly<Record<string, unknown>>,
): Record<string, unknown> {
  const out: Record<string, unknown> = { ...base };
  for (const [key, value] of Object.entries(extra)) {
    const current = out[key];
    out[key] =
      typeof value === 'object' &&
      value !== null &&
      !Array.isArray(value) &&
      typeof current === 'object' &&
      current
        ? merge(current as Record<string, unknown>, value as Record<string, unknown>)
        : value;
  }
  return out;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Starts Debian's `docker-registry` (CNCF distribution 2.8) on a free loopback
 * port with its own temporary data dir, waits until `/v2/` answers, and
 * returns its address and a stop function that also removes the temp dir.
 */
export async function startDockerRegistry(options: StartDockerRegistryOptions = {}): Promise<DockerRegistry> {
  const binary = findExecutable('docker-registry');
  if (!binary) throw new Error('docker-registry is not installed (apt-get install docker-registry)');
  const workDir = await mkdtemp(join(tmpdir(), 'stowage-docker-registry-'));
  const dataDir = options.dataDir ?? join(workDir, 'data');
  let lastError: unknown;
  for (let attempt = 0; attempt < 5; attempt++) {
    const port = await freePort();
    const config: Record<string, unknown> = {
      version: 0.1,
      log: { level: 'warn', accesslog: { disabled: true } },
      storage: {
        filesystem: { rootdirectory: dataDir },
        delete: { enabled: true },
        maintenance: { uploadpurging: { enabled: false } },
      },
      http: { addr: `127.0.0.1:${port}`, secret: 'stowage-test-secret' },
    };
    if (options.htpasswd) {
      const path = join(workDir, 'htpasswd');
      const lines = options.htpasswd.map((u) => `${u.username}:${bcrypt.hashSync(u.password, 5)}`);
      await writeFile(path, `${lines.join('\n')}\n`);
      config.auth = { htpasswd: { realm: 'stowage-test', path } };
    }
    const configPath = join(workDir, 'config.yml');
    await writeFile(configPath, stringify(options.config ? merge(config, options.config) : config));
    try {
      const child = spawn(binary, ['serve', configPath], { stdio: ['ignore', 'pipe', 'pipe'] });
      const started = await waitReady(child, port, options.readyTimeoutMs ?? 20_000);
      const stop = async () => {
        await stopChild(child);
        await rm(workDir, { recursive: true, force: true });
      };
      return {
        url: `http://127.0.0.1:${port}`,
        host: `127.0.0.1:${port}`,
        port,
        dataDir,
        configPath,
        output: started.output,
        stop,
        [Symbol.asyncDispose]: stop,
      };
    } catch (error) {
      lastError = error;
    }
  }
  await rm(workDir, { recursive: true, force: true });
  throw new Error(`docker-registry did not start: ${String((lastError as Error)?.message ?? lastError)}`);
}

async function waitReady(
  child: ChildProcess,
  port: number,
  timeoutMs: number,
): Promise<{ output: () => string }> {
  let log = '';
  const append = (chunk: Buffer) => {
    log = (log + chunk.toString()).slice(-64 * 1024);
  };
  child.stdout?.on('data', append);
  child.stderr?.on('data', append);
  let exited = false;
  child.once('exit', () => {
    exited = true;
  });
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (exited) throw new Error(`docker-registry exited early:\n${log}`);
    try {
      const response = await fetch(`http://127.0.0.1:${port}/v2/`, { signal: AbortSignal.timeout(1000) });
      await response.arrayBuffer();
      if (response.status === 200 || response.status === 401) return { output: () => log };
    } catch {
      // not listening yet
    }
    await sleep(50);
  }
  await stopChild(child);
  throw new Error(`docker-registry did not answer on port ${port} within ${timeoutMs} ms:\n${log}`);
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
  await exited;
  clearTimeout(timer);
}
