// Robustness: 10,000 random and mutated requests against the server over the
// image store. No 5xx, no crash, every refusal an OCI error body, and nothing
// outside the store's root is ever touched.
import { randomInt } from 'node:crypto';
import { mkdir, mkdtemp, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { Agent, request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createImageStore, type ImageStore } from '@stowage/image-store';
import { digestOf } from '@stowage/oci';
import { pushImage, randomImage } from '@stowage/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Served, serve } from '../test/serve.js';

const TOTAL = 10_000;

let work: string;
let store: ImageStore;
let served: Served;
const image = randomImage({ layers: 2 });

/** Every file under `dir` with size and mtime: what must not change outside the root. */
async function snapshot(dir: string, skip: string): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(dir, { recursive: true, withFileTypes: true })) {
    const path = join(entry.parentPath, entry.name);
    if (path === skip || path.startsWith(`${skip}/`)) continue;
    const info = await stat(path);
    out.push(`${path} ${info.size} ${info.mtimeMs}`);
  }
  return out.sort();
}

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'stowage-fuzz-'));
  // bait outside the root, at the places a traversal would reach
  await mkdir(join(work, 'outside/blobs/sha256'), { recursive: true });
  await writeFile(join(work, 'outside/secret'), 'do not touch');
  await writeFile(join(work, 'index.json'), '{}');
  store = await createImageStore({ root: join(work, 'root') });
  await pushImage(store, 'fuzz/app', image, 'v1');
  served = await serve({ registry: store, limits: { maxManifestSize: 256 * 1024, bodyIdleTimeoutMs: 2000 } });
});

afterAll(async () => {
  await served?.close();
  await store?.close();
  await rm(work, { recursive: true, force: true });
});

const pick = <T>(items: readonly T[]): T => items[randomInt(items.length)] as T;

function randomText(max: number): string {
  const alphabet = 'abcXYZ019._-/:%@!?#&=+ \u0000\u00e9\u202e..';
  let out = '';
  const length = randomInt(max + 1);
  for (let i = 0; i < length; i++) out += alphabet[randomInt(alphabet.length)];
  return out;
}

function name(): string {
  return pick([
    'fuzz/app',
    'fuzz/other',
    'a',
    '..',
    '%2e%2e',
    '..%2f..%2foutside',
    'a/../../outside',
    '%2E%2E/%2E%2E/outside',
    'UPPER',
    'a//b',
    '/abs',
    'x'.repeat(randomInt(200, 400)),
    'fuzz/app/blobs',
    'fuzz/index.json',
    encodeURIComponent(randomText(20)),
    randomText(30),
  ]);
}

function digest(): string {
  return pick([
    image.manifest.digest,
    image.config.descriptor.digest,
    digestOf(String(Math.random())),
    `sha512:${'a'.repeat(128)}`,
    'sha256:short',
    `md5:${'0'.repeat(32)}`,
    `sha256:${'A'.repeat(64)}`,
    '../../outside/secret',
    `sha256:..%2f..%2f${'0'.repeat(58)}`,
    randomText(70),
  ]);
}

function mutatedManifest(): Uint8Array {
  const bytes = Buffer.from(image.manifest.bytes);
  switch (randomInt(6)) {
    case 0:
      for (let i = 0; i < 3; i++) bytes[randomInt(bytes.length)] = randomInt(256);
      return bytes;
    case 1:
      return bytes.subarray(0, randomInt(bytes.length));
    case 2: {
      const value = JSON.parse(bytes.toString()) as Record<string, unknown>;
      delete value[pick(['config', 'layers', 'schemaVersion', 'mediaType'])];
      return Buffer.from(JSON.stringify(value));
    }
    case 3: {
      const value = JSON.parse(bytes.toString()) as { layers: { digest: string; size: number }[] };
      const layer = value.layers[0];
      if (layer) {
        layer.digest = digest();
        layer.size = pick([-1, 0, 2 ** 60, 1.5, Number.NaN]);
      }
      return Buffer.from(JSON.stringify(value));
    }
    case 4:
      return Buffer.from(JSON.stringify(pick([null, [], 'x', 1, { manifests: 'no' }, { schemaVersion: 1 }])));
    default:
      return Buffer.from(randomText(200));
  }
}

/** A method the route serves, mostly. */
function fitting(route: string): string {
  if (route.includes('/blobs/uploads/')) {
    return route.endsWith('/uploads/') ? 'POST' : pick(['GET', 'PATCH', 'PUT', 'DELETE']);
  }
  if (route.includes('/manifests/')) return pick(['GET', 'HEAD', 'PUT', 'PUT', 'DELETE']);
  if (route.includes('/blobs/')) return pick(['GET', 'HEAD', 'DELETE']);
  return 'GET';
}

interface FuzzRequest {
  method: string;
  path: string;
  headers: Record<string, string>;
  body?: Uint8Array;
}

function fuzzRequest(uploads: string[]): FuzzRequest {
  const repo = name();
  const route = pick([
    `/v2/${repo}/tags/list`,
    `/v2/${repo}/manifests/${pick(['v1', 'latest', digest(), randomText(10), '-bad', 'a'.repeat(200)])}`,
    `/v2/${repo}/blobs/${digest()}`,
    `/v2/${repo}/blobs/uploads/`,
    `/v2/${repo}/blobs/uploads/${pick([...uploads, randomText(40), '../../x', '0'.repeat(32)])}`,
    `/v2/${repo}/referrers/${digest()}`,
    '/v2/_catalog',
    '/v2/',
    `/v2/${randomText(50)}`,
    `/${randomText(30)}`,
  ]);
  const query = pick([
    '',
    `?n=${pick(['1', '0', '-1', 'x', '99999999999', ''])}&last=${encodeURIComponent(randomText(10))}`,
    `?digest=${encodeURIComponent(digest())}`,
    `?mount=${encodeURIComponent(digest())}&from=${encodeURIComponent(name())}`,
    `?artifactType=${encodeURIComponent(randomText(20))}`,
    `?${randomText(20)}`,
  ]);
  const headers: Record<string, string> = {};
  if (randomInt(2)) {
    headers['content-type'] = pick([
      image.manifest.mediaType,
      'application/vnd.docker.distribution.manifest.v2+json',
      'application/vnd.oci.image.index.v1+json',
      'application/vnd.docker.distribution.manifest.v1+prettyjws',
      'application/octet-stream',
      'text/plain; charset=utf-8',
      randomText(20).replace(/[^\x20-\x7e]/g, 'x'),
    ]);
  }
  if (randomInt(3) === 0)
    headers['content-range'] = pick(['0-9', '5-1', '0-', 'bytes=0-99', 'x', '10-20/30', '0-999999999999999']);
  if (randomInt(3) === 0)
    headers.range = pick(['bytes=0-1', 'bytes=5-', 'bytes=9-1', 'bytes=-5', 'items=1', 'bytes=999999-']);
  if (randomInt(4) === 0)
    headers.accept = pick(['*/*', 'application/json', randomText(10).replace(/[^\x20-\x7e]/g, 'x')]);
  const body = pick([
    undefined,
    undefined,
    mutatedManifest(),
    image.manifest.bytes,
    Buffer.from(randomText(500)),
  ]);
  return {
    method:
      randomInt(5) === 0
        ? pick(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS', 'TRACE'])
        : fitting(route),
    path: [...(route + query)].map((c) => (c > ' ' && c < '\u007f' ? c : encodeURIComponent(c))).join(''),
    headers,
    ...(body ? { body } : {}),
  };
}

const agent = new Agent({ keepAlive: true, maxSockets: 16 });

function send(req: FuzzRequest): Promise<{ status: number; headers: Record<string, unknown>; body: string }> {
  const url = new URL(served.url);
  return new Promise((resolve, reject) => {
    const outgoing = request(
      {
        host: url.hostname,
        port: url.port,
        method: req.method,
        path: req.path,
        agent,
        headers: { ...req.headers, ...(req.body ? { 'content-length': String(req.body.byteLength) } : {}) },
      },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          body += chunk;
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
        res.on('error', reject);
      },
    );
    outgoing.on('error', reject);
    outgoing.end(req.body);
  });
}

describe('registry-server under fuzzing', () => {
  it(`answers ${TOTAL} random and mutated requests without a 5xx, each refusal an OCI error`, async () => {
    const before = await snapshot(work, join(work, 'root'));
    const uploads: string[] = [];
    const failures: string[] = [];
    let sent = 0;
    const statuses = new Map<number, number>();
    await Promise.all(
      Array.from({ length: 16 }, async () => {
        while (sent < TOTAL) {
          sent++;
          // every 50th request a well-formed push, so success paths run under the same load
          const req: FuzzRequest =
            sent % 50 === 0
              ? (() => {
                  const bytes = Buffer.from(`blob ${sent} ${Math.random()}`);
                  return {
                    method: 'POST',
                    path: `/v2/fuzz/app/blobs/uploads/?digest=${digestOf(bytes)}`,
                    headers: {},
                    body: bytes,
                  };
                })()
              : fuzzRequest(uploads);
          let res: Awaited<ReturnType<typeof send>>;
          try {
            res = await send(req);
          } catch (error) {
            failures.push(`${req.method} ${req.path}: ${(error as Error).message}`);
            continue;
          }
          statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
          const location = res.headers.location;
          if (typeof location === 'string' && location.includes('/blobs/uploads/')) {
            uploads.push(location.split('/blobs/uploads/')[1] as string);
          }
          if (res.status >= 500) failures.push(`${req.method} ${req.path} -> ${res.status} ${res.body}`);
          if (res.status >= 400 && req.method !== 'HEAD') {
            try {
              const parsed = JSON.parse(res.body) as { errors: { code: unknown; message: unknown }[] };
              if (
                typeof parsed.errors[0]?.code !== 'string' ||
                typeof parsed.errors[0]?.message !== 'string'
              ) {
                throw new Error('no code');
              }
            } catch {
              failures.push(
                `${req.method} ${req.path} -> ${res.status} without an OCI error body: ${res.body}`,
              );
            }
          }
        }
      }),
    );
    expect(failures.slice(0, 20)).toEqual([]);
    // a healthy server afterwards, and a store with nothing corrupt in it (the fuzzer may
    // legitimately delete tags, manifests and blobs, so only corruption counts)
    expect((await send({ method: 'GET', path: '/v2/', headers: {} })).status).toBe(200);
    const report = await store.fsck();
    expect(report.problems.filter((p) => p.kind === 'corrupt-blob' || p.kind === 'invalid-manifest')).toEqual(
      [],
    );
    expect(report.leftovers).toEqual([]);
    // nothing outside the root was created, changed or removed
    expect(await snapshot(work, join(work, 'root'))).toEqual(before);
    // the run exercised success and refusal alike
    expect([...statuses.keys()].some((s) => s < 300)).toBe(true);
    expect(
      [...statuses.keys()].filter((s) => s >= 400).length,
      JSON.stringify([...statuses]),
    ).toBeGreaterThanOrEqual(4);
    expect(statuses.get(201) ?? 0, JSON.stringify([...statuses])).toBeGreaterThanOrEqual(TOTAL / 50);
    agent.destroy();
  }, 180_000);
});
