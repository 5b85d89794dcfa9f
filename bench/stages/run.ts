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
//      bounded concurrency; beside it curl (-Z, same parallelism, its own process) fetches
//      the manifest and config of one stage in PEER_EVERY, the registry's own rate for
//      that work (all 50,000 would add minutes and say nothing more).
// Requests are counted twice: at the registry (its access log, between marker requests;
// phases 1–3) and at our client (its request diagnostics channel, every HTTP exchange).
// Phase 4 runs on a second docker-registry over the same data with the access log off:
// writing 100,000 log lines costs the registry a third of its request rate here.
// Usage: pnpm bench stages [runs=3] [concurrency=16] [--fresh]   (--fresh rebuilds the repository)
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createRegistryClient, REQUEST_CHANNEL, type RequestEvent } from '@stowage/registry-client';
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
/** curl describes one stage in this many (see the header). */
const PEER_EVERY = 10;
const repoRoot = join(import.meta.dirname, '..', '..');
const DOCKER_MANIFEST = 'application/vnd.docker.distribution.manifest.v2+json';

/** Our client's HTTP exchanges by kind, from its request channel. */
class RequestCounter {
  readonly counts = new Map<string, number>();
  readonly #listener = (message: unknown) => {
    const path = new URL((message as RequestEvent).url).pathname;
    const kind = path.endsWith('/tags/list')
      ? 'tags/list'
      : path.includes('/manifests/')
        ? 'manifests'
        : path.includes('/blobs/')
          ? 'blobs'
          : 'other';
    this.counts.set(kind, (this.counts.get(kind) ?? 0) + 1);
  };
  constructor() {
    subscribe(REQUEST_CHANNEL, this.#listener);
  }
  get tagLists(): number {
    return this.counts.get('tags/list') ?? 0;
  }
  reset(): void {
    this.counts.clear();
  }
  close(): void {
    unsubscribe(REQUEST_CHANNEL, this.#listener);
  }
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

  /** Listings of the repository since `from`; `undefined` when the log no longer holds `from` (it keeps 64 KiB). */
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

/** A docker-registry over the population, our client to it, and a stages storage factory. */
async function startPeer(root: string, accessLog: boolean) {
  const registry = await startDockerRegistry({
    dataDir: root,
    config: { log: { accesslog: { disabled: !accessLog } } },
  });
  const client = createRegistryClient({ registry: registry.host, auth: { useConfigFiles: false } });
  const address = `${registry.host}/${REPOSITORY}`;
  return {
    registry,
    client,
    storage: () => createRepoStagesStorage({ registry: client, address, project: PROJECT }),
    async stop() {
      await client.close();
      await registry.stop();
    },
  };
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

const work = await mkdtemp(join(tmpdir(), 'stowage-bench-stages-'));
const requests = new RequestCounter();
try {
  // --- phases 1–3, on a registry that logs every request ---
  const logged = await startPeer(pop.root, true);
  const accessLog = new AccessLog(logged.registry);
  let curlList = Number.POSITIVE_INFINITY;
  let curlWall = Number.POSITIVE_INFINITY;
  let clientList = Number.POSITIVE_INFINITY;
  let batch = Number.POSITIVE_INFINITY;
  const batchLists: number[] = [];
  const batchLogLists: (number | undefined)[] = [];
  let uncached: number;
  let uncachedLists: number;
  let uncachedLogLists: number | undefined;
  try {
    // 1. the bare listing
    const listed = await logged.client.listTags(REPOSITORY);
    if (listed.items.length !== pop.totalTags) {
      throw new Error(
        `docker-registry lists ${listed.items.length} tags, the population wrote ${pop.totalTags}`,
      );
    }
    const listUrl = `${logged.registry.url}/v2/${REPOSITORY}/tags/list`;
    for (let i = 0; i <= runs; i++) {
      let total = 0;
      const wall = await time(async () => {
        total = Number(await run('curl', ['-sf', '-o', '/dev/null', '-w', '%{time_total}', listUrl]));
      });
      if (i === 0) continue; // a warm-up for the page cache
      curlList = Math.min(curlList, total);
      curlWall = Math.min(curlWall, wall);
    }
    for (let i = 0; i < runs; i++) {
      clientList = Math.min(clientList, await time(() => logged.client.listTags(REPOSITORY)));
    }

    // 2. one batch of 100 digests with the cache, each run on a new storage (an empty cache)
    for (let i = 0; i < runs; i++) {
      const storage = logged.storage();
      requests.reset();
      const mark = await accessLog.mark();
      let answers: StageID[][] = [];
      const seconds = await time(async () => {
        answers = await Promise.all(
          pop.queries.map((q) => storage.listStageIDsByDigest(q.digest, { cache: true })),
        );
      });
      batchLogLists.push(await accessLog.tagListsSince(mark));
      batchLists.push(requests.tagLists);
      batch = Math.min(batch, seconds);
      pop.queries.forEach((q, at) => {
        if (!sameStages(answers[at] as StageID[], q.expected)) {
          throw new Error(`listStageIDsByDigest(${q.digest}) answered ${JSON.stringify(answers[at])}`);
        }
      });
    }

    // 3. the same digests without the cache: one listing per digest
    const storage = logged.storage();
    requests.reset();
    const mark = await accessLog.mark();
    uncached = await time(async () => {
      for (const q of pop.queries) {
        const answer = await storage.listStageIDsByDigest(q.digest);
        if (!sameStages(answer, q.expected)) {
          throw new Error(
            `listStageIDsByDigest(${q.digest}) without cache answered ${JSON.stringify(answer)}`,
          );
        }
      }
    });
    uncachedLogLists = await accessLog.tagListsSince(mark);
    uncachedLists = requests.tagLists;
  } finally {
    await logged.stop();
  }

  // --- phase 4, on a registry without the access log ---
  const quiet = await startPeer(pop.root, false);
  let descSeconds: number;
  let curlDescribe: number;
  let ids: StageID[] = [];
  const descs: (StageDesc | null)[] = [];
  let found: StageDesc[];
  let descRequests: Map<string, number>;
  let peerStages: number;
  try {
    const storage = quiet.storage();
    requests.reset();
    descSeconds = await time(async () => {
      ids = await storage.listStageIDs({ cache: true });
      descs.length = ids.length;
      await pool(ids, concurrency, async (id, at) => {
        descs[at] = await storage.getStageDesc(id, { cache: true });
      });
    });
    descRequests = new Map(requests.counts);
    found = descs.filter((d): d is StageDesc => d !== null);
    if (ids.length !== pop.stageTags) throw new Error(`listStageIDs answered ${ids.length} stages`);
    if (found.length !== pop.stageTags - pop.rejectedTags) {
      throw new Error(
        `getStageDesc found ${found.length} stages, expected ${pop.stageTags - pop.rejectedTags} (all but the rejected)`,
      );
    }

    // the same manifests and configs fetched by curl from its own process, at the same parallelism
    const curlConfig = join(work, 'describe.curl');
    const lines = [`header = "Accept: ${DOCKER_MANIFEST}"`, 'fail'];
    const sample = found.filter((_, at) => at % PEER_EVERY === 0);
    for (const desc of sample) {
      lines.push(
        `url = "${quiet.registry.url}/v2/${REPOSITORY}/manifests/${storage.stageTag(desc.stageID)}"`,
        'output = "/dev/null"',
        `url = "${quiet.registry.url}/v2/${REPOSITORY}/blobs/${desc.info.id}"`,
        'output = "/dev/null"',
      );
    }
    await writeFile(curlConfig, `${lines.join('\n')}\n`);
    peerStages = sample.length;
    curlDescribe = await time(() =>
      run('curl', ['--no-progress-meter', '-Z', '--parallel-max', String(concurrency), '-K', curlConfig]),
    );
  } finally {
    await quiet.stop();
  }

  // --- the table ---
  const inLog = (n: number | undefined) => (n === undefined ? 'lost' : String(n));
  const ourRate = found.length / descSeconds;
  const peerRate = peerStages / curlDescribe;
  const perKind = [...descRequests.entries()].map(([kind, n]) => `${kind} ${n}`).join(', ');
  const rows: string[][] = [
    ['measurement', 'time s', 'tag-list requests (client / registry log)', 'x curl list', 'x client list'],
    [
      'bare listing, curl in its own process (time_total)',
      fmt(curlList),
      '1 / 1',
      '1.000',
      fmt(curlList / clientList),
    ],
    [
      'bare listing, curl process wall time',
      fmt(curlWall),
      '1 / 1',
      fmt(curlWall / curlList),
      fmt(curlWall / clientList),
    ],
    ['bare listing, our client listTags', fmt(clientList), '1 / 1', fmt(clientList / curlList), '1.000'],
    [
      `listStageIDsByDigest x${pop.queries.length}, cache (best of ${runs})`,
      fmt(batch),
      `${batchLists.join(',')} / ${batchLogLists.map(inLog).join(',')}`,
      fmt(batch / curlList),
      fmt(batch / clientList),
    ],
    [
      `listStageIDsByDigest x${pop.queries.length}, no cache`,
      fmt(uncached),
      `${uncachedLists} / ${inLog(uncachedLogLists)}`,
      fmt(uncached / curlList),
      fmt(uncached / clientList),
    ],
    [
      `listStageIDs + getStageDesc x${ids.length} (${concurrency} at once)`,
      fmt(descSeconds),
      `${descRequests.get('tags/list') ?? 0} / not logged`,
      fmt(descSeconds / curlList),
      fmt(descSeconds / clientList),
    ],
  ];
  const widths = (rows[0] as string[]).map((_, c) => Math.max(...rows.map((r) => (r[c] as string).length)));
  console.log('');
  for (const row of rows)
    console.log(
      row
        .map((cell, c) => cell.padEnd(widths[c] as number))
        .join('  ')
        .trimEnd(),
    );
  console.log('');
  console.log(
    `description list: ${found.length} described, ${descs.length - found.length} rejected (null), ${ourRate.toFixed(0)} descriptions/s; our requests: ${perKind}`,
  );
  console.log(
    `registry's own rate: curl -Z (${concurrency} at once) fetched manifest + config of ${peerStages} stages (1 in ${PEER_EVERY}) in ${fmt(curlDescribe)} s, ${peerRate.toFixed(0)} stages/s`,
  );
  console.log('');
  report({ name: 'tag listing, our client vs curl', ours: clientList, peer: curlList, unit: 's' });
  report({ name: 'by-digest batch (cache) vs curl listing', ours: batch, peer: curlList, unit: 's' });
  report({ name: 'by-digest batch (cache) vs our client listing', ours: batch, peer: clientList, unit: 's' });
  report({ name: 'by-digest batch, cache vs no cache', ours: batch, peer: uncached, unit: 's' });
  report({
    name: 'stage descriptions vs curl -Z manifest + config',
    ours: ourRate,
    peer: peerRate,
    unit: 'stages/s',
    lowerIsBetter: false,
  });
  const oneListing =
    batchLists.every((n) => n === 1) && batchLogLists.every((n) => n === undefined || n === 1);
  const ratio = batch / curlList;
  console.log(
    `goals: one tag-list request per batch ${oneListing ? 'met' : 'MISSED'}; batch at most 1.2x the bare listing ${ratio <= 1.2 ? 'met' : 'MISSED'} (${ratio.toFixed(3)}x curl's, ${(batch / clientList).toFixed(3)}x our client's)`,
  );
  console.log(`peak rss: ${(process.resourceUsage().maxRSS / 1024).toFixed(1)} MiB`);
} finally {
  requests.close();
  await rm(work, { recursive: true, force: true });
}
