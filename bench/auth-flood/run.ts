// bench/auth-flood: a flood of bad Basic logins (wrk, 1 thread, 20 connections) against
// stowage-server (from source, in its own process) and against Debian's docker-registry
// (distribution 2.8), both with htpasswd auth (bcrypt cost 5, the `htpasswd -B` default),
// in one run. During each flood, every ~200 ms:
//   - a health probe on a new connection: stowage's /healthz; docker-registry has no health
//     endpoint on its main port (only `/debug/health` on the separate debug listener), so
//     its probe is an anonymous GET /v2/ (a 401 with no bcrypt);
//   - an anonymous GET /v2/ on both, the same request on both sides;
//   - a GET /v2/ by a user who logged in once before the flood.
// Two floods (a wrk Lua script sets the header and counts statuses): `same` repeats one bad
// credential (`mallory:x`, the issue's `-H 'Authorization: Basic bWFsbG9yeTp4'`);
// `varied` tries a new wrong password for a real user on every request (a brute force,
// which no sharing of identical verifications helps).
// Goal: probes under 50 ms, the logged-in user's request under 300 ms.
// Usage: pnpm bench auth-flood [seconds=10] [floods=same,varied]
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { request } from 'node:http';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { startDockerRegistry } from '@stowage/testing';
import { report, run, startStowageServer } from '../lib.js';

const seconds = Number(process.argv[2] ?? 10);
const floods = (process.argv[3] ?? 'same,varied').split(',');
if (!(seconds >= 2) || floods.some((f) => f !== 'same' && f !== 'varied')) {
  console.error('usage: pnpm bench auth-flood [seconds>=2] [floods=same,varied]');
  process.exit(2);
}
const repoRoot = join(import.meta.dirname, '..', '..');
const work = await mkdtemp(join(tmpdir(), 'stowage-bench-auth-flood-'));
const USER = 'user';
const PASSWORD = 'pass';
const basic = (user: string, password: string) =>
  `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;

interface Target {
  readonly name: string;
  readonly port: number;
  /** The health probe's path and what it answers. */
  readonly probe: { readonly path: string; readonly status: number };
  stop(): Promise<void>;
}

/** One request on a fresh connection; resolves with its status and milliseconds taken. */
function get(port: number, path: string, authorization?: string): Promise<{ status: number; ms: number }> {
  return new Promise((resolve, reject) => {
    const start = performance.now();
    const req = request(
      {
        host: '127.0.0.1',
        port,
        path,
        agent: false,
        headers: authorization ? { authorization } : {},
        timeout: 60_000,
      },
      (res) => {
        res.resume();
        res.on('end', () => resolve({ status: res.statusCode ?? 0, ms: performance.now() - start }));
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error(`GET ${path} timed out`)));
    req.on('error', reject);
    req.end();
  });
}

async function startOurs(): Promise<Target> {
  const htpasswd = join(work, 'htpasswd');
  await writeFile(htpasswd, await run('htpasswd', ['-Bbn', USER, PASSWORD]));
  const server = await startStowageServer({
    args: ['--root', join(work, 'ours'), '--htpasswd', htpasswd],
    probe: { path: '/healthz', status: 200 },
  });
  return {
    name: 'stowage-server',
    port: server.port,
    probe: { path: '/healthz', status: 200 },
    stop: server.stop,
  };
}

async function startPeer(): Promise<Target> {
  const registry = await startDockerRegistry({ htpasswd: [{ username: USER, password: PASSWORD }] });
  return {
    name: 'docker-registry',
    port: registry.port,
    probe: { path: '/v2/', status: 401 },
    stop: () => registry.stop(),
  };
}

/**
 * The wrk script of a flood: `same` sends one bad credential, `varied` a different wrong
 * password for the real user on every request; both count the statuses they get.
 */
async function floodScript(kind: string): Promise<string> {
  const headers =
    kind === 'same'
      ? [`"${basic('mallory', 'x')}"`]
      : Array.from({ length: 5000 }, (_, i) => `"${basic(USER, `guess-${i}`)}"`);
  const path = join(work, `${kind}.lua`);
  await writeFile(
    path,
    `local headers = { ${headers.join(', ')} }
local i = 0
statuses = {}
request = function()
  i = i % #headers + 1
  wrk.headers["Authorization"] = headers[i]
  return wrk.format(nil)
end
response = function(status)
  statuses[status] = (statuses[status] or 0) + 1
end
local threads = {}
setup = function(thread) table.insert(threads, thread) end
done = function()
  for _, thread in ipairs(threads) do
    for status, count in pairs(thread:get("statuses")) do
      io.write(string.format("status %d: %d\\n", status, count))
    end
  end
end
`,
  );
  return path;
}

interface Samples {
  probe: number[];
  anonymous: number[];
  loggedIn: number[];
  failures: string[];
}

async function flood(target: Target, kind: string): Promise<{ samples: Samples; rps: number; wrk: string }> {
  const url = `http://127.0.0.1:${target.port}/v2/`;
  const login = basic(USER, PASSWORD);
  const before = await get(target.port, '/v2/', login);
  if (before.status !== 200)
    throw new Error(`${target.name}: the login before the flood got ${before.status}`);
  const wrk = run('wrk', ['-t1', '-c20', `-d${seconds}s`, '-s', await floodScript(kind), url]);
  const samples: Samples = { probe: [], anonymous: [], loggedIn: [], failures: [] };
  const sample = async (into: number[], path: string, status: number, authorization?: string) => {
    try {
      const answer = await get(target.port, path, authorization);
      if (answer.status === status) into.push(answer.ms);
      else samples.failures.push(`${path} ${authorization ? 'logged in' : 'anonymous'}: ${answer.status}`);
    } catch (error) {
      samples.failures.push(`${path}: ${(error as Error).message}`);
    }
  };
  // sample from 0.5 s after the flood starts to 0.5 s before it ends, each kind every ~200 ms
  await new Promise((resolve) => setTimeout(resolve, 500));
  const end = performance.now() + seconds * 1000 - 1000;
  while (performance.now() < end) {
    const tick = new Promise((resolve) => setTimeout(resolve, 200));
    await Promise.all([
      sample(samples.probe, target.probe.path, target.probe.status),
      sample(samples.anonymous, '/v2/', 401),
      sample(samples.loggedIn, '/v2/', 200, login),
    ]);
    await tick;
  }
  const out = await wrk;
  const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1] ?? Number.NaN);
  return { samples, rps, wrk: out };
}

const median = (values: readonly number[]) => {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1
    ? (sorted[mid] as number)
    : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
};
const max = (values: readonly number[]) => (values.length === 0 ? Number.NaN : Math.max(...values));

const targets: Target[] = [];
try {
  targets.push(await startOurs(), await startPeer());
  const [ours, peer] = targets as [Target, Target];
  console.log(
    `health probe: ${ours.name} GET ${ours.probe.path}; ${peer.name} GET ${peer.probe.path} anonymous (it has no health endpoint on its main port)`,
  );
  // The machine's limit, measured in this run: how many bad passwords one core can check.
  const bcrypt = createRequire(join(repoRoot, 'packages/registry-server/package.json'))('bcryptjs') as {
    hashSync(password: string, rounds: number): string;
    compareSync(password: string, hash: string): boolean;
  };
  const hash = bcrypt.hashSync(PASSWORD, 5);
  const started = performance.now();
  let compares = 0;
  while (performance.now() - started < 2000) {
    bcrypt.compareSync(`wrong${compares}`, hash);
    compares++;
  }
  console.log(
    `machine limit: one core checks ${((compares * 1000) / (performance.now() - started)).toFixed(0)} bcrypt (cost 5) passwords/s with bcryptjs; a server cannot check bad logins faster than that per core it gives them`,
  );
  for (const kind of floods) {
    const results = [];
    for (const target of targets) {
      const result = await flood(target, kind);
      results.push(result);
      const lines = result.wrk
        .split('\n')
        .filter((l) => /Latency|Requests\/sec|Socket errors|^status /.test(l));
      console.log(
        `[${kind}] ${target.name}: wrk ${lines.map((l) => l.trim().replace(/\s+/g, ' ')).join('; ')}`,
      );
      const s = result.samples;
      console.log(
        `[${kind}] ${target.name}: ${s.probe.length} probes, ${s.anonymous.length} anonymous, ${s.loggedIn.length} logged-in samples${s.failures.length ? `; unexpected: ${[...new Set(s.failures)].join(', ')}` : ''}`,
      );
    }
    const [a, b] = results as [(typeof results)[0], (typeof results)[0]];
    const line = (name: string, pick: (s: Samples) => number[]) => {
      report({
        name: `[${kind}] ${name} median (ms)`,
        ours: median(pick(a.samples)),
        peer: median(pick(b.samples)),
        unit: 'ms',
      });
      report({
        name: `[${kind}] ${name} max (ms)`,
        ours: max(pick(a.samples)),
        peer: max(pick(b.samples)),
        unit: 'ms',
      });
    };
    line('health probe during the flood', (s) => s.probe);
    line('anonymous GET /v2/ during the flood', (s) => s.anonymous);
    line('logged-in user GET /v2/ during the flood', (s) => s.loggedIn);
    report({
      name: `[${kind}] bad logins answered (req/s)`,
      ours: a.rps,
      peer: b.rps,
      unit: 'req/s',
      lowerIsBetter: false,
    });
  }
} finally {
  for (const target of targets) await target.stop().catch(() => undefined);
  await rm(work, { recursive: true, force: true });
}
