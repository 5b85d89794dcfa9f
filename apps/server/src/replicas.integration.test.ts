// stowage-server replicas: three `stowage-server serve` processes (the BUILT
// binary, apps/server/dist/cli.js) on one PostgreSQL database and one blob
// root behave as one registry. A push through one is pulled through the
// others; a chunked upload's requests may land on any replica; concurrent
// moves of one tag from every replica end with one winner all of them answer;
// and a replica SIGKILLed in the middle of pushes loses nothing it
// acknowledged, while the others (and a replica started afterwards) serve it all.
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createPostgresDatabase, migrate } from '@stowage/metadata-db';
import type { Digest } from '@stowage/oci';
import { createRegistryClient, type RegistryClient } from '@stowage/registry-client';
import {
  collect,
  createTestDatabase,
  postgresPeer,
  pushImage,
  pushIndex,
  type RandomImage,
  type RandomManifest,
  randomBlob,
  randomImage,
  randomIndex,
  requirePeers,
  type TestDatabase,
} from '@stowage/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bin, ensureBinary, type Serving, serving, stopServers } from '../test/binary.js';
import { databaseUploadsDir } from './backend.js';

beforeAll(ensureBinary, 300_000);

interface Replica extends Serving {
  readonly name: string;
  /** A registry client that never retries (a failure is the test's to see). */
  readonly client: RegistryClient;
}

const clients: RegistryClient[] = [];

/** A registry client of `url` that never retries, with `options` on top. */
function clientOf(url: string, options: Partial<Parameters<typeof createRegistryClient>[0]> = {}) {
  const client = createRegistryClient({
    registry: new URL(url).host,
    auth: { useConfigFiles: false },
    referrersTagFallback: false,
    retry: { retries: 0 },
    ...options,
  });
  clients.push(client);
  return client;
}

/**
 * Starts `stowage-server serve --root <root> --addr 127.0.0.1:0 --database-url <url>`
 * and resolves once it logs `listening` (rejects with its stderr when it exits first).
 */
async function startReplica(name: string, root: string, databaseUrl: string): Promise<Replica> {
  const server = await serving(process.execPath, [
    bin,
    'serve',
    '--root',
    root,
    '--addr',
    '127.0.0.1:0',
    '--database-url',
    databaseUrl,
  ]).catch((error: Error) => {
    throw new Error(`replica ${name} ${error.message}`);
  });
  return { ...server, name, client: clientOf(server.url) };
}

/** The response's body as bytes. */
async function bytesOf(response: Response): Promise<Uint8Array> {
  return new Uint8Array(await response.arrayBuffer());
}

/** The OCI error codes of an error response. */
async function errorCodes(response: Response): Promise<string[]> {
  const body = (await response.json()) as { errors: { code: string }[] };
  return body.errors.map((error) => error.code);
}

/** `PUT /v2/<repository>/manifests/<reference>` through `replica`, raw: the status and the digest it echoed. */
async function putManifest(
  replica: Replica,
  repository: string,
  reference: string,
  manifest: RandomManifest,
): Promise<{ status: number; digest: string | null }> {
  const response = await fetch(`${replica.url}/v2/${repository}/manifests/${reference}`, {
    method: 'PUT',
    headers: { 'content-type': manifest.mediaType },
    body: manifest.bytes,
  });
  await response.arrayBuffer();
  return { status: response.status, digest: response.headers.get('docker-content-digest') };
}

/** Expects `replica` to serve the manifest under `reference` with exactly its bytes. */
async function expectManifest(
  replica: Replica,
  repository: string,
  reference: string,
  manifest: RandomManifest,
): Promise<void> {
  const got = await replica.client.getManifest(repository, reference);
  expect({ replica: replica.name, reference, digest: got.digest, mediaType: got.mediaType }).toEqual({
    replica: replica.name,
    reference,
    digest: manifest.digest,
    mediaType: manifest.mediaType,
  });
  expect(Buffer.from(got.bytes).equals(Buffer.from(manifest.bytes))).toBe(true);
}

/** Expects `replica` to serve the blob in `repository` with exactly these bytes. */
async function expectBlob(
  replica: Replica,
  repository: string,
  blob: { descriptor: { digest: Digest; size: number }; bytes: Uint8Array },
): Promise<void> {
  const got = await replica.client.getBlob(repository, blob.descriptor.digest);
  const bytes = await collect(got.stream);
  expect({ replica: replica.name, digest: got.digest, size: bytes.byteLength }).toEqual({
    replica: replica.name,
    digest: blob.descriptor.digest,
    size: blob.descriptor.size,
  });
  expect(Buffer.from(bytes).equals(Buffer.from(blob.bytes))).toBe(true);
}

/** Expects `replica` to serve the image: its manifest under each reference, and every blob. */
async function expectImage(
  replica: Replica,
  repository: string,
  image: RandomImage,
  references: readonly string[],
): Promise<void> {
  for (const reference of [...references, image.manifest.digest]) {
    await expectManifest(replica, repository, reference, image.manifest);
  }
  for (const blob of image.blobs) await expectBlob(replica, repository, blob);
}

/** A listing (`/v2/_catalog` or `/v2/<name>/tags/list`) as a replica answers it: status, body, Link. */
async function listing(replica: Replica, path: string) {
  const response = await fetch(`${replica.url}${path}`);
  return {
    status: response.status,
    body: (await response.json()) as unknown,
    link: response.headers.get('link'),
  };
}

/**
 * Follows a listing page by page (`n` each), each page from the next replica
 * in turn (the `Link` of one replica's answer is asked of another); answers the items.
 */
async function pagedAcross(
  replicas: readonly Replica[],
  path: string,
  key: 'repositories' | 'tags',
  n: number,
): Promise<string[]> {
  const items: string[] = [];
  let target: string | undefined = `${path}?n=${n}`;
  for (let page = 0; target !== undefined; page++) {
    expect(page).toBeLessThan(100);
    const replica = replicas[page % replicas.length] as Replica;
    const response = await fetch(`${replica.url}${target}`);
    expect(response.status).toBe(200);
    const body = (await response.json()) as Record<string, string[]>;
    items.push(...(body[key] ?? []));
    const link = response.headers.get('link');
    target = link ? (/^<([^>]+)>/.exec(link)?.[1] ?? undefined) : undefined;
  }
  return items;
}

const postgres = await postgresPeer();

describe('stowage-server replicas: three processes on one database and one blob root', () => {
  if (!requirePeers(postgres)) return;

  let database: TestDatabase;
  let root: string;
  let a: Replica;
  let b: Replica;
  let c: Replica;

  beforeAll(async () => {
    database = await createTestDatabase('stowage_server_replicas');
    const db = createPostgresDatabase({ connectionString: database.url });
    try {
      await migrate(db);
    } finally {
      await db.close();
    }
    root = await mkdtemp(join(tmpdir(), 'stowage-server-replicas-'));
    const started = await Promise.all(['A', 'B', 'C'].map((name) => startReplica(name, root, database.url)));
    [a, b, c] = started as [Replica, Replica, Replica];
    // three processes, three ports
    expect(new Set([a.url, b.url, c.url]).size).toBe(3);
    expect(new Set([a.child.pid, b.child.pid, c.child.pid]).size).toBe(3);
  }, 60_000);

  afterAll(async () => {
    for (const client of clients) await client.close().catch(() => undefined);
    await stopServers();
    await database?.drop().catch(() => undefined);
    if (root) await rm(root, { recursive: true, force: true });
  }, 30_000);

  it('serves through B and C what was pushed through A, and lists the same through each', async () => {
    const app = [1, 2, 3].map((i) => randomImage({ layers: 2, layerSize: 4096, seed: 9100 + i }));
    const tool = randomImage({ layers: 1, format: 'docker', seed: 9200 });
    const index = randomIndex({ platforms: ['linux/amd64', 'linux/arm64'], sharedLayers: 1, seed: 9300 });
    for (const [i, image] of app.entries()) {
      expect(await pushImage(a.client, 'replicas/app', image, `v${i + 1}`)).toBe(image.manifest.digest);
    }
    expect(await pushImage(a.client, 'replicas/app', app[2] as RandomImage, 'latest')).toBe(
      app[2]?.manifest.digest,
    );
    expect(await pushImage(a.client, 'replicas/tools', tool, 'v1')).toBe(tool.manifest.digest);
    expect(await pushIndex(a.client, 'replicas/tools', index, 'multi')).toBe(index.index.digest);

    for (const replica of [b, c]) {
      for (const [i, image] of app.entries()) {
        await expectImage(replica, 'replicas/app', image, i === 2 ? ['v3', 'latest'] : [`v${i + 1}`]);
      }
      await expectImage(replica, 'replicas/tools', tool, ['v1']);
      await expectManifest(replica, 'replicas/tools', 'multi', index.index);
      await expectManifest(replica, 'replicas/tools', index.index.digest, index.index);
      for (const image of index.images) await expectImage(replica, 'replicas/tools', image, []);
      // a blob of another repository is not served through the wrong one
      expect(await replica.client.headBlob('replicas/app', tool.layers[0]?.descriptor.digest as Digest)).toBe(
        undefined,
      );
    }

    // the listings, whole and paged, are the same answers through every replica
    const expected = {
      catalog: { repositories: ['replicas/app', 'replicas/tools'] },
      app: { name: 'replicas/app', tags: ['latest', 'v1', 'v2', 'v3'] },
      tools: { name: 'replicas/tools', tags: ['multi', 'v1'] },
    };
    for (const replica of [a, b, c]) {
      expect(await listing(replica, '/v2/_catalog')).toEqual({
        status: 200,
        body: expected.catalog,
        link: null,
      });
      expect(await listing(replica, '/v2/replicas/app/tags/list')).toEqual({
        status: 200,
        body: expected.app,
        link: null,
      });
      expect(await listing(replica, '/v2/replicas/tools/tags/list')).toEqual({
        status: 200,
        body: expected.tools,
        link: null,
      });
      const firstPage = await listing(replica, '/v2/replicas/app/tags/list?n=2');
      expect(firstPage).toEqual({
        status: 200,
        body: { name: 'replicas/app', tags: ['latest', 'v1'] },
        link: '</v2/replicas/app/tags/list?n=2&last=v1>; rel="next"',
      });
    }
    expect(await pagedAcross([a, b, c], '/v2/replicas/app/tags/list', 'tags', 1)).toEqual(expected.app.tags);
    expect(await pagedAcross([c, a, b], '/v2/_catalog', 'repositories', 1)).toEqual(
      expected.catalog.repositories,
    );
  }, 30_000);

  it('takes a chunked upload whose requests alternate between replicas, and refuses an out-of-order chunk on another', async () => {
    const blob = randomBlob(700_000, { seed: 9400 });
    const { digest } = blob.descriptor;
    const repository = 'replicas/chunked';
    const started = await fetch(`${a.url}/v2/${repository}/blobs/uploads/`, { method: 'POST' });
    await started.arrayBuffer();
    expect(started.status).toBe(202);
    const location = started.headers.get('location') as string;
    const id = started.headers.get('docker-upload-uuid') as string;
    expect(location).toBe(`/v2/${repository}/blobs/uploads/${id}`);
    expect(started.headers.get('range')).toBe('0-0');
    const staged = join(databaseUploadsDir(root), id);
    expect(existsSync(staged)).toBe(true);

    async function patch(replica: Replica, start: number, end: number) {
      const response = await fetch(`${replica.url}${location}`, {
        method: 'PATCH',
        headers: { 'content-type': 'application/octet-stream', 'content-range': `${start}-${end - 1}` },
        body: blob.bytes.subarray(start, end),
      });
      return response;
    }
    /** The session's offset as each replica answers it. */
    async function ranges(): Promise<(string | null)[]> {
      return Promise.all(
        [a, b, c].map(async (replica) => {
          const response = await fetch(`${replica.url}${location}`);
          await response.arrayBuffer();
          expect(response.status).toBe(204);
          return response.headers.get('range');
        }),
      );
    }

    const chunks: [Replica, number, number][] = [
      [b, 0, 200_000],
      [c, 200_000, 350_000],
      [a, 350_000, 600_000],
    ];
    for (const [i, [replica, start, end]] of chunks.entries()) {
      const response = await patch(replica, start, end);
      await response.arrayBuffer();
      expect({ replica: replica.name, status: response.status }).toEqual({
        replica: replica.name,
        status: 202,
      });
      expect(response.headers.get('range')).toBe(`0-${end - 1}`);
      expect(response.headers.get('location')).toBe(location);
      expect(await ranges()).toEqual([`0-${end - 1}`, `0-${end - 1}`, `0-${end - 1}`]);
      if (i === 1) {
        // at 350000 (the chunk went to C): a chunk past the offset, to A, and one behind it, to B
        const ahead = await patch(a, 360_000, 380_000);
        expect(ahead.status).toBe(416);
        expect(await errorCodes(ahead)).toEqual(['BLOB_UPLOAD_INVALID']);
        const behind = await patch(b, 100_000, 150_000);
        expect(behind.status).toBe(416);
        expect(await errorCodes(behind)).toEqual(['BLOB_UPLOAD_INVALID']);
        // the session is unchanged, as every replica sees it
        expect(await ranges()).toEqual(['0-349999', '0-349999', '0-349999']);
      }
    }

    // the last chunk with the PUT, to B
    const finished = await fetch(`${b.url}${location}?digest=${digest}`, {
      method: 'PUT',
      headers: {
        'content-type': 'application/octet-stream',
        'content-range': `600000-${blob.bytes.byteLength - 1}`,
      },
      body: blob.bytes.subarray(600_000),
    });
    await finished.arrayBuffer();
    expect(finished.status).toBe(201);
    expect(finished.headers.get('docker-content-digest')).toBe(digest);
    expect(finished.headers.get('location')).toBe(`/v2/${repository}/blobs/${digest}`);

    for (const replica of [a, b, c]) {
      const head = await fetch(`${replica.url}/v2/${repository}/blobs/${digest}`, { method: 'HEAD' });
      expect([replica.name, head.status, head.headers.get('content-length')]).toEqual([
        replica.name,
        200,
        String(blob.bytes.byteLength),
      ]);
      const got = await fetch(`${replica.url}/v2/${repository}/blobs/${digest}`);
      expect(got.status).toBe(200);
      expect(got.headers.get('docker-content-digest')).toBe(digest);
      expect(Buffer.from(await bytesOf(got)).equals(Buffer.from(blob.bytes))).toBe(true);
      // the session is over everywhere
      const status = await fetch(`${replica.url}${location}`);
      expect(status.status).toBe(404);
      expect(await errorCodes(status)).toEqual(['BLOB_UPLOAD_UNKNOWN']);
    }
    expect(existsSync(staged)).toBe(false);
  }, 30_000);

  it('ends concurrent moves of one tag from every replica with one winner that every replica answers', async () => {
    // a new namespace and repository, created by the first of the concurrent pushes
    const repository = 'race/app';
    const replicas = [a, b, c];
    const base = randomBlob(8192, { seed: 9500 });
    const images = Array.from({ length: 24 }, (_, i) =>
      randomImage({ layers: 1, layerSize: 2048, sharedLayers: [base], seed: 9600 + i }),
    );
    const digests = new Set<string>(images.map((image) => image.manifest.digest));
    expect(digests.size).toBe(24);
    // every image's blobs at once, the shared base from every replica
    await Promise.all(
      images.map(async (image, i) => {
        const replica = replicas[i % 3] as Replica;
        for (const blob of image.blobs) {
          const info = await replica.client.putBlob(repository, blob.bytes, {
            digest: blob.descriptor.digest,
            size: blob.descriptor.size,
          });
          expect(info.digest).toBe(blob.descriptor.digest);
        }
      }),
    );

    async function race(round: number): Promise<void> {
      const results = await Promise.all(
        images.map((image, i) =>
          putManifest(replicas[(i + round) % 3] as Replica, repository, 'latest', image.manifest),
        ),
      );
      expect(results).toEqual(images.map((image) => ({ status: 201, digest: image.manifest.digest })));
      const answers = await Promise.all(
        replicas.map(async (replica) => {
          const response = await fetch(`${replica.url}/v2/${repository}/manifests/latest`, {
            headers: { accept: images[0]?.manifest.mediaType as string },
          });
          expect(response.status).toBe(200);
          return {
            digest: response.headers.get('docker-content-digest') as string,
            bytes: await bytesOf(response),
          };
        }),
      );
      const winner = answers[0]?.digest as string;
      expect(digests.has(winner)).toBe(true);
      expect(answers.map((answer) => answer.digest)).toEqual([winner, winner, winner]);
      const won = images.find((image) => image.manifest.digest === winner) as RandomImage;
      for (const answer of answers)
        expect(Buffer.from(answer.bytes).equals(Buffer.from(won.manifest.bytes))).toBe(true);
      for (const replica of replicas) {
        expect((await replica.client.headManifest(repository, 'latest'))?.digest).toBe(winner);
        expect(await listing(replica, `/v2/${repository}/tags/list`)).toEqual({
          status: 200,
          body: { name: repository, tags: ['latest'] },
          link: null,
        });
      }
    }

    // the first round creates the manifests as it moves the tag; the second only moves it
    await race(0);
    await race(1);

    // every manifest pushed is still there by digest, through every replica, with its blobs
    for (const [i, image] of images.entries()) {
      const replica = replicas[(i + 2) % 3] as Replica;
      await expectManifest(replica, repository, image.manifest.digest, image.manifest);
      for (const blob of image.blobs) {
        expect(await replica.client.headBlob(repository, blob.descriptor.digest)).toEqual({
          digest: blob.descriptor.digest,
          size: blob.descriptor.size,
        });
      }
    }
    await expectBlob(c, repository, base);
  }, 30_000);

  it('loses nothing a replica acknowledged before it was SIGKILLed mid-push; the others, and a new replica, serve it all', async () => {
    const repository = 'replicas/crash';
    const victim = c;
    const survivors = [a, b];
    // two pushers whose blobs go in one request, two whose blobs go in chunks (POST, PATCHes, PUT)
    const victimClients = [
      victim.client,
      clientOf(victim.url),
      clientOf(victim.url, { singleRequestMaxBytes: 0, monolithicMaxBytes: 8192, chunkSize: 8192 }),
      clientOf(victim.url, { singleRequestMaxBytes: 0, monolithicMaxBytes: 8192, chunkSize: 8192 }),
    ];
    const acknowledged: { tag: string; image: RandomImage }[] = [];
    const attempted = new Map<string, RandomImage>();
    const blobsAcknowledged = new Map<
      Digest,
      { descriptor: { digest: Digest; size: number }; bytes: Uint8Array }
    >();
    const failedBeforeKill: unknown[] = [];
    const failedAfterKill: unknown[] = [];
    let killed = false;
    let enough: () => void = () => {};
    const enoughAcknowledged = new Promise<void>((resolve) => {
      enough = resolve;
    });

    async function pusher(p: number): Promise<void> {
      const client = victimClients[p] as RegistryClient;
      for (let n = 0; n < 500; n++) {
        const image = randomImage({ layers: 2, layerSize: 24_576 + 512 * p, seed: 100_000 + p * 1000 + n });
        const tag = `p${p}-${n}`;
        attempted.set(tag, image);
        try {
          for (const blob of image.blobs) {
            const info = await client.putBlob(repository, blob.bytes, {
              digest: blob.descriptor.digest,
              size: blob.descriptor.size,
            });
            expect(info.digest).toBe(blob.descriptor.digest);
            blobsAcknowledged.set(blob.descriptor.digest, blob);
          }
          const put = await putManifest(victim, repository, tag, image.manifest);
          if (put.status !== 201) throw new Error(`PUT ${tag} answered ${put.status}`);
          expect(put.digest).toBe(image.manifest.digest);
          acknowledged.push({ tag, image });
          if (acknowledged.length >= 16) enough();
        } catch (error) {
          (killed ? failedAfterKill : failedBeforeKill).push(error);
          return;
        }
      }
    }

    // an upload session on the victim whose first two chunks it acknowledged
    const resumed = randomBlob(90_000, { seed: 9750 });
    const opened = await fetch(`${victim.url}/v2/${repository}/blobs/uploads/`, { method: 'POST' });
    await opened.arrayBuffer();
    expect(opened.status).toBe(202);
    const session = opened.headers.get('location') as string;
    for (const [start, end] of [
      [0, 30_000],
      [30_000, 50_000],
    ] as const) {
      const chunk = await fetch(`${victim.url}${session}`, {
        method: 'PATCH',
        headers: { 'content-type': 'application/octet-stream', 'content-range': `${start}-${end - 1}` },
        body: resumed.bytes.subarray(start, end),
      });
      await chunk.arrayBuffer();
      expect([chunk.status, chunk.headers.get('range')]).toEqual([202, `0-${end - 1}`]);
    }

    const pushing = Promise.all([0, 1, 2, 3].map(pusher));
    await Promise.race([enoughAcknowledged, pushing]);
    killed = true;
    void victim.kill('SIGKILL');
    await pushing;
    expect(await victim.exited).toBe('SIGKILL');
    // no push failed while the victim lived, and every pusher was cut off mid-push by the kill
    expect(failedBeforeKill).toEqual([]);
    expect(failedAfterKill).toHaveLength(4);
    expect(acknowledged.length).toBeGreaterThanOrEqual(16);

    // the survivors are ready, and serve every acknowledged manifest with all its blobs, and every acknowledged blob
    for (const replica of survivors) {
      const ready = await fetch(`${replica.url}/readyz`);
      expect([replica.name, ready.status, await ready.text()]).toEqual([replica.name, 200, 'ready\n']);
    }
    for (const [i, { tag, image }] of acknowledged.entries()) {
      await expectImage(survivors[i % 2] as Replica, repository, image, [tag]);
    }
    for (const blob of blobsAcknowledged.values()) {
      for (const replica of survivors) {
        expect(await replica.client.headBlob(repository, blob.descriptor.digest)).toEqual({
          digest: blob.descriptor.digest,
          size: blob.descriptor.size,
        });
      }
    }

    // the victim's session goes on through the survivors from the offset it acknowledged
    const status = await fetch(`${a.url}${session}`);
    await status.arrayBuffer();
    expect([status.status, status.headers.get('range')]).toEqual([204, '0-49999']);
    const rest = await fetch(`${b.url}${session}`, {
      method: 'PATCH',
      headers: { 'content-type': 'application/octet-stream', 'content-range': '50000-79999' },
      body: resumed.bytes.subarray(50_000, 80_000),
    });
    await rest.arrayBuffer();
    expect([rest.status, rest.headers.get('range')]).toEqual([202, '0-79999']);
    const committed = await fetch(`${a.url}${session}?digest=${resumed.descriptor.digest}`, {
      method: 'PUT',
      headers: { 'content-type': 'application/octet-stream', 'content-range': '80000-89999' },
      body: resumed.bytes.subarray(80_000),
    });
    await committed.arrayBuffer();
    expect([committed.status, committed.headers.get('docker-content-digest')]).toEqual([
      201,
      resumed.descriptor.digest,
    ]);

    // and keep serving: a push through B (one blob in chunks) pulled through A
    const after = randomImage({ layers: 2, layerSize: 20_000, seed: 9700 });
    const chunkedB = clientOf(b.url, { singleRequestMaxBytes: 0, monolithicMaxBytes: 8192, chunkSize: 8192 });
    expect(await pushImage(chunkedB, repository, after, 'after-kill')).toBe(after.manifest.digest);
    await expectImage(a, repository, after, ['after-kill']);

    // a replica started afterwards on the same root and database serves everything too
    const d = await startReplica('D', root, database.url);
    const ready = await fetch(`${d.url}/readyz`);
    expect([ready.status, await ready.text()]).toEqual([200, 'ready\n']);
    await expectBlob(d, repository, resumed);
    for (const { tag, image } of acknowledged) await expectImage(d, repository, image, [tag]);
    await expectImage(d, repository, after, ['after-kill']);
    const tags = await listing(d, `/v2/${repository}/tags/list`);
    expect(tags.status).toBe(200);
    const listed = (tags.body as { tags: string[] }).tags;
    for (const { tag } of acknowledged) expect(listed).toContain(tag);
    expect(listed).toContain('after-kill');
    // a manifest whose PUT the kill cut off (one per pusher at most) may be there or not; one that is
    // there is whole, with every blob
    const cutOff = listed.filter(
      (tag) => tag !== 'after-kill' && !acknowledged.some((ack) => ack.tag === tag),
    );
    expect(cutOff.length).toBeLessThanOrEqual(4);
    for (const tag of cutOff) await expectImage(d, repository, attempted.get(tag) as RandomImage, [tag]);
    const catalog = await listing(d, '/v2/_catalog');
    expect(catalog.status).toBe(200);
    expect((catalog.body as { repositories: string[] }).repositories).toContain(repository);
    for (const replica of [a, b]) {
      expect(await listing(replica, `/v2/${repository}/tags/list`)).toEqual(tags);
      expect(await listing(replica, '/v2/_catalog')).toEqual(catalog);
    }
    // a chunked upload started on the new replica and finished on a survivor
    const blob = randomBlob(30_000, { seed: 9800 });
    const started = await fetch(`${d.url}/v2/${repository}/blobs/uploads/`, { method: 'POST' });
    await started.arrayBuffer();
    expect(started.status).toBe(202);
    const location = started.headers.get('location') as string;
    const finished = await fetch(`${a.url}${location}?digest=${blob.descriptor.digest}`, {
      method: 'PUT',
      headers: { 'content-type': 'application/octet-stream' },
      body: blob.bytes,
    });
    await finished.arrayBuffer();
    expect(finished.status).toBe(201);
    await expectBlob(b, repository, blob);
  }, 60_000);
});
