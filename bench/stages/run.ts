// bench/stages: werf's stages repository on a real docker-registry (distribution 2.8):
// 50,000 stage tags, their rejected records and 10,000 record tags (population.ts,
// written on disk and kept under .bench-tmp/stages/ between runs). In one run:
//   1. the bare tag listing: one GET /v2/<repo>/tags/list by curl in its own process,
//      and the same listing through our client (the baseline);
//   2. listStageIDsByDigest for 100 digests in one batch with {cache: true} (the fix of
//      werf #7559): time, tag-list requests (goal 1 per batch), ratio to the bare listing
//      (goal at most 1.2x);
//   3. the same 100 digests without the cache (werf before the fix: one listing per digest);
//   4. the full stage description list: listStageIDs, then getStageDesc for every stage at
//      bounded concurrency, beside curl fetching the same manifests and configs (-Z, same
//      parallelism) from its own process, the registry's own limit for that work.
// Tag-list requests are counted twice: at the registry (its access log, between marker
// requests) and by a counting proxy over the client.
// Usage: pnpm bench stages [runs=3] [concurrency=16] [--fresh]   (--fresh rebuilds the repository)
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Registry } from '@stowage/oci';
import { createRegistryClient } from '@stowage/registry-client';
import { createRepoStagesStorage, type StageDesc, type StageID } from '@stowage/stages-storage';
import { type DockerRegistry, startDockerRegistry } from '@stowage/testing';
import { report, run, time } from '../lib.js';
import { PROJECT, pool, population, REPOSITORY } from './population.js';

const args = process.argv.slice(2);
const fresh = args.includes('--fresh');
const positional = args.filter((a) => !a.startsWith('--'));
const runs = Number(positional[0] ?? 3);
const concurrency = Number(positional[1] ?? 16);
if (!(Number.isInteger(runs) && runs >= 1) || !(Number.isInteger(concurrency) && concurrency >= 1)) {
  console.error('usage: pnpm bench stages [runs>=1] [concurrency>=1] [--fresh]');
  process.exit(2);
}
const repoRoot = join(import.meta.dirname, '..', '..');
const DOCKER_MANIFEST = 'application/vnd.docker.distribution.manifest.v2+json';

/** Counts the calls of every `Registry` method (each `listTags` is one HTTP request on 2.8, which never pages tags). */
function counting(registry: Registry): { registry: Registry; calls: Map<string, number>; reset(): void } {
  const calls = new Map<string, number>();
  const proxy = new Proxy(registry, {
    get(target, key, receiver) {
      const value = Reflect.get(target, key, receiver);
      if (typeof value !== 'function' || typeof key !== 'string') return value;
      return (...params: unknown[]) => {
        calls.set(key, (calls.get(key) ?? 0) + 1);
        return (value as (...p: unknown[]) => unknown).apply(target, params);
      };
    },
  });
  return { registry: proxy, calls, reset: () => calls.clear() };
}

/** Tag-list requests as docker-registry's access log records them, between two marker requests. */
class AccessLog {
  readonly #registry: DockerRegistry;
  #marks = 0;
  constructor(registry: DockerRegistry) {
    this.#registry = registry;
  }

  async mark(): Promise<string> {
    const label = `stowage-bench-${++this.#marks}`;
    await (await fetch(`${this.#registry.url}/v2/?${label}`)).arrayBuffer();
    return label;
  }

  /** Listings of the repository between `from` and a new end mark; `undefined` when the log kept no `from` (it keeps 64 KiB). */
  async tagListsSince(from: string): Promise<number | undefined> {
    const to = await this.mark();
    const deadline = Date.now() + 5000;
    while (!this.#registry.output().includes(`/v2/?${to} `) && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    const log = this.#registry.output();
    const start = log.lastIndexOf(`/v2/?${from} `);
    const end = log.lastIndexOf(`/v2/?${to} `);
    if (start < 0 || end < 0) return undefined;
    return log.slice(start, end).split(`"GET /v2/${REPOSITORY}/tags/list`).length - 1;
  }
}

const fmt = (seconds: number) => seconds.toFixed(3);
const sameStages = (got: readonly StageID[], expected: readonly number[]) =>
  JSON.stringify(got.map((s) => s.creationTs).sort((a, b) => a - b)) ===
  JSON.stringify([...expected].sort((a, b) => a - b));

const pop = await population(join(repoRoot, '.bench-tmp', 'stages'), { fresh });
console.log(
  `repository ${REPOSITORY}: ${pop.stageTags} stage tags, ${pop.rejectedTags} rejected records, ${pop.recordTags} record tags (${pop.totalTags} tags); ` +
    (pop.cached
      ? `found in ${pop.root} (${fmt(pop.seconds)} s; --fresh rebuilds it)`
      : `written on disk in ${pop.seconds.toFixed(1)} s to ${pop.root}`),
);

const registry = await startDockerRegistry({
  dataDir: pop.root,
  config: { log: { accesslog: { disabled: false } } },
});
const work = await mkdtemp(join(tmpdir(), 'stowage-bench-stages-'));
const client = createRegistryClient({ registry: registry.host, auth: { useConfigFiles: false } });
const counted = counting(client);
const accessLog = new AccessLog(registry);
const address = `${registry.host}/${REPOSITORY}`;
const newStorage = () => createRepoStagesStorage({ registry: counted.registry, address, project: PROJECT });
const listUrl = `${registry.url}/v2/${REPOSITORY}/tags/list`;

try {
  // 1. the bare listing
  const listed = await client.listTags(REPOSITORY);
  if (listed.items.length !== pop.totalTags) {
    throw new Error(
      `docker-registry lists ${listed.items.length} tags, the population wrote ${pop.totalTags}`,
    );
  }
  let curlList = Number.POSITIVE_INFINITY;
  let curlWall = Number.POSITIVE_INFINITY;
  for (let i = 0; i < runs + 1; i++) {
    let total = 0;
    const wall = await time(async () => {
      total = Number(await run('curl', ['-sf', '-o', '/dev/null', '-w', '%{time_total}', listUrl]));
    });
    if (i === 0) continue; // warm-up: page cache and the registry's first walk
    curlList = Math.min(curlList, total);
    curlWall = Math.min(curlWall, wall);
  }
  let clientList = Number.POSITIVE_INFINITY;
  for (let i = 0; i < runs; i++) {
    clientList = Math.min(clientList, await time(() => client.listTags(REPOSITORY)));
  }

  // 2. one batch of 100 digests with the cache
  let batch = Number.POSITIVE_INFINITY;
  const batchLists: number[] = [];
  const batchLogLists: (number | undefined)[] = [];
  for (let i = 0; i < runs; i++) {
    const storage = newStorage();
    counted.reset();
    const mark = await accessLog.mark();
    let answers: StageID[][] = [];
    const seconds = await time(async () => {
      answers = await Promise.all(
        pop.queries.map((q) => storage.listStageIDsByDigest(q.digest, { cache: true })),
      );
    });
    batchLogLists.push(await accessLog.tagListsSince(mark));
    batchLists.push(counted.calls.get('listTags') ?? 0);
    batch = Math.min(batch, seconds);
    pop.queries.forEach((q, at) => {
      if (!sameStages(answers[at] as StageID[], q.expected)) {
        throw new Error(`listStageIDsByDigest(${q.digest}) answered ${JSON.stringify(answers[at])}`);
      }
    });
  }

  // 3. the same digests without the cache: one listing per digest
  const uncachedStorage = newStorage();
  counted.reset();
  const uncachedMark = await accessLog.mark();
  const uncached = await time(async () => {
    for (const q of pop.queries) {
      const answer = await uncachedStorage.listStageIDsByDigest(q.digest);
      if (!sameStages(answer, q.expected)) {
        throw new Error(`listStageIDsByDigest(${q.digest}) without cache answered ${JSON.stringify(answer)}`);
      }
    }
  });
  const uncachedLogLists = await accessLog.tagListsSince(uncachedMark);
  const uncachedLists = counted.calls.get('listTags') ?? 0;

  // 4. the full stage description list
  const descStorage = newStorage();
  counted.reset();
  const descMark = await accessLog.mark();
  let ids: StageID[] = [];
  const descs: (StageDesc | null)[] = [];
  const descSeconds = await time(async () => {
    ids = await descStorage.listStageIDs({ cache: true });
    descs.length = ids.length;
    await pool(ids, concurrency, async (id, at) => {
      descs[at] = await descStorage.getStageDesc(id, { cache: true });
    });
  });
  const descLogLists = await accessLog.tagListsSince(descMark);
  const descCalls = new Map(counted.calls);
  const found = descs.filter((d): d is StageDesc => d !== null);
  if (ids.length !== pop.stageTags) throw new Error(`listStageIDs answered ${ids.length} stages`);
  if (found.length !== pop.stageTags - pop.rejectedTags) {
    throw new Error(
      `getStageDesc found ${found.length} stages, expected ${pop.stageTags - pop.rejectedTags} (every stage but the rejected)`,
    );
  }

  // the same manifests and configs fetched by curl from its own process, at the same parallelism
  const curlConfig = join(work, 'describe.curl');
  const lines = [`header = "Accept: ${DOCKER_MANIFEST}"`, 'silent', 'fail'];
  for (const desc of found) {
    lines.push(
      `url = "${registry.url}/v2/${REPOSITORY}/manifests/${descStorage.stageTag(desc.stageID)}"`,
      'output = "/dev/null"',
    );
    lines.push(`url = "${registry.url}/v2/${REPOSITORY}/blobs/${desc.info.id}"`, 'output = "/dev/null"');
  }
  await writeFile(curlConfig, `${lines.join('\n')}\n`);
  const curlDescribe = await time(() =>
    run('curl', ['-Z', '--parallel-max', String(concurrency), '--parallel-immediate', '-K', curlConfig]),
  );

  // the table
  const logged = (n: number | undefined) => (n === undefined ? 'log window lost' : String(n));
  const rows: string[][] = [
    [
      'measurement',
      'time s',
      'tag-list req (client / registry log)',
      'ratio to curl list',
      'ratio to client list',
    ],
    ['bare listing: curl, own process (time_total)', fmt(curlList), '1', '1.000', fmt(curlList / clientList)],
    [
      'bare listing: curl process wall time',
      fmt(curlWall),
      '1',
      fmt(curlWall / curlList),
      fmt(curlWall / clientList),
    ],
    ['bare listing: our client listTags', fmt(clientList), '1', fmt(clientList / curlList), '1.000'],
    [
      `listStageIDsByDigest x${pop.queries.length}, cache (best of ${runs})`,
      fmt(batch),
      `${batchLists.join(',')} / ${batchLogLists.map(logged).join(',')}`,
      fmt(batch / curlList),
      fmt(batch / clientList),
    ],
    [
      `listStageIDsByDigest x${pop.queries.length}, no cache`,
      fmt(uncached),
      `${uncachedLists} / ${logged(uncachedLogLists)}`,
      fmt(uncached / curlList),
      fmt(uncached / clientList),
    ],
    [
      `stage descriptions: listStageIDs + getStageDesc x${ids.length} (${concurrency} parallel)`,
      fmt(descSeconds),
      `${descCalls.get('listTags') ?? 0} / ${logged(descLogLists)}`,
      fmt(descSeconds / curlList),
      fmt(descSeconds / clientList),
    ],
  ];
  const widths = rows[0]?.map((_, c) => Math.max(...rows.map((r) => (r[c] as string).length))) ?? [];
  console.log('');
  for (const row of rows) console.log(row.map((cell, c) => cell.padEnd(widths[c] as number)).join('  '));
  console.log('');

  report({ name: 'tag listing (client vs curl)', ours: clientList, peer: curlList, unit: 's' });
  report({
    name: `by-digest batch x${pop.queries.length}, cache (vs curl listing)`,
    ours: batch,
    peer: curlList,
    unit: 's',
  });
  report({
    name: `by-digest batch x${pop.queries.length}, cache (vs client listing)`,
    ours: batch,
    peer: clientList,
    unit: 's',
  });
  report({
    name: `by-digest x${pop.queries.length}, cache vs no cache`,
    ours: batch,
    peer: uncached,
    unit: 's',
  });
  report({
    name: `stage descriptions per second (vs curl -Z fetching manifest + config)`,
    ours: found.length / descSeconds,
    peer: found.length / curlDescribe,
    unit: 'desc/s',
    lowerIsBetter: false,
  });
  const perStage = [...descCalls.entries()]
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([method, n]) => `${method} ${n}`)
    .join(', ');
  console.log(
    `description list: ${found.length} described, ${descs.length - found.length} rejected (null); registry calls: ${perStage}`,
  );
  const batchGoal = batchLists.every((n) => n === 1) ? 'met' : 'MISSED';
  const ratio = batch / curlList;
  console.log(
    `goals: 1 tag-list request per batch ${batchGoal} (${batchLists.join(',')}); batch at most 1.2x the bare listing ${ratio <= 1.2 ? 'met' : 'MISSED'} (${ratio.toFixed(3)}x curl, ${(batch / clientList).toFixed(3)}x our client)`,
  );
  console.log(`peak rss: ${(process.resourceUsage().maxRSS / 1024).toFixed(1)} MiB`);
} finally {
  await client.close();
  await registry.stop();
  await rm(work, { recursive: true, force: true });
}
