// The storage manager's scenarios against docker-registry (distribution 2.8)
// through the registry client, the local image store on disk as werf's
// container backend, and werf's home in a temp directory.
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createImageStore, type ImageStore } from '@stowage/image-store';
import { digestHex, isStowageError, type Registry } from '@stowage/oci';
import { createRegistryClient, type RegistryClient } from '@stowage/registry-client';
import { createRepoStagesStorage, type StagesStorage } from '@stowage/stages-storage';
import { sha3_224Hash } from '@stowage/tags';
import {
  type DockerRegistry,
  freePort,
  pushImage,
  randomImage,
  requirePeers,
  startDockerRegistry,
} from '@stowage/testing';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createStorageManager, type StorageManager } from './manager.js';

describe('storage manager over docker-registry', () => {
  if (!requirePeers('docker-registry')) return;

  const PROJECT = 'myproj';
  const run = Math.random().toString(36).slice(2, 8);
  let counter = 0;
  let docker: DockerRegistry;
  let client: RegistryClient;
  let dir: string;
  let local: ImageStore;
  let warnings: string[];
  const managers: StorageManager[] = [];

  beforeAll(async () => {
    docker = await startDockerRegistry();
    client = createRegistryClient({ registry: docker.host, auth: { useConfigFiles: false } });
  });
  afterAll(async () => {
    await client?.close();
    await docker?.stop();
  });
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'stowage-manager-int-'));
    local = await createImageStore({ root: join(dir, 'local') });
    warnings = [];
  });
  afterEach(async () => {
    for (const m of managers.splice(0)) await m.close();
    await local?.close?.();
    await rm(dir, { recursive: true, force: true });
  });

  const repo = (name: string) => {
    const repository = `werf/${name}-${run}-${++counter}`;
    return { repository, address: `${docker.host}/${repository}` };
  };
  const storageAt = (r: { address: string }, registry: Registry = client): StagesStorage =>
    createRepoStagesStorage({ registry, address: r.address, project: PROJECT });
  const manager = (options: {
    primary: StagesStorage;
    cache?: StagesStorage[];
    final?: StagesStorage;
  }): StorageManager => {
    const m = createStorageManager({
      project: PROJECT,
      home: join(dir, 'werf-home'),
      local: { registry: local },
      logger: { warn: (_fields, message) => warnings.push(message ?? '') },
      ...options,
    });
    managers.push(m);
    return m;
  };
  const stage = { digest: sha3_224Hash(`stage ${run}`), creationTs: 1_700_000_000_123 };
  const tag = `${stage.digest}-${stage.creationTs}`;
  it('fetches from a cache repo and refills the one that missed; the manifest cache is in werf format', async () => {
    const p = repo('primary');
    const missing = repo('cache-missing');
    const holding = repo('cache-holding');
    const image = randomImage({ format: 'docker', seed: 11 });
    await pushImage(client, p.repository, image, tag);
    await pushImage(client, holding.repository, image, tag);
    const primary = storageAt(p);
    const missingStorage = storageAt(missing);
    const m = manager({ primary, cache: [missingStorage, storageAt(holding)] });

    const result = await m.fetchStage(stage);
    expect(result.from).toBe('cache');
    expect(result.storage?.address).toBe(holding.address);
    expect((await client.listTags(missing.repository)).items).toContain(tag);
    expect(warnings).toEqual([]);

    const file = m.manifestCache!.path(p.address, `${p.address}:${tag}`);
    const record = JSON.parse(await readFile(file, 'utf8'));
    expect(Object.keys(record)).toEqual(['AccessTimestamp', 'Info']);
    expect(record.Info.name).toBe(`${p.address}:${tag}`);
    expect(record.Info.ID).toBe(image.config.descriptor.digest);
  });

  it('a cache repo that is down only warns', async () => {
    const p = repo('primary');
    await pushImage(client, p.repository, randomImage({ format: 'docker', seed: 12 }), tag);
    // a real cache registry that is down: nothing listens on its port
    const gone = createRegistryClient({
      registry: `127.0.0.1:${await freePort()}`,
      auth: { useConfigFiles: false },
      retry: { retries: 0 },
    });
    const m = manager({ primary: storageAt(p), cache: [storageAt(repo('cache-down'), gone)] });
    expect((await m.fetchStage(stage)).from).toBe('primary');
    expect(warnings).toContain('unable to fetch the stage from a cache storage');
    expect(warnings).toContain('unable to copy the stage into a cache storage');
    await gone.close();
  });

  it('a broken stage (its config blob deleted on disk) gets a rejected record and the typed error', async () => {
    const p = repo('primary');
    const image = randomImage({ format: 'docker', seed: 13 });
    await pushImage(client, p.repository, image, tag);
    const hex = digestHex(image.config.descriptor.digest);
    await rm(join(docker.dataDir, 'docker/registry/v2/blobs/sha256', hex.slice(0, 2), hex, 'data'));
    const m = manager({ primary: storageAt(p) });
    const error = await m.fetchStage(stage).catch((e: unknown) => e);
    expect(isStowageError(error, 'UNEXPECTED_STORAGE_STATE')).toBe(true);
    expect((await client.listTags(p.repository)).items).toContain(`${tag}-rejected`);
  });

  it('copying into the final repo twice does the work once', async () => {
    const p = repo('primary');
    const f = repo('final');
    await pushImage(client, p.repository, randomImage({ format: 'docker', seed: 14 }), tag);
    let puts = 0;
    const counting = new Proxy(client, {
      get(target, prop, receiver) {
        const value = Reflect.get(target, prop, receiver);
        if (prop === 'putManifest') puts++;
        return typeof value === 'function' ? value.bind(target) : value;
      },
    });
    const final = storageAt(f, counting);
    const m = manager({ primary: storageAt(p), final });
    const first = await m.copyStageIntoFinalStorage(stage);
    const afterFirst = puts;
    expect(afterFirst).toBeGreaterThan(0);
    expect(await m.copyStageIntoFinalStorage(stage)).toEqual(first);
    await manager({ primary: storageAt(p), final }).copyStageIntoFinalStorage(stage);
    expect(puts).toBe(afterFirst);
  });
});
