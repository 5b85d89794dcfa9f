// bench/database: stowage-server in database mode (PostgreSQL on this machine)
// side by side with stowage-server over its file store and Debian's
// docker-registry, each in its own process, in one run; the load comes from
// separate processes (wrk, curl), as a user's clients would send it:
//   tag PUTs per second (wrk, 32 connections), a full tag listing of a
//   repository of `tags` tags (curl) and a walk of it in pages of 1,000, a walk
//   of a catalog of `repos` repositories in pages of 1,000, manifest GETs per
//   second (wrk). Then one database-mode replica against two on the same
//   database and root, with the CPU each part used (PostgreSQL, the replicas,
//   wrk), so the bound is visible: on 2 cores, the figure is what counts.
// Usage: pnpm bench database [tags=100000] [repos=10000] [seconds=10]
import { spawn } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { createPostgresDatabase, migrate } from '@stowage/metadata-db';
import { createTestDatabase, randomImage, startDockerRegistry } from '@stowage/testing';
import { Pool } from 'undici';
import {
  fillRepositories,
  inParallel,
  type ServerTarget,
  seedImage,
  startServerTarget,
  tagImage,
} from '../fill.js';
import { report, run } from '../lib.js';

const tagCount = Number(process.argv[2] ?? 100_000);
const repoCount = Number(process.argv[3] ?? 10_000);
const seconds = Number(process.argv[4] ?? 10);
const work = await mkdtemp(join(tmpdir(), 'stowage-bench-database-'));
const image = randomImage({ layers: 1, layerSize: 4096 });
const REPO = 'bench/tags';

type Target = ServerTarget;

/** The image's blobs into `bench/tags`, and its manifest under `f0`. */
const seed = (target: Target) => seedImage(target, REPO, image, 'f0');

/**
 * Writes a wrk script: `init` and `request` are its own, and every script counts
 * the answers whose status is not `expected`, printing `bad <n>` at the end.
 */
async function wrkScript(
  name: string,
  parts: { expected: number; init: string; request?: string },
): Promise<string> {
  const path = join(work, `${name}.lua`);
  await writeFile(
    path,
    `local threads = {}
function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end
function init(args)
  bad = 0
${parts.init}
end
${parts.request ?? ''}
function response(status, headers, body)
  if status ~= ${parts.expected} then bad = bad + 1 end
end
function done(summary, latency, requests)
  local total = 0
  for _, thread in ipairs(threads) do total = total + thread:get("bad") end
  io.write("bad " .. total .. "\\n")
end
`,
  );
  return path;
}

/** PUTs the manifest under a new tag per request (`<prefix><thread>-<n>`). */
function putScript(prefix: string): Promise<string> {
  const body = Buffer.from(image.manifest.bytes).toString('hex');
  return wrkScript(`put-${prefix}`, {
    expected: 201,
    init: `  n = 0
  wrk.method = "PUT"
  wrk.body = (${JSON.stringify(body)}):gsub('..', function (cc) return string.char(tonumber(cc, 16)) end)
  wrk.headers["Content-Type"] = ${JSON.stringify(image.manifest.mediaType)}`,
    request: `function request()
  n = n + 1
  return wrk.format(nil, "/v2/${REPO}/manifests/${prefix}" .. id .. "-" .. n)
end`,
  });
}

/** GETs the manifest the URL names. */
function getScript(): Promise<string> {
  return wrkScript('get', {
    expected: 200,
    init: `  wrk.headers["Accept"] = ${JSON.stringify(image.manifest.mediaType)}`,
  });
}

/** Runs wrk; answers requests per second, refusing a run in which any answer had the wrong status. */
function wrk(
  target: Target,
  script: string,
  path: string,
  connections = 32,
): { pid?: number; done: Promise<number> } {
  const child = spawn(
    'wrk',
    ['-t2', `-c${connections}`, `-d${seconds}s`, '-s', script, `http://127.0.0.1:${target.port}${path}`],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  let out = '';
  child.stdout.on('data', (chunk: Buffer) => {
    out += chunk.toString();
  });
  const done = new Promise<number>((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', (code) => {
      const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1]);
      const bad = Number(/^bad (\d+)$/m.exec(out)?.[1]);
      if (code !== 0 || !Number.isFinite(rps)) reject(new Error(`wrk on ${target.name} failed:\n${out}`));
      else if (bad > 0)
        reject(new Error(`wrk on ${target.name}: ${bad} answers with a wrong status:\n${out}`));
      else resolve(rps);
    });
  });
  return { ...(child.pid ? { pid: child.pid } : {}), done };
}

/** Seconds a shell walk of a paged listing takes: curl per page, following `Link` (best of 3). */
async function walk(target: Target, first: string): Promise<{ seconds: number; pages: number }> {
  const script = `url=${JSON.stringify(first)}; pages=0
while [ -n "$url" ]; do
  link=$(curl -sf -D - -o /dev/null "http://127.0.0.1:${target.port}$url" | tr -d '\\r' | sed -n -E 's/^[Ll]ink: *<([^>]*)>.*/\\1/p')
  pages=$((pages+1)); url="$link"
done
echo $pages`;
  let best = Number.POSITIVE_INFINITY;
  let pages = 0;
  for (let i = 0; i < 3; i++) {
    const started = performance.now();
    pages = Number((await run('bash', ['-c', script])).trim());
    best = Math.min(best, (performance.now() - started) / 1000);
  }
  return { seconds: best, pages };
}

/** Seconds curl takes for one full listing (best of 3), and how many bytes came back. */
async function fetchOnce(target: Target, path: string): Promise<number> {
  let best = Number.POSITIVE_INFINITY;
  for (let i = 0; i < 3; i++) {
    const out = await run('curl', [
      '-sf',
      '-o',
      '/dev/null',
      '-w',
      '%{time_total}',
      `http://127.0.0.1:${target.port}${path}`,
    ]);
    best = Math.min(best, Number(out));
  }
  return best;
}

/** CPU seconds (user + system) a process has used, from /proc. */
function cpuSeconds(pid: number): number {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? [];
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return 0;
  }
}

/** Every process named `postgres` (the server and its backends). */
function postgresPids(): number[] {
  return readdirSync('/proc')
    .filter((name) => /^\d+$/.test(name))
    .map(Number)
    .filter((pid) => {
      try {
        return readFileSync(`/proc/${pid}/comm`, 'utf8').trim() === 'postgres';
      } catch {
        return false;
      }
    });
}

/** Runs the load on `targets` at once and reports the summed rate with the CPU share of each part. */
async function replicaLoad(
  label: string,
  targets: readonly Target[],
  script: (i: number) => Promise<string>,
  path: string,
): Promise<number> {
  const pg = postgresPids();
  const before = {
    pg: pg.reduce((s, pid) => s + cpuSeconds(pid), 0),
    replicas: targets.reduce((s, t) => s + (t.pid ? cpuSeconds(t.pid) : 0), 0),
  };
  const started = performance.now();
  const runs = await Promise.all(
    targets.map(async (target, i) => wrk(target, await script(i), path, 32 / targets.length)),
  );
  let wrkCpu = 0;
  const wrkPids = runs.flatMap((r) => (r.pid ? [r.pid] : []));
  const sampler = setInterval(() => {
    wrkCpu = wrkPids.reduce((s, pid) => s + cpuSeconds(pid), 0) || wrkCpu;
  }, 200);
  const rates = await Promise.all(runs.map((r) => r.done));
  clearInterval(sampler);
  const wall = (performance.now() - started) / 1000;
  const pgNow = postgresPids().reduce((s, pid) => s + cpuSeconds(pid), 0);
  const replicas = targets.reduce((s, t) => s + (t.pid ? cpuSeconds(t.pid) : 0), 0) - before.replicas;
  const share = (cpu: number) => `${((100 * cpu) / (wall * 2)).toFixed(0)}%`;
  const total = rates.reduce((a, b) => a + b, 0);
  console.log(
    `${label}, ${targets.length} replica${targets.length > 1 ? 's' : ''}: ${total.toFixed(0)} req/s; ` +
      `CPU of 2 cores: postgres ${share(pgNow - before.pg)}, replicas ${share(replicas)}, wrk ${share(wrkCpu)}`,
  );
  return total;
}

const test = await createTestDatabase('stowage_bench_database');
const db = createPostgresDatabase({ connectionString: test.url });
await migrate(db);
await db.close();
const targets: Target[] = [];
try {
  const databaseRoot = join(work, 'database');
  const database = await startServerTarget('database mode', [
    '--root',
    databaseRoot,
    '--database-url',
    test.url,
  ]);
  targets.push(database);
  const file = await startServerTarget('file store', ['--root', join(work, 'file')]);
  targets.push(file);
  const registry = await startDockerRegistry({ dataDir: join(work, 'docker-registry') });
  const peer: Target = {
    name: 'docker-registry',
    port: registry.port,
    pool: new Pool(registry.url, { connections: 32 }),
    stop: async () => registry.stop(),
  };
  targets.push(peer);
  const compared = [database, file, peer];
  console.log(
    `bench/database: ${tagCount} tags, ${repoCount} repositories, ${seconds} s per wrk run, on ${db.kind} (PostgreSQL on 127.0.0.1)`,
  );

  const putRate = new Map<string, number>();
  const getRate = new Map<string, number>();
  const full = new Map<string, number>();
  const paged = new Map<string, { seconds: number; pages: number }>();
  const catalog = new Map<string, { seconds: number; pages: number }>();
  for (const target of compared) {
    await seed(target);
    putRate.set(target.name, await wrk(target, await putScript('w'), '/').done);
    // the rest of the tags, not timed
    const have = Number(
      JSON.parse(await run('curl', ['-sf', `http://127.0.0.1:${target.port}/v2/${REPO}/tags/list`])).tags
        .length,
    );
    await inParallel(Math.max(0, tagCount - have), 32, (i) => tagImage(target, REPO, image, `f${i + 1}`));
    full.set(target.name, await fetchOnce(target, `/v2/${REPO}/tags/list`));
    paged.set(target.name, await walk(target, `/v2/${REPO}/tags/list?n=1000`));
    // repositories: the image mounted into each and tagged
    await fillRepositories(target, { prefix: 'bench/r', count: repoCount, from: REPO, image });
    catalog.set(target.name, await walk(target, '/v2/_catalog?n=1000'));
    getRate.set(target.name, await wrk(target, await getScript(), `/v2/${REPO}/manifests/f0`).done);
    console.log(
      `${target.name}: ${putRate.get(target.name)?.toFixed(0)} tag PUTs/s, ${getRate.get(target.name)?.toFixed(0)} manifest GETs/s, ` +
        `full listing ${full.get(target.name)?.toFixed(3)} s, ${paged.get(target.name)?.pages} tag pages ${paged.get(target.name)?.seconds.toFixed(3)} s, ` +
        `${catalog.get(target.name)?.pages} catalog pages ${catalog.get(target.name)?.seconds.toFixed(3)} s`,
    );
  }
  for (const peerTarget of [file, peer]) {
    const versus = `database mode vs ${peerTarget.name}`;
    const [d, p] = [database.name, peerTarget.name];
    report({
      name: `${versus}: tag PUTs`,
      ours: putRate.get(d) as number,
      peer: putRate.get(p) as number,
      unit: 'req/s',
      lowerIsBetter: false,
    });
    report({
      name: `${versus}: full listing of ${tagCount} tags`,
      ours: full.get(d) as number,
      peer: full.get(p) as number,
      unit: 's',
    });
    report({
      name: `${versus}: walk of ${tagCount} tags in pages of 1000`,
      ours: paged.get(d)?.seconds as number,
      peer: paged.get(p)?.seconds as number,
      unit: 's',
    });
    report({
      name: `${versus}: walk of a ${repoCount}-repository catalog in pages of 1000`,
      ours: catalog.get(d)?.seconds as number,
      peer: catalog.get(p)?.seconds as number,
      unit: 's',
    });
    report({
      name: `${versus}: manifest GETs`,
      ours: getRate.get(d) as number,
      peer: getRate.get(p) as number,
      unit: 'req/s',
      lowerIsBetter: false,
    });
  }

  // one replica against two, on the same database and root
  const second = await startServerTarget('database mode, replica 2', [
    '--root',
    databaseRoot,
    '--database-url',
    test.url,
  ]);
  targets.push(second);
  const getScriptPath = await getScript();
  const oneGet = await replicaLoad(
    'manifest GETs',
    [database],
    async () => getScriptPath,
    `/v2/${REPO}/manifests/f0`,
  );
  const twoGet = await replicaLoad(
    'manifest GETs',
    [database, second],
    async () => getScriptPath,
    `/v2/${REPO}/manifests/f0`,
  );
  const onePut = await replicaLoad('tag PUTs', [database], () => putScript('a'), '/');
  const twoPut = await replicaLoad('tag PUTs', [database, second], (i) => putScript(`b${i}`), '/');
  report({
    name: 'two replicas vs one: manifest GETs',
    ours: twoGet,
    peer: oneGet,
    unit: 'req/s',
    lowerIsBetter: false,
  });
  report({
    name: 'two replicas vs one: tag PUTs',
    ours: twoPut,
    peer: onePut,
    unit: 'req/s',
    lowerIsBetter: false,
  });
} finally {
  for (const target of targets.reverse()) await target.stop().catch(() => undefined);
  await test.drop().catch(() => undefined);
  await rm(work, { recursive: true, force: true });
}
