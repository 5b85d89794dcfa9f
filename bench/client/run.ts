// bench/client: push and pull a large single-layer image and a many-layer image
// to and from docker-registry, ours (@stowage/registry-client, in a child
// process) against `skopeo copy` between an `oci:` layout and `docker://`, in
// one run. Each side gets its own fresh docker-registry so neither can mount
// or skip blobs the other pushed.
// Usage: pnpm bench client [bigMiB=1024] [manyMiB=256] [manyLayers=64]
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startDockerRegistry } from '@stowage/testing';
import { writeLayout } from '../layout.js';
import { report, run, time } from '../lib.js';

const bigMiB = Number(process.argv[2] ?? 1024);
const manyMiB = Number(process.argv[3] ?? 256);
const manyLayers = Number(process.argv[4] ?? 64);
const work = await mkdtemp(join(tmpdir(), 'stowage-bench-client-'));

function ours(args: string[]): Promise<{ seconds: number; maxRssMiB: number }> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      process.execPath,
      ['--conditions=@stowage/source', '--import', 'tsx', join(import.meta.dirname, 'ours.ts'), ...args],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    let out = '';
    child.stdout.on('data', (chunk: Buffer) => {
      out += chunk.toString();
    });
    child.once('exit', (code) =>
      code === 0
        ? resolve(JSON.parse(out.trim().split('\n').pop() as string))
        : reject(new Error(`ours ${args[0]} exited ${code}`)),
    );
  });
}

const skopeo = (src: string, dst: string) =>
  run('skopeo', ['copy', '--quiet', '--src-tls-verify=false', '--dest-tls-verify=false', src, dst]);

try {
  const cases = [
    { name: `${bigMiB} MiB, 1 layer`, tag: 'big', layers: 1, layerBytes: bigMiB * (1 << 20) },
    {
      name: `${manyMiB} MiB, ${manyLayers} layers`,
      tag: 'many',
      layers: manyLayers,
      layerBytes: (manyMiB * (1 << 20)) / manyLayers,
    },
  ];
  for (const c of cases) {
    const layout = join(work, `layout-${c.tag}`);
    await writeLayout(layout, c.tag, c.layers, c.layerBytes);
    const peerRegistry = await startDockerRegistry({ dataDir: join(work, `peer-${c.tag}`) });
    const ourRegistry = await startDockerRegistry({ dataDir: join(work, `ours-${c.tag}`) });
    try {
      const peerPush = await time(() =>
        skopeo(`oci:${layout}:${c.tag}`, `docker://${peerRegistry.host}/bench/${c.tag}:${c.tag}`),
      );
      let push = { seconds: 0, maxRssMiB: 0 };
      const oursPush = await time(async () => {
        push = await ours(['push', layout, c.tag, ourRegistry.host, `bench/${c.tag}`]);
      });
      report({ name: `push ${c.name} (whole process)`, ours: oursPush, peer: peerPush, unit: 's' });
      report({
        name: `push ${c.name} (ours without node+tsx startup)`,
        ours: push.seconds,
        peer: peerPush,
        unit: 's',
      });
      const peerPull = await time(() =>
        skopeo(
          `docker://${peerRegistry.host}/bench/${c.tag}:${c.tag}`,
          `oci:${join(work, `pulled-peer-${c.tag}`)}:${c.tag}`,
        ),
      );
      let pull = { seconds: 0, maxRssMiB: 0 };
      const oursPull = await time(async () => {
        pull = await ours([
          'pull',
          ourRegistry.host,
          `bench/${c.tag}`,
          c.tag,
          join(work, `pulled-ours-${c.tag}`),
        ]);
      });
      report({ name: `pull ${c.name} (whole process)`, ours: oursPull, peer: peerPull, unit: 's' });
      report({
        name: `pull ${c.name} (ours without node+tsx startup)`,
        ours: pull.seconds,
        peer: peerPull,
        unit: 's',
      });
      console.log(
        `ours peak RSS (${c.name}): push ${push.maxRssMiB.toFixed(1)} MiB, pull ${pull.maxRssMiB.toFixed(1)} MiB`,
      );
      const pulled = JSON.parse(await readFile(join(work, `pulled-ours-${c.tag}`, 'index.json'), 'utf8'));
      const original = JSON.parse(await readFile(join(layout, 'index.json'), 'utf8'));
      if (pulled.manifests[0].digest !== original.manifests[0].digest)
        throw new Error('pulled manifest digest differs');
    } finally {
      await peerRegistry.stop();
      await ourRegistry.stop();
      await rm(layout, { recursive: true, force: true });
      await rm(join(work, `pulled-peer-${c.tag}`), { recursive: true, force: true });
      await rm(join(work, `pulled-ours-${c.tag}`), { recursive: true, force: true });
    }
  }
} finally {
  await rm(work, { recursive: true, force: true });
}
