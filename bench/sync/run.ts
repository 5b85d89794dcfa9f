// bench/sync: mirror a whole upstream, ours against skopeo, in one run.
// The upstream is a real docker-registry filled by skopeo with 20 images
// (population.ts: 12 small ~1 MiB, 4 medium 10-30 MiB, 2 large ~60 MiB, 2
// two-platform indexes), one repository each.
//   ours: runSyncPass (@stowage/sync, in this process) mirroring every repository
//         into a fresh image store, then the same pass again with nothing changed;
//   peer: skopeo sync --all --src docker|yaml --dest dir, the same repositories.
// skopeo is timed three ways (one `--src yaml` process naming every repository;
// one `--src docker` process per repository, in turn; and those four at a time,
// as ours runs four images at a time) and the fastest is the peer figure.
// skopeo 1.9's `--dest dir` refuses to write into an image directory that is
// already there, so the no-change re-sync has no peer figure: it is ours against
// our own first pass (goal at most a tenth). Each figure is the best of `runs`; the machine's own limits (sha256 of 256 MiB,
// write+fsync of 64 MiB, on the disk both sides write to) are measured in the
// same run and printed beside them.
// Usage: pnpm bench sync [runs=3] [--no-peer] [--no-ours] [--profile=<file.cpuprofile>] [--concurrency=<n>]
//   --concurrency sets the upstream's `concurrency` (images at once; default the config's 4).
//   --profile writes a V8 CPU profile of our first pass of the last run (open it in
//   Chrome DevTools or speedscope); the CPU seconds of each pass are printed either way.
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { Session } from 'node:inspector/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { createImageStore } from '@stowage/image-store';
import { REQUEST_CHANNEL, type RequestEvent } from '@stowage/registry-client';
import { parseSyncConfig, runSyncPass, type SyncReport } from '@stowage/sync';
import { startDockerRegistry } from '@stowage/testing';
import { Pool } from 'undici';
// biome-ignore lint/style/noRestrictedImports: the upstream fixture is a test helper of the sync package, not part of its entry point
import { populateUpstream, type UpstreamPopulation } from '../../packages/sync/test/upstream-fixture.js';
import { durableWriteRate, report, sha256Rate, time } from '../lib.js';
import { benchSpecs } from './population.js';

const args = process.argv.slice(2);
const positional = args.filter((a) => !a.startsWith('--'));
const runs = Number(positional[0] ?? 3);
const withPeer = !args.includes('--no-peer');
const withOurs = !args.includes('--no-ours');
const profileFile = args.find((a) => a.startsWith('--profile='))?.slice('--profile='.length);
const concurrencyArg = args.find((a) => a.startsWith('--concurrency='))?.slice('--concurrency='.length);
const concurrency = concurrencyArg === undefined ? undefined : Number(concurrencyArg);
if (
  !(Number.isInteger(runs) && runs >= 1) ||
  (concurrency !== undefined && !(Number.isInteger(concurrency) && concurrency >= 1))
) {
  console.error(
    'usage: pnpm bench sync [runs>=1] [--no-peer] [--no-ours] [--profile=<file>] [--concurrency=<n>]',
  );
  process.exit(2);
}
const MiB = 1 << 20;
const work = await mkdtemp(join(tmpdir(), 'stowage-bench-sync-'));

/** Our client's HTTP exchanges during a pass, by method and kind (`HEAD manifests`), from its request channel. */
function countRequests(): { stop(): string } {
  const counts = new Map<string, number>();
  const listener = (message: unknown) => {
    const event = message as RequestEvent;
    const path = new URL(event.url).pathname;
    const kind = /\/blobs\/uploads\//.test(path)
      ? 'uploads'
      : (/\/(manifests|blobs|tags)\//.exec(path)?.[1] ?? (path.endsWith('/_catalog') ? 'catalog' : 'other'));
    const key = `${event.method} ${kind}`;
    counts.set(key, (counts.get(key) ?? 0) + 1);
  };
  subscribe(REQUEST_CHANNEL, listener);
  return {
    stop() {
      unsubscribe(REQUEST_CHANNEL, listener);
      const total = [...counts.values()].reduce((a, b) => a + b, 0);
      const parts = [...counts].sort((a, b) => b[1] - a[1]).map(([k, v]) => `${v} ${k}`);
      return `${total} requests (${parts.join(', ')})`;
    },
  };
}

/** A V8 CPU profile of this process from now until `stop`, written as a `.cpuprofile`. */
async function startProfile(): Promise<{ stop(file: string): Promise<void> }> {
  const session = new Session();
  session.connect();
  await session.post('Profiler.enable');
  await session.post('Profiler.setSamplingInterval', { interval: 200 });
  await session.post('Profiler.start');
  return {
    async stop(file) {
      const { profile } = await session.post('Profiler.stop');
      await writeFile(file, JSON.stringify(profile));
      session.disconnect();
      console.log(`ours: CPU profile of the first pass written to ${file}`);
    },
  };
}

/** Runs a command to completion, its output kept (skopeo sync logs every image) and shown only when it fails. */
function quiet(command: string, args: readonly string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile(command, args, { maxBuffer: 64 << 20 }, (error, _stdout, stderr) =>
      error ? reject(new Error(`${command} ${args.join(' ')} failed: ${stderr.trim()}`)) : resolve(),
    );
  });
}

async function inParallel<T>(
  items: readonly T[],
  limit: number,
  fn: (item: T) => Promise<unknown>,
): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, items.length) }, async () => {
      while (next < items.length) await fn(items[next++] as T);
    }),
  );
}

/** The fastest bare pull of every blob of the upstream (see its use), and at what concurrency. */
async function barePull(
  url: string,
  upstream: UpstreamPopulation,
  runs: number,
): Promise<{ seconds: number; concurrency: number }> {
  const blobs = new Map<string, string>();
  for (const entry of upstream.tags) for (const digest of entry.blobs) blobs.set(digest, entry.repository);
  const items = [...blobs];
  let best = { seconds: Number.POSITIVE_INFINITY, concurrency: 0 };
  const pool = new Pool(url, { connections: 16 });
  try {
    for (const concurrency of [4, 8]) {
      for (let i = 0; i < runs; i++) {
        const seconds = await time(() =>
          inParallel(items, concurrency, async ([digest, repository]) => {
            const response = await pool.request({ method: 'GET', path: `/v2/${repository}/blobs/${digest}` });
            if (response.statusCode !== 200)
              throw new Error(`bare pull: ${digest} answered ${response.statusCode}`);
            for await (const _ of response.body) {
              // discarded
            }
          }),
        );
        if (seconds < best.seconds) best = { seconds, concurrency };
      }
    }
  } finally {
    await pool.close();
  }
  return best;
}

/** Every tag of the upstream is in the store with the upstream digest (a bench that copied nothing proves nothing). */
async function checkMirror(root: string, upstream: UpstreamPopulation): Promise<void> {
  const store = await createImageStore({ root, readOnly: true });
  try {
    for (const entry of upstream.tags) {
      const got = await store.headManifest(entry.repository, entry.tag);
      if (got?.digest !== entry.digest)
        throw new Error(
          `ours: ${entry.repository}:${entry.tag} is ${got?.digest ?? 'missing'}, not ${entry.digest}`,
        );
    }
  } finally {
    await store.close();
  }
}

async function checkPeerDir(dir: string, host: string, upstream: UpstreamPopulation): Promise<void> {
  for (const entry of upstream.tags) {
    const bytes = await readFile(join(dir, host, `${entry.repository}:${entry.tag}`, 'manifest.json'));
    const digest = `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
    if (digest !== entry.digest) throw new Error(`peer: ${entry.repository}:${entry.tag} is ${digest}`);
  }
}

const upstreamRegistry = await startDockerRegistry({ dataDir: join(work, 'upstream') });
try {
  const specs = benchSpecs();
  const fillStarted = performance.now();
  const upstream = await populateUpstream(upstreamRegistry, { specs, seed: 2026 });
  const populated = (performance.now() - fillStarted) / 1000;
  const repositories = [...new Set(specs.map((s) => s.repository))];
  const images = specs.length;
  const totalMiB = upstream.totalBlobBytes / MiB;
  console.log(
    `upstream: docker-registry ${upstreamRegistry.host}, ${images} images in ${repositories.length} repositories, ` +
      `${totalMiB.toFixed(1)} MiB of blobs (${upstream.blobSizes.size} blobs), filled by skopeo in ${populated.toFixed(1)} s`,
  );

  const sha = sha256Rate(256);
  const fsync = await durableWriteRate(work, 64);
  console.log(
    `machine: sha256 ${sha.toFixed(0)} MB/s (256 MiB, one core); write+fsync ${fsync.toFixed(0)} MB/s (64 MiB, ${work}); ` +
      `${(upstream.totalBlobBytes / 1e6 / sha).toFixed(2)} s to hash the upstream once, ` +
      `${(upstream.totalBlobBytes / 1e6 / fsync).toFixed(2)} s to write it durably once`,
  );

  // The upstream's own limit: every blob fetched with a bare HTTP client (undici, no store, no
  // hash), four and eight at a time, bodies discarded. Both tools pay at least this.
  const floor = await barePull(upstreamRegistry.url, upstream, runs);
  console.log(
    `upstream floor: bare GET of every blob (undici, bodies discarded): ${floor.seconds.toFixed(3)} s ` +
      `(${floor.concurrency} at a time; best of ${runs})`,
  );

  let peerFirst = Number.NaN;
  if (withPeer) {
    const yaml = join(work, 'skopeo-sync.yaml');
    await writeFile(
      yaml,
      `${upstreamRegistry.host}:\n  tls-verify: false\n  images:\n${repositories.map((r) => `    ${r}: []\n`).join('')}`,
    );
    const skopeo = (extra: string[]) =>
      quiet('skopeo', ['sync', '--all', '--scoped', '--dest', 'dir', ...extra]);
    const perRepository = (dest: string, repository: string) =>
      skopeo(['--src', 'docker', '--src-tls-verify=false', `${upstreamRegistry.host}/${repository}`, dest]);
    const variants: { name: string; sync: (dest: string) => Promise<unknown> }[] = [
      { name: 'one --src yaml process', sync: (dest) => skopeo(['--src', 'yaml', yaml, dest]) },
      {
        name: 'one --src docker process per repository, in turn',
        sync: async (dest) => {
          for (const repository of repositories) await perRepository(dest, repository);
        },
      },
      {
        name: 'one --src docker process per repository, 4 at a time',
        sync: (dest) => inParallel(repositories, 4, (repository) => perRepository(dest, repository)),
      },
    ];
    const timings: { name: string; first: number }[] = [];
    for (const variant of variants) {
      let first = Number.POSITIVE_INFINITY;
      for (let i = 0; i < runs; i++) {
        const dest = join(work, 'peer');
        await rm(dest, { recursive: true, force: true });
        first = Math.min(first, await time(() => variant.sync(dest)));
        if (i === 0) await checkPeerDir(dest, upstreamRegistry.host, upstream);
      }
      await rm(join(work, 'peer'), { recursive: true, force: true });
      timings.push({ name: variant.name, first });
      console.log(`skopeo sync (${variant.name}): ${first.toFixed(3)} s`);
    }
    const fastest = timings.reduce((a, b) => (b.first < a.first ? b : a));
    peerFirst = fastest.first;
    console.log(`peer = skopeo sync, ${fastest.name} (the fastest here)`);
  }

  if (withOurs) {
    const config = await parseSyncConfig({
      registries: [
        {
          urls: [upstreamRegistry.url],
          tlsVerify: false,
          content: [{ prefix: '**' }],
          ...(concurrency === undefined ? {} : { concurrency }),
        },
      ],
    });
    let first = Number.POSITIVE_INFINITY;
    let again = Number.POSITIVE_INFINITY;
    let firstReport: SyncReport | undefined;
    let againReport: SyncReport | undefined;
    for (let i = 0; i < runs; i++) {
      const root = join(work, 'ours');
      await rm(root, { recursive: true, force: true });
      const pass = async () => {
        const store = await createImageStore({ root });
        try {
          return await runSyncPass({ config, destination: store, stateDir: join(work, 'ours-state') });
        } finally {
          await store.close();
        }
      };
      const profiling = profileFile !== undefined && i === runs - 1 ? await startProfile() : undefined;
      const requests1 = countRequests();
      const cpu1 = process.cpuUsage();
      const t1 = await time(async () => {
        firstReport = await pass();
      });
      const c1 = process.cpuUsage(cpu1);
      const sent1 = requests1.stop();
      if (profiling) await profiling.stop(profileFile as string);
      const requests2 = countRequests();
      const cpu2 = process.cpuUsage();
      const t2 = await time(async () => {
        againReport = await pass();
      });
      const c2 = process.cpuUsage(cpu2);
      const sent2 = requests2.stop();
      const cpu = (u: NodeJS.CpuUsage) =>
        `${((u.user + u.system) / 1e6).toFixed(2)} s CPU (${(u.system / 1e6).toFixed(2)} s system)`;
      console.log(`ours run ${i + 1}: first ${t1.toFixed(3)} s, ${cpu(c1)}, ${sent1}`);
      console.log(`ours run ${i + 1}: re-sync ${t2.toFixed(3)} s, ${cpu(c2)}, ${sent2}`);
      if (firstReport?.failed || firstReport?.synced !== upstream.tags.length)
        throw new Error(`ours: the first pass synced ${firstReport?.synced}, failed ${firstReport?.failed}`);
      if (againReport?.skipped !== upstream.tags.length || againReport.bytesCopied !== 0)
        throw new Error(
          `ours: the no-change pass skipped ${againReport?.skipped}, copied ${againReport?.bytesCopied} bytes`,
        );
      if (i === 0) await checkMirror(root, upstream);
      first = Math.min(first, t1);
      again = Math.min(again, t2);
    }
    await rm(join(work, 'ours'), { recursive: true, force: true });
    const copiedMiB = (firstReport?.bytesCopied ?? 0) / MiB;
    console.log(
      `ours: first pass ${copiedMiB.toFixed(1)} MiB copied, ${((copiedMiB * MiB) / 1e6 / first).toFixed(0)} MB/s ` +
        `(machine: sha256 ${sha.toFixed(0)} MB/s, write+fsync ${fsync.toFixed(0)} MB/s)`,
    );
    console.log(
      `ours/floor: ${first.toFixed(3)} s / ${floor.seconds.toFixed(3)} s = ${(first / floor.seconds).toFixed(2)} ` +
        `(skopeo/floor ${(peerFirst / floor.seconds).toFixed(2)})`,
    );
    if (withPeer) {
      report({ name: `sync ${images} images`, ours: first, peer: peerFirst, unit: 's' });
    } else {
      console.log(`sync ${images} images: ours ${first.toFixed(3)} s`);
    }
    console.log(
      `re-sync/first: ours ${again.toFixed(3)} s / ${first.toFixed(3)} s = ${(again / first).toFixed(3)} (goal ≤ 0.1)`,
    );
  }
} finally {
  await upstreamRegistry.stop();
  await rm(work, { recursive: true, force: true });
}
