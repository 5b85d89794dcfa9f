// bench/server: stowage's registry server (over the image store, in its own
// process) side by side with Debian's docker-registry (distribution 2.8) on the
// same machine, in one run, through the same plain node:http client:
//   monolithic push of a large blob, chunked push of it, pull of it,
//   manifest GETs per second over 32 connections, 10,000 tag PUTs, listing them.
// Usage: pnpm bench server [blobMiB=1024] [tags=10000] [manifestGets=20000]
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { createHash, randomFillSync } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { Agent, request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { randomImage, startDockerRegistry } from '@stowage/testing';
import { report, time } from '../lib.js';

const blobMiB = Number(process.argv[2] ?? 1024);
const tagCount = Number(process.argv[3] ?? 10_000);
const manifestGets = Number(process.argv[4] ?? 20_000);
const work = await mkdtemp(join(tmpdir(), 'stowage-bench-server-'));
const repoRoot = join(import.meta.dirname, '..', '..');

interface Target {
  readonly name: string;
  readonly host: string;
  readonly port: number;
  readonly agent: Agent;
  stop(): Promise<void>;
}

function call(
  target: Target,
  method: string,
  path: string,
  headers: Record<string, string | number> = {},
  body?: Buffer | Readable,
): Promise<{
  status: number;
  headers: Record<string, string | string[] | undefined>;
  bytes: number;
  text: string;
}> {
  return new Promise((resolve, reject) => {
    const req = request(
      { host: target.host, port: target.port, method, path, headers, agent: target.agent },
      (res) => {
        let bytes = 0;
        const small: Buffer[] = [];
        res.on('data', (chunk: Buffer) => {
          bytes += chunk.byteLength;
          if (bytes < 1 << 20) small.push(chunk);
        });
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            bytes,
            text: Buffer.concat(small).toString(),
          }),
        );
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    if (body === undefined || Buffer.isBuffer(body)) req.end(body);
    else body.pipe(req);
  });
}

function expectStatus(result: { status: number; text: string }, status: number, what: string): void {
  if (result.status !== status) throw new Error(`${what}: ${result.status} ${result.text.slice(0, 300)}`);
}

async function inParallel(
  count: number,
  limit: number,
  work: (i: number) => Promise<unknown>,
): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: limit }, async () => {
      while (next < count) await work(next++);
    }),
  );
}

async function startOurs(): Promise<Target> {
  const child: ChildProcess = spawn(
    process.execPath,
    [
      '--conditions=@stowage/source',
      '--import',
      'tsx',
      join(repoRoot, 'packages/registry-server/test/server-child.ts'),
      join(work, 'ours'),
      '0',
    ],
    { cwd: repoRoot, stdio: ['ignore', 'pipe', 'inherit'] },
  );
  const port = await new Promise<number>((resolve, reject) => {
    let out = '';
    child.stdout?.on('data', (chunk: Buffer) => {
      out += chunk.toString();
      const match = /port (\d+)/.exec(out);
      if (match) resolve(Number(match[1]));
    });
    child.once('exit', (code) => reject(new Error(`server exited with ${code}`)));
  });
  return {
    name: 'stowage',
    host: '127.0.0.1',
    port,
    agent: new Agent({ keepAlive: true, maxSockets: 32 }),
    stop: async () => {
      child.kill('SIGTERM');
    },
  };
}

async function startPeer(): Promise<Target> {
  const registry = await startDockerRegistry({ dataDir: join(work, 'peer') });
  return {
    name: 'docker-registry',
    host: '127.0.0.1',
    port: registry.port,
    agent: new Agent({ keepAlive: true, maxSockets: 32 }),
    stop: () => registry.stop(),
  };
}

try {
  // the blob, written once
  const file = join(work, 'blob');
  const out = createWriteStream(file);
  const hash = createHash('sha256');
  const chunk = Buffer.alloc(1 << 20);
  for (let i = 0; i < blobMiB; i++) {
    randomFillSync(chunk);
    hash.update(chunk);
    if (!out.write(chunk)) await new Promise<void>((resolve) => out.once('drain', () => resolve()));
  }
  await new Promise<void>((resolve, reject) =>
    out.end((error?: Error | null) => (error ? reject(error) : resolve())),
  );
  const digest = `sha256:${hash.digest('hex')}`;
  const size = blobMiB << 20;
  const image = randomImage({ layers: 1 });

  const targets = [await startOurs(), await startPeer()];
  const results = new Map<string, Map<string, number>>();
  const record = (target: Target, what: string, value: number) => {
    let map = results.get(what);
    if (!map) {
      map = new Map();
      results.set(what, map);
    }
    map.set(target.name, value);
  };

  const toPath = (l: string) => (l.startsWith('http') ? new URL(l).pathname + new URL(l).search : l);
  const withDigest = (path: string, d: string) => `${path}${path.includes('?') ? '&' : '?'}digest=${d}`;
  const chunkBytes = 64 << 20;
  // Blob transfers: three rounds, the targets alternating, the best of each kept; dirty pages
  // are flushed (sync) before every timed transfer so neither side pays for the other's writes.
  const settle = () => spawnSync('sync');
  for (let round = 0; round < 3; round++) {
    for (const target of round % 2 === 0 ? targets : [...targets].reverse()) {
      const best = (what: string, seconds: number) => {
        const value = blobMiB / seconds;
        const previous = results.get(what)?.get(target.name) ?? 0;
        if (value > previous) record(target, what, value);
      };
      settle();
      const monolithic = await time(async () => {
        const start = await call(target, 'POST', `/v2/bench/mono${round}/blobs/uploads/`);
        expectStatus(start, 202, 'start');
        const put = await call(
          target,
          'PUT',
          withDigest(toPath(String(start.headers.location)), digest),
          { 'content-length': size, 'content-type': 'application/octet-stream' },
          createReadStream(file, { highWaterMark: 1 << 20 }),
        );
        expectStatus(put, 201, 'monolithic PUT');
      });
      best(`monolithic push ${blobMiB} MiB (MiB/s)`, monolithic);

      settle();
      const chunked = await time(async () => {
        const start = await call(target, 'POST', `/v2/bench/chunked${round}/blobs/uploads/`);
        expectStatus(start, 202, 'start');
        let location = String(start.headers.location);
        for (let offset = 0; offset < size; offset += chunkBytes) {
          const end = Math.min(size, offset + chunkBytes) - 1;
          const patch = await call(
            target,
            'PATCH',
            toPath(location),
            {
              'content-length': end - offset + 1,
              'content-range': `${offset}-${end}`,
              'content-type': 'application/octet-stream',
            },
            createReadStream(file, { start: offset, end, highWaterMark: 1 << 20 }),
          );
          expectStatus(patch, 202, 'PATCH');
          location = String(patch.headers.location);
        }
        const put = await call(target, 'PUT', withDigest(toPath(location), digest), { 'content-length': 0 });
        expectStatus(put, 201, 'chunked PUT');
      });
      best(`chunked push ${blobMiB} MiB in 64 MiB chunks (MiB/s)`, chunked);

      settle();
      const pull = await time(async () => {
        const get = await call(target, 'GET', `/v2/bench/mono${round}/blobs/${digest}`);
        expectStatus(get, 200, 'GET blob');
        if (get.bytes !== size) throw new Error(`pulled ${get.bytes} bytes`);
      });
      best(`pull ${blobMiB} MiB (MiB/s)`, pull);
    }
  }

  for (const target of targets) {
    // an image to serve manifests of
    for (const blob of image.blobs) {
      const put = await call(target, 'POST', `/v2/bench/tags/blobs/uploads/`, {});
      const location = String(put.headers.location);
      const path = location.startsWith('http')
        ? new URL(location).pathname + new URL(location).search
        : location;
      expectStatus(
        await call(
          target,
          'PUT',
          `${path}${path.includes('?') ? '&' : '?'}digest=${blob.descriptor.digest}`,
          { 'content-length': blob.bytes.byteLength },
          Buffer.from(blob.bytes),
        ),
        201,
        'blob',
      );
    }
    const manifest = Buffer.from(image.manifest.bytes);
    const headers = { 'content-type': image.manifest.mediaType, 'content-length': manifest.byteLength };
    expectStatus(
      await call(target, 'PUT', '/v2/bench/tags/manifests/latest', headers, manifest),
      201,
      'manifest',
    );

    const gets = await time(() =>
      inParallel(manifestGets, 32, async () => {
        const get = await call(target, 'GET', '/v2/bench/tags/manifests/latest', {
          accept: image.manifest.mediaType,
        });
        expectStatus(get, 200, 'GET manifest');
      }),
    );
    record(target, `manifest GETs, 32 connections (requests/s)`, manifestGets / gets);

    const tagPuts = await time(() =>
      inParallel(tagCount, 16, async (i) => {
        expectStatus(
          await call(target, 'PUT', `/v2/bench/tags/manifests/t${i}`, headers, manifest),
          201,
          'tag',
        );
      }),
    );
    record(target, `${tagCount} tag PUTs, 16 at once (PUTs/s)`, tagCount / tagPuts);

    const list = await time(async () => {
      const listed = await call(target, 'GET', '/v2/bench/tags/tags/list');
      expectStatus(listed, 200, 'list');
      const count = (JSON.parse(listed.text) as { tags: string[] }).tags.length;
      if (count !== tagCount + 1) throw new Error(`${target.name} listed ${count} tags`);
    });
    record(target, `list ${tagCount + 1} tags (lists/s)`, 1 / list);
  }
  for (const [what, values] of results) {
    report({
      name: what,
      ours: values.get('stowage') as number,
      peer: values.get('docker-registry') as number,
      unit: what.match(/\(([^)]+)\)$/)?.[1] ?? '',
      lowerIsBetter: false,
    });
  }
  for (const target of targets) {
    target.agent.destroy();
    await target.stop();
  }
} finally {
  await rm(work, { recursive: true, force: true });
}
