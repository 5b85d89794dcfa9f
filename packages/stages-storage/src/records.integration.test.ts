// Deletes on docker-registry 2.8, which cannot delete a tag on its own: the
// throwaway-manifest way (regclient's), and the guarantee that a digest a
// custom tag still needs is never deleted.
import { createRegistryClient, type RegistryClient } from '@stowage/registry-client';
import { encodeStageTag } from '@stowage/tags';
import {
  type DockerRegistry,
  pushImage,
  randomImage,
  requirePeers,
  startDockerRegistry,
} from '@stowage/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RepoContext } from './context.js';
import { removeImage } from './delete.js';
import { readRecordLabels } from './record-image.js';
import * as records from './records.js';
import type { StageDesc } from './types.js';

describe('record deletes on docker-registry 2.8', () => {
  if (!requirePeers('docker-registry')) return;

  let docker: DockerRegistry;
  let client: RegistryClient;
  const run = Math.random().toString(36).slice(2, 8);
  let counter = 0;

  beforeAll(async () => {
    docker = await startDockerRegistry();
    client = createRegistryClient({ registry: docker.host, auth: { useConfigFiles: false } });
  });
  afterAll(async () => {
    await client?.close();
    await docker?.stop();
  });

  const stage = {
    digest: '7d391a82ee3f0e574361c594fe737dc6db627be9667a470ab7581da7',
    creationTs: 1700000000123,
  };
  const stageTag = encodeStageTag(stage);

  async function setup() {
    const repository = `werf/records-${run}-${++counter}`;
    const address = `${docker.host}/${repository}`;
    const ctx = new RepoContext({ registry: client, repository, address, project: 'myproj' });
    const image = randomImage({ format: 'docker' });
    const digest = await pushImage(client, repository, image, stageTag);
    const desc = {
      stageID: { ...stage, isMultiplatform: false },
      info: { repoDigest: `${address}@${digest}`, id: image.config.descriptor.digest },
    } as unknown as StageDesc;
    const tags = async () => [...(await client.listTags(repository)).items];
    return { ctx, repository, digest, desc, tags };
  }

  it('cannot delete tags, so the client says', async () => {
    expect((await client.capabilities()).deleteTag).toBe(false);
  });

  it('deleteCustomTag retires the tag; the stage and its manifest stay', async () => {
    const { ctx, repository, digest, desc, tags } = await setup();
    await records.addCustomTag(ctx, desc, 'v1.2.3');
    expect((await client.headManifest(repository, 'v1.2.3'))?.digest).toBe(digest);
    await records.deleteCustomTag(ctx, 'v1.2.3');
    expect(await tags()).toEqual([stageTag]);
    expect((await client.headManifest(repository, stageTag))?.digest).toBe(digest);
    expect(await client.headManifest(repository, 'v1.2.3')).toBeUndefined();
  });

  it('deleting the stage while a custom tag needs its digest keeps the manifest', async () => {
    const { ctx, repository, digest, desc, tags } = await setup();
    await records.addCustomTag(ctx, desc, 'main');
    await removeImage(ctx, { tag: stageTag, digest, what: 'stage' });
    expect(await tags()).toEqual(['main']);
    expect((await client.headManifest(repository, 'main'))?.digest).toBe(digest);
  });

  it('deleting a stage nobody else needs deletes its manifest', async () => {
    const { ctx, repository, digest, tags } = await setup();
    await removeImage(ctx, { tag: stageTag, digest, what: 'stage' });
    expect(await tags()).toEqual([]);
    expect(await client.headManifest(repository, digest)).toBeUndefined();
  });

  it('records are deleted by digest, one never taking another', async () => {
    const { ctx, repository, tags } = await setup();
    await records.addManagedImage(ctx, 'a');
    await records.addManagedImage(ctx, 'b');
    await records.rejectStage(ctx, stage);
    const a = (await client.headManifest(repository, 'managed-image-a'))?.digest;
    await records.removeManagedImage(ctx, 'a');
    await records.removeManagedImage(ctx, 'a');
    expect((await tags()).sort()).toEqual([stageTag, `${stageTag}-rejected`, 'managed-image-b'].sort());
    expect(a).toBeDefined();
    expect(await client.headManifest(repository, a as string)).toBeUndefined();
    expect(await readRecordLabels(ctx, 'managed-image-b')).toEqual({ werf: 'myproj' });
  });
});
