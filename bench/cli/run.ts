// bench/cli: `stowage copy` against `skopeo copy` between two registries, as a
// user runs them: whole processes, start-up included, from docker-registry (filled
// by skopeo from an OCI layout of random gzip layers) to stowage-server (the built
// server, a fresh storage root for each tool so neither finds the other's blobs).
// Two images: 64 layers (256 MiB in all by default) and one 1 GiB layer. The
// machine's limits (sha256, write+fsync) are measured in the same run.
// Usage: pnpm bench cli [manyMiB=256] [manyLayers=64] [bigMiB=1024] [runs=3] [--<stowage copy flag>...]
import { execFile, spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { freePort, startDockerRegistry } from '@stowage/testing';
import { writeLayout } from '../layout.js';
import { durableWriteRate, report, run, sha256Rate, time } from '../lib.js';

const positional = process.argv.slice(2).filter((a) => !a.startsWith('--'));
const [manyMiB = 256, manyLayers = 64, bigMiB = 1024, runs = 3] = positional.map(Number);
/** Flags passed on to stowage copy (--concurrency=8, say), to try its options. */
const oursFlags = process.argv.slice(2).filter((a) => a.startsWith('--'));
const repoRoot = join(import.meta.dirname, '../..');
const cli = join(repoRoot, 'apps/cli/dist/cli.js');
const serverBin = join(repoRoot, 'apps/server/dist/cli.js');
const work = await mkdtemp(join(tmpdir(), 'stowage-bench-cli-'));

/** The built stowage-server on a fresh root; resolves once /v2/ answers. */
async function startServer(root: string): Promise<{ host: string; stop(): Promise<void> }> {
  const port = await freePort();
  const child = spawn(process.execPath, [serverBin, 'serve', '--root', root, '--addr', `127.0.0.1:${port}`], {
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  const host = `127.0.0.1:${port}`;
  for (let i = 0; ; i++) {
    try {
      if ((await fetch(`http://${host}/v2/`)).ok) break;
    } catch {
      if (i > 200) throw new Error('stowage-server did not start');
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return {
    host,
    stop: () =>
      new Promise<void>((resolve) => {
        child.once('exit', () => resolve());
        child.kill('SIGTERM');
      }),
  };
}

try {
  console.log('building the binaries (turbo: nothing when current)');
  await promisify(execFile)(
    'pnpm',
    [
      'turbo',
      'run',
      'build',
      '--filter=@stowage/cli...',
      '--filter=@stowage/server...',
      '--output-logs=errors-only',
    ],
    { cwd: repoRoot, maxBuffer: 1 << 24 },
  );
  const sha = sha256Rate(256);
  const fsync = await durableWriteRate(work, 64);
  console.log(
    `machine: sha256 ${sha.toFixed(0)} MB/s (one core); write+fsync ${fsync.toFixed(0)} MB/s (${work})`,
  );

  const upstream = await startDockerRegistry({ dataDir: join(work, 'upstream') });
  try {
    const cases = [
      {
        name: `${manyLayers} layers, ${manyMiB} MiB`,
        tag: 'many',
        layers: manyLayers,
        layerBytes: (manyMiB << 20) / manyLayers,
      },
      { name: `1 layer, ${bigMiB} MiB`, tag: 'big', layers: 1, layerBytes: bigMiB << 20 },
    ];
    for (const c of cases) {
      const layout = join(work, `layout-${c.tag}`);
      await writeLayout(layout, c.tag, c.layers, c.layerBytes);
      await run('skopeo', [
        'copy',
        '--quiet',
        '--dest-tls-verify=false',
        `oci:${layout}:${c.tag}`,
        `docker://${upstream.host}/bench/${c.tag}:${c.tag}`,
      ]);
      await rm(layout, { recursive: true, force: true });
      const source = `${upstream.host}/bench/${c.tag}:${c.tag}`;
      let ours = Number.POSITIVE_INFINITY;
      let peer = Number.POSITIVE_INFINITY;
      for (let i = 0; i < runs; i++) {
        // a fresh server for each copy: nothing of an earlier one to skip
        for (const side of ['peer', 'ours'] as const) {
          const root = join(work, `server-${c.tag}-${side}-${i}`);
          const server = await startServer(root);
          try {
            const destination = `${server.host}/bench/${c.tag}:${c.tag}`;
            const seconds = await time(() =>
              side === 'ours'
                ? run(process.execPath, [cli, 'copy', source, destination, ...oursFlags])
                : run('skopeo', [
                    'copy',
                    '--quiet',
                    '--src-tls-verify=false',
                    '--dest-tls-verify=false',
                    `docker://${source}`,
                    `docker://${destination}`,
                  ]),
            );
            if (side === 'ours') ours = Math.min(ours, seconds);
            else peer = Math.min(peer, seconds);
            console.log(`${c.name} run ${i + 1}: ${side} ${seconds.toFixed(3)} s`);
          } finally {
            await server.stop();
            await rm(root, { recursive: true, force: true });
          }
        }
      }
      const mb = (c.layers * c.layerBytes) / 1e6;
      report({
        name: `copy ${c.name}, docker-registry -> stowage-server (whole process, best of ${runs})`,
        ours,
        peer,
        unit: 's',
      });
      console.log(
        `  ours ${(mb / ours).toFixed(0)} MB/s, skopeo ${(mb / peer).toFixed(0)} MB/s (machine: sha256 ${sha.toFixed(0)}, write+fsync ${fsync.toFixed(0)} MB/s)`,
      );
    }
  } finally {
    await upstream.stop();
  }
} finally {
  await rm(work, { recursive: true, force: true });
}
