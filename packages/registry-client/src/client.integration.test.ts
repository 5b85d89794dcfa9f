import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { buffer } from 'node:stream/consumers';
import { type Digest, digestOf, fullCapabilities, isStowageError, MediaType } from '@stowage/oci';
import {
  type DockerRegistry,
  registryConformance,
  requirePeers,
  startDockerRegistry,
} from '@stowage/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRegistryClient, type RegistryClient, referrersTag } from './client.js';

const encode = (value: unknown) => new TextEncoder().encode(JSON.stringify(value));

describe('registry-client → docker-registry', () => {
  if (!requirePeers('docker-registry')) return;

  registryConformance({
    name: 'registry-client → docker-registry',
    create: async () => {
      const registry = await startDockerRegistry();
      const client = createRegistryClient({ registry: registry.host, auth: { useConfigFiles: false } });
      return {
        registry: client,
        cleanup: async () => {
          await client.close();
          await registry.stop();
        },
      };
    },
    // What distribution 2.8 lacks is in the client's capabilities (the distribution-2.8 profile), each
    // checked against the real registry (the "gaps" tests below show the raw behaviour). Three gaps are
    // declared as capabilities because the client covers them and the cases pass:
    // - referrers: 2.8 has no referrers API (404 "page not found"); the client maintains and reads the
    //   referrers tag schema (`sha256-<hex>` index tags), as the distribution spec asks of clients.
    // - tagPaging: 2.8 ignores n/last on tags/list and returns tags unsorted; the client sorts, filters
    //   by `last`, cuts at `n` and sets `next` itself.
    // - outOfOrderChunkRefusal: 2.8 ignores Content-Range on PATCH and appends anywhere; the client
    //   compares the offset with the session's (known from the last response, else a status query)
    //   and refuses with RANGE_INVALID before sending.
    // Declared false: deleteTag (2.8 answers DELETE /manifests/<tag> with 400 DIGEST_INVALID; no safe
    // emulation exists, deleting by digest removes every tag of the manifest, so the client reports
    // UNSUPPORTED); anonymousMount (2.8 ignores ?mount= without from= and opens an upload session; the
    // client cancels it and answers undefined); garbageCollect (an offline `docker-registry
    // garbage-collect` command, not an API); lock (the distribution API has no locks).
  });
});

/**
 * What distribution 2.8 does where the OCI spec leaves room, checked against
 * the real registry: the evidence behind the capabilities declared for the
 * conformance suite, and the client's answers to each gap.
 */
describe('registry-client on docker-registry 2.8: the gaps and how the client covers them', () => {
  if (!requirePeers('docker-registry')) return;

  let registry: DockerRegistry;
  let client: RegistryClient;

  async function pushImage(repository: string, tag: string, extra: Record<string, unknown> = {}) {
    const layer = new TextEncoder().encode(`${repository}:${tag} ${Math.random()}`);
    const config = encode({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] } });
    await client.putBlob(repository, layer, { digest: digestOf(layer) });
    await client.putBlob(repository, config, { digest: digestOf(config) });
    const bytes = encode({
      schemaVersion: 2,
      mediaType: MediaType.OciManifest,
      config: { mediaType: MediaType.OciConfig, digest: digestOf(config), size: config.byteLength },
      layers: [{ mediaType: MediaType.OciLayer, digest: digestOf(layer), size: layer.byteLength }],
      ...extra,
    });
    const { digest } = await client.putManifest(repository, tag, { bytes, mediaType: MediaType.OciManifest });
    return { digest, bytes, layer: digestOf(layer) as Digest };
  }

  /** Upload sessions still holding data (2.8's cancel removes `data` and leaves a little bookkeeping behind). */
  async function uploadsLeft(repository: string): Promise<number> {
    const dir = join(registry.dataDir, 'docker/registry/v2/repositories', repository, '_uploads');
    const sessions = await readdir(dir).catch(() => [] as string[]);
    const live = await Promise.all(
      sessions.map((s) =>
        stat(join(dir, s, 'data')).then(
          () => 1,
          () => 0,
        ),
      ),
    );
    return live.reduce<number>((a, b) => a + b, 0);
  }

  beforeAll(async () => {
    registry = await startDockerRegistry();
    client = createRegistryClient({ registry: registry.host, auth: { useConfigFiles: false } });
  });
  afterAll(async () => {
    await client?.close();
    await registry?.stop();
  });

  it('tag listings: 2.8 ignores n/last and does not sort; the client sorts and pages itself', async () => {
    for (const tag of ['c', 'a', 'b', 'e', 'd']) await pushImage('gaps/tags', tag);
    const raw = (await (await fetch(`${registry.url}/v2/gaps/tags/tags/list?n=2`)).json()) as {
      tags: string[];
    };
    expect(raw.tags).toHaveLength(5); // n ignored
    expect(await client.listTags('gaps/tags', { n: 2 })).toEqual({ items: ['a', 'b'], next: 'b' });
    expect(await client.listTags('gaps/tags', { n: 2, last: 'b' })).toEqual({ items: ['c', 'd'], next: 'd' });
    expect(await client.listTags('gaps/tags', { n: 2, last: 'd' })).toEqual({ items: ['e'] });
  });

  it('tag deletion: 2.8 answers 400 DIGEST_INVALID; the client reports UNSUPPORTED and deletes nothing', async () => {
    await pushImage('gaps/deltag', 'keep');
    await expect(client.deleteTag('gaps/deltag', 'keep')).rejects.toMatchObject({
      code: 'UNSUPPORTED',
      status: 400,
    });
    expect((await client.listTags('gaps/deltag')).items).toEqual(['keep']);
  });

  it('anonymous mount: 2.8 opens an upload session instead; the client cancels it and answers undefined', async () => {
    const { layer } = await pushImage('gaps/mount-src', 'v1');
    expect(await client.mountBlob('gaps/mount-dst', layer)).toBeUndefined();
    expect(await uploadsLeft('gaps/mount-dst')).toBe(0);
    expect(await client.mountBlob('gaps/mount-dst', layer, { from: 'gaps/mount-src' })).toMatchObject({
      digest: layer,
    });
  });

  it('out-of-order chunks: 2.8 ignores Content-Range; the client checks the offset itself', async () => {
    const started = await client.startUpload('gaps/chunks');
    const first = await client.appendUpload('gaps/chunks', started.id, {
      body: new Uint8Array([1, 2, 3]),
      offset: 0,
    });
    // Sent straight to 2.8 with a wrong Content-Range, a chunk is appended anyway:
    const location = new URL(
      Buffer.from(first.id, 'base64url')
        .toString()
        .match(/"(\/v2[^"]+)"/)?.[1] ?? '',
      registry.url,
    );
    const raw = await fetch(location, {
      method: 'PATCH',
      headers: { 'content-range': '10-10', 'content-type': 'application/octet-stream' },
      body: new Uint8Array([9]),
    });
    expect(raw.status).toBe(202);
    // The client refuses before sending anything.
    const fresh = await client.startUpload('gaps/chunks');
    await expect(
      client.appendUpload('gaps/chunks', fresh.id, { body: new Uint8Array([1]), offset: 5 }),
    ).rejects.toMatchObject({ code: 'RANGE_INVALID' });
    expect((await client.getUpload('gaps/chunks', fresh.id)).offset).toBe(0);
    await client.cancelUpload('gaps/chunks', fresh.id);
  });

  it('referrers: 2.8 has no referrers API; the client keeps the referrers tag schema on push and delete', async () => {
    const subject = await pushImage('gaps/refs', 'v1');
    const raw = await fetch(`${registry.url}/v2/gaps/refs/referrers/${subject.digest}`);
    expect(raw.status).toBe(404);
    const signature = await pushImage('gaps/refs', 'sig', {
      artifactType: 'application/vnd.example.signature',
      subject: { mediaType: MediaType.OciManifest, digest: subject.digest, size: subject.bytes.byteLength },
      annotations: { 'org.example.kind': 'signature' },
    });
    const sbom = await pushImage('gaps/refs', 'sbom', {
      artifactType: 'application/vnd.example.sbom',
      subject: { mediaType: MediaType.OciManifest, digest: subject.digest, size: subject.bytes.byteLength },
    });
    const all = await client.listReferrers('gaps/refs', subject.digest);
    expect(all.manifests.map((d) => d.digest).sort()).toEqual([signature.digest, sbom.digest].sort());
    expect(all.manifests.find((d) => d.digest === signature.digest)).toMatchObject({
      artifactType: 'application/vnd.example.signature',
      annotations: { 'org.example.kind': 'signature' },
    });
    const filtered = await client.listReferrers('gaps/refs', subject.digest, {
      artifactType: 'application/vnd.example.sbom',
    });
    expect(filtered).toEqual({
      manifests: [expect.objectContaining({ digest: sbom.digest })],
      filtersApplied: ['artifactType'],
    });
    expect((await client.listTags('gaps/refs')).items).toContain(referrersTag(subject.digest));

    await client.deleteManifest('gaps/refs', signature.digest);
    expect((await client.listReferrers('gaps/refs', subject.digest)).manifests.map((d) => d.digest)).toEqual([
      sbom.digest,
    ]);
  });

  it('blob ranges: 2.8 serves 206 and answers 416 past the end', async () => {
    const blob = new TextEncoder().encode('0123456789');
    const digest = digestOf(blob);
    await client.putBlob('gaps/range', blob, { digest });
    const part = await client.getBlob('gaps/range', digest, { range: { start: 3, end: 5 } });
    expect(part).toMatchObject({ size: 10, range: { start: 3, end: 5 } });
    expect((await buffer(part.stream)).toString()).toBe('345');
    const tail = await client.getBlob('gaps/range', digest, { range: { start: 7 } });
    expect((await buffer(tail.stream)).toString()).toBe('789');
    await expect(client.getBlob('gaps/range', digest, { range: { start: 20 } })).rejects.toMatchObject({
      code: 'RANGE_INVALID',
    });
  });

  it('uploads: 2.8 refuses single-request POST uploads; the client learns it once and uses POST + PUT', async () => {
    const small = new TextEncoder().encode('small blob');
    const other = new TextEncoder().encode('another small blob');
    await client.putBlob('gaps/upload', small, { digest: digestOf(small) });
    await client.putBlob('gaps/upload', other, { digest: digestOf(other) });
    expect(await uploadsLeft('gaps/upload')).toBe(0);
    expect((await client.headBlob('gaps/upload', digestOf(other)))?.size).toBe(other.byteLength);
  });

  it('capabilities: without a Stowage-Capabilities header the client reports exactly the 2.8 profile', async () => {
    expect(await client.capabilities()).toEqual({
      ...fullCapabilities,
      deleteTag: false,
      anonymousMount: false,
      lock: false,
      garbageCollect: false,
      referrers: 'tag-schema',
      sparseIndex: false,
    });
  });

  it('sparse index: 2.8 has none; the client refuses with UNSUPPORTED and pushes nothing', async () => {
    const bytes = encode({ schemaVersion: 2, mediaType: MediaType.OciIndex, manifests: [] });
    const error = await client
      .putManifest('gaps/sparse', 'v1', { bytes, mediaType: MediaType.OciIndex, sparse: true })
      .catch((e: unknown) => e);
    expect(isStowageError(error, 'UNSUPPORTED')).toBe(true);
    expect(await client.headManifest('gaps/sparse', 'v1')).toBeUndefined();
  });

  it('origin: two anonymous clients of the registry share one, so a copy between them mounts', async () => {
    const other = createRegistryClient({ registry: registry.host, auth: { useConfigFiles: false } });
    try {
      expect(other.origin).toBe(client.origin);
      expect(client.origin).toBe(`http://${registry.host}`);
    } finally {
      await other.close();
    }
  });
});
