// copyImage between every ordered pair of the four kinds of store: the
// in-memory registry, the image store, docker-registry (distribution 2.8)
// through the client, stowage-server (over a memory registry) through the
// client. One docker-registry and small blobs keep the whole matrix to seconds.
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { type CopyProgressEvent, type CopyResult, copyImage } from '@stowage/copy';
import { createImageStore, type ImageStore } from '@stowage/image-store';
import { type Digest, digestOf, isStowageError, type Registry } from '@stowage/oci';
import { createRegistryClient, type RegistryClient } from '@stowage/registry-client';
import { createRegistryHandler } from '@stowage/registry-server';
import {
  createMemoryRegistry,
  type DockerRegistry,
  pushImage,
  pushIndex,
  randomImage,
  randomIndex,
  requirePeers,
  spyRegistry,
  startDockerRegistry,
} from '@stowage/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const exec = promisify(execFile);

const kinds = ['memory', 'image-store', 'docker-registry', 'stowage-server'] as const;
type Kind = (typeof kinds)[number];

interface Store {
  readonly kind: Kind;
  readonly registry: Registry;
  /** A second object of the same origin (a second client of the same host, a second store on the same root). */
  readonly twin: Registry;
  /** The manifest under a tag, as a third party reads it (skopeo where there is a wire or a layout). */
  raw(repository: string, tag: string): Promise<Uint8Array>;
}

/** Whether a destination of this kind takes a sparse index (ours do; docker-registry 2.8 does not). */
const takesSparse: Record<Kind, boolean> = {
  memory: true,
  'image-store': true,
  'docker-registry': false,
  'stowage-server': true,
};

async function skopeoRaw(reference: string, ...flags: string[]): Promise<Uint8Array> {
  const { stdout } = await exec('skopeo', ['inspect', '--raw', ...flags, reference], {
    encoding: 'buffer',
    maxBuffer: 16 << 20,
  });
  return new Uint8Array(stdout);
}

/** Counts the calls made to a registry, without changing what it does. */
function counted(registry: Registry): { registry: Registry; count(method: string): number } {
  const spy = spyRegistry(registry);
  return { registry: spy, count: (method) => spy.count(method) };
}

const json = (bytes: Uint8Array) =>
  JSON.parse(Buffer.from(bytes).toString()) as {
    manifests: { digest: string; platform?: { architecture: string } }[];
  };

describe('copyImage between every pair of stores', () => {
  if (!requirePeers('docker-registry', 'skopeo')) return;

  const cleanups: (() => Promise<unknown>)[] = [];
  const primary = new Map<Kind, Store>();
  const secondary = new Map<Kind, Store>();

  function client(host: string): RegistryClient {
    const created = createRegistryClient({ registry: host, auth: { useConfigFiles: false } });
    cleanups.push(() => created.close());
    return created;
  }

  function memoryStore(): Store {
    const registry = createMemoryRegistry();
    return {
      kind: 'memory',
      registry,
      // the same store seen through another object: same origin
      twin: { ...registry },
      raw: async (repository, tag) => (await registry.getManifest(repository, tag)).bytes,
    };
  }

  async function imageStore(): Promise<Store> {
    const root = await mkdtemp(join(tmpdir(), 'stowage-copy-matrix-'));
    const store: ImageStore = await createImageStore({ root });
    const twin: ImageStore = await createImageStore({ root });
    cleanups.push(async () => {
      await twin.close();
      await store.close();
      await rm(root, { recursive: true, force: true });
    });
    return {
      kind: 'image-store',
      registry: store,
      twin,
      raw: async (repository, tag) => {
        await store.flush();
        return await skopeoRaw(`oci:${join(root, repository)}:${tag}`);
      },
    };
  }

  async function stowageServer(): Promise<Store> {
    const handler = createRegistryHandler({ registry: createMemoryRegistry() });
    const server: Server = createServer((request, response) => void handler(request, response));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    cleanups.push(
      () =>
        new Promise<void>((resolve) => {
          server.closeAllConnections();
          server.close(() => resolve());
        }),
    );
    const host = `127.0.0.1:${(server.address() as AddressInfo).port}`;
    return {
      kind: 'stowage-server',
      registry: client(host),
      twin: client(host),
      raw: (repository, tag) => skopeoRaw(`docker://${host}/${repository}:${tag}`, '--tls-verify=false'),
    };
  }

  beforeAll(async () => {
    const docker: DockerRegistry = await startDockerRegistry();
    cleanups.push(() => docker.stop());
    const dockerStore: Store = {
      kind: 'docker-registry',
      registry: client(docker.host),
      twin: client(docker.host),
      raw: (repository, tag) =>
        skopeoRaw(`docker://${docker.host}/${repository}:${tag}`, '--tls-verify=false'),
    };
    primary.set('memory', memoryStore());
    secondary.set('memory', memoryStore());
    primary.set('image-store', await imageStore());
    secondary.set('image-store', await imageStore());
    primary.set('docker-registry', dockerStore);
    // one docker-registry for the file: its pair with itself is a pair of two clients of one origin
    secondary.set('docker-registry', { ...dockerStore, registry: dockerStore.twin });
    primary.set('stowage-server', await stowageServer());
    secondary.set('stowage-server', await stowageServer());
  });

  afterAll(async () => {
    for (const cleanup of cleanups.reverse()) await cleanup();
  });

  for (const from of kinds) {
    for (const to of kinds) {
      describe(`${from} → ${to}`, () => {
        const pair = `${from}-to-${to}`;
        const source = () => primary.get(from) as Store;
        const destination = () => (from === to ? secondary.get(to) : primary.get(to)) as Store;
        const sameOrigin = () => source().registry.origin === destination().registry.origin;
        const moved = (result: CopyResult) => (sameOrigin() ? result.blobsMounted : result.blobsCopied);

        it('copies a single image byte for byte', async () => {
          const image = randomImage({ layers: 2, layerSize: 2048 });
          await pushImage(source().registry, `${pair}/src`, image, 'v1');
          const result = await copyImage(
            { registry: source().registry, repository: `${pair}/src`, reference: 'v1' },
            { registry: destination().registry, repository: `${pair}/single`, tag: 'v1' },
          );
          expect(result).toMatchObject({ digest: image.manifest.digest, manifests: 1, blobsSkipped: 0 });
          expect(moved(result)).toBe(3);
          const copied = await destination().registry.getManifest(`${pair}/single`, 'v1');
          expect(Buffer.from(copied.bytes).equals(Buffer.from(image.manifest.bytes))).toBe(true);
          for (const blob of image.blobs) {
            expect(
              await destination().registry.headBlob(`${pair}/single`, blob.descriptor.digest),
            ).toMatchObject({
              size: blob.descriptor.size,
            });
          }
        });

        it('copies a two-platform index with its digest, each shared layer read and moved once', async () => {
          const index = randomIndex({
            platforms: ['linux/amd64', 'linux/arm64'],
            sharedLayers: 1,
            layersPerImage: 1,
            layerSize: 2048,
          });
          await pushIndex(source().registry, `${pair}/src`, index, 'multi');
          const reads = counted(source().registry);
          const events: CopyProgressEvent[] = [];
          const result = await copyImage(
            { registry: reads.registry, repository: `${pair}/src`, reference: 'multi' },
            { registry: destination().registry, repository: `${pair}/multi`, tag: 'multi' },
            { onProgress: (event) => events.push(event) },
          );
          // 1 shared layer + 2 own layers + 2 configs
          const unique = [...new Set(index.images.flatMap((i) => i.blobs.map((b) => b.descriptor.digest)))];
          expect(unique).toHaveLength(5);
          expect(result).toMatchObject({ digest: index.index.digest, manifests: 3, blobsSkipped: 0 });
          expect(moved(result)).toBe(5);
          const done = events.filter((e) => e.type === (sameOrigin() ? 'blob-mounted' : 'blob-done'));
          expect(done.map((e) => e.digest).sort()).toEqual([...unique].sort());
          expect(reads.count('getBlob')).toBe(sameOrigin() ? 0 : 5);
          const copied = await destination().registry.getManifest(`${pair}/multi`, 'multi');
          expect(Buffer.from(copied.bytes).equals(Buffer.from(index.index.bytes))).toBe(true);
          for (const image of index.images) {
            expect(
              (await destination().registry.headManifest(`${pair}/multi`, image.manifest.digest))?.digest,
            ).toBe(image.manifest.digest);
          }
        });

        if (takesSparse[to]) {
          it('filters platforms keeping the index bytes and digest (skopeo inspect --raw)', async () => {
            const index = randomIndex({ platforms: ['linux/amd64', 'linux/arm64'], layerSize: 1024 });
            await pushIndex(source().registry, `${pair}/src`, index, 'multi');
            const result = await copyImage(
              { registry: source().registry, repository: `${pair}/src`, reference: 'multi' },
              { registry: destination().registry, repository: `${pair}/arm`, tag: 'arm' },
              { platforms: ['linux/arm64'] },
            );
            expect(result).toMatchObject({
              digest: index.index.digest,
              sourceDigest: index.index.digest,
              sparse: true,
              indexRewritten: false,
              manifests: 2,
            });
            const raw = await destination().raw(`${pair}/arm`, 'arm');
            expect(digestOf(raw)).toBe(index.index.digest);
            expect(Buffer.from(raw).equals(Buffer.from(index.index.bytes))).toBe(true);
            const [amd64, arm64] = index.images;
            expect(
              await destination().registry.headManifest(`${pair}/arm`, arm64!.manifest.digest),
            ).toBeDefined();
            expect(
              await destination().registry.headManifest(`${pair}/arm`, amd64!.manifest.digest),
            ).toBeUndefined();
            expect(
              await destination().registry.headBlob(`${pair}/arm`, amd64!.config.descriptor.digest),
            ).toBeUndefined();
          });
        } else {
          it('filters platforms: refused before any write, or rewritten to a new digest when asked', async () => {
            const index = randomIndex({ platforms: ['linux/amd64', 'linux/arm64'], layerSize: 1024 });
            await pushIndex(source().registry, `${pair}/src`, index, 'multi');
            const refused = await copyImage(
              { registry: source().registry, repository: `${pair}/src`, reference: 'multi' },
              { registry: destination().registry, repository: `${pair}/refused`, tag: 'arm' },
              { platforms: ['linux/arm64'] },
            ).catch((e: unknown) => e);
            expect(isStowageError(refused, 'SPARSE_INDEX_UNSUPPORTED')).toBe(true);
            expect((refused as Error).message).toMatch(/pass rewriteIndex: true/);
            const arm64 = index.images[1]!;
            expect(await destination().registry.headManifest(`${pair}/refused`, 'arm')).toBeUndefined();
            expect(
              await destination().registry.headManifest(`${pair}/refused`, arm64.manifest.digest),
            ).toBeUndefined();
            expect(
              await destination().registry.headBlob(`${pair}/refused`, arm64.config.descriptor.digest),
            ).toBeUndefined();

            const result = await copyImage(
              { registry: source().registry, repository: `${pair}/src`, reference: 'multi' },
              { registry: destination().registry, repository: `${pair}/rewritten`, tag: 'arm' },
              { platforms: ['linux/arm64'], rewriteIndex: true },
            );
            expect(result).toMatchObject({
              sourceDigest: index.index.digest,
              indexRewritten: true,
              sparse: false,
            });
            expect(result.digest).not.toBe(index.index.digest);
            const raw = await destination().raw(`${pair}/rewritten`, 'arm');
            expect(digestOf(raw)).toBe(result.digest);
            expect(json(raw).manifests.map((m) => m.digest)).toEqual([arm64.manifest.digest]);
          });
        }

        it('stops midway on abort and leaves no tag or index visible', async () => {
          const index = randomIndex({
            platforms: ['linux/amd64', 'linux/arm64'],
            layersPerImage: 3,
            layerSize: 4096,
          });
          await pushIndex(source().registry, `${pair}/src`, index, 'multi');
          const controller = new AbortController();
          const reason = new Error('stop here');
          let blobs = 0;
          const stopped = await copyImage(
            { registry: source().registry, repository: `${pair}/src`, reference: 'multi' },
            { registry: destination().registry, repository: `${pair}/aborted`, tag: 'multi' },
            {
              signal: controller.signal,
              concurrency: 1,
              onProgress: (event) => {
                if ((event.type === 'blob-done' || event.type === 'blob-mounted') && ++blobs === 2) {
                  controller.abort(reason);
                }
              },
            },
          ).catch((e: unknown) => e);
          expect(stopped).toBe(reason);
          // 2 configs + 6 layers: the copy stopped after 2 of them
          expect(blobs).toBe(2);
          const registry = destination().registry;
          expect(await registry.headManifest(`${pair}/aborted`, 'multi')).toBeUndefined();
          expect(await registry.headManifest(`${pair}/aborted`, index.index.digest)).toBeUndefined();
        });
      });
    }
  }

  for (const kind of kinds) {
    it(`mounts between two repositories of one origin (${kind}, two objects)`, async () => {
      const store = primary.get(kind) as Store;
      expect(store.twin).not.toBe(store.registry);
      expect(store.twin.origin).toBe(store.registry.origin);
      const image = randomImage({ layers: 2, layerSize: 2048 });
      await pushImage(store.registry, `mount-${kind}/src`, image, 'v1');
      const reads = counted(store.registry);
      const result = await copyImage(
        { registry: reads.registry, repository: `mount-${kind}/src`, reference: 'v1' },
        { registry: store.twin, repository: `mount-${kind}/dst`, tag: 'v1' },
      );
      expect(result).toMatchObject({ digest: image.manifest.digest, blobsMounted: 3, blobsCopied: 0 });
      expect(reads.count('getBlob')).toBe(0);
      const digests: Digest[] = image.blobs.map((b) => b.descriptor.digest);
      for (const digest of digests)
        expect(await store.registry.headBlob(`mount-${kind}/dst`, digest)).toBeDefined();
      expect((await store.registry.getManifest(`mount-${kind}/dst`, 'v1')).digest).toBe(
        image.manifest.digest,
      );
    });
  }
});
