// What the client reports of a real docker-registry (distribution 2.8), which sends no
// Stowage-Capabilities header: exactly the 2.8 profile the conformance suite holds it to.
import { fullCapabilities, isStowageError, MediaType } from '@stowage/oci';
import { type DockerRegistry, requirePeers, startDockerRegistry } from '@stowage/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRegistryClient, type RegistryClient } from './client.js';

describe('capabilities() against docker-registry 2.8', () => {
  if (!requirePeers('docker-registry')) return;

  let registry: DockerRegistry;
  let client: RegistryClient;

  beforeAll(async () => {
    registry = await startDockerRegistry();
    client = createRegistryClient({ registry: registry.host, auth: { useConfigFiles: false } });
  });

  afterAll(async () => {
    await client?.close();
    await registry?.stop();
  });

  it('is the distribution 2.8 profile', async () => {
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

  it('refuses a sparse index with UNSUPPORTED and pushes nothing', async () => {
    const bytes = new TextEncoder().encode(
      JSON.stringify({ schemaVersion: 2, mediaType: MediaType.OciIndex, manifests: [] }),
    );
    const error = await client
      .putManifest('caps/sparse', 'v1', { bytes, mediaType: MediaType.OciIndex, sparse: true })
      .catch((e: unknown) => e);
    expect(isStowageError(error, 'UNSUPPORTED')).toBe(true);
    expect(await client.headManifest('caps/sparse', 'v1')).toBeUndefined();
  });

  it('gives two anonymous clients of the registry one origin, so a copy between them mounts', async () => {
    const other = createRegistryClient({ registry: registry.host, auth: { useConfigFiles: false } });
    try {
      expect(other.origin).toBe(client.origin);
      expect(client.origin).toBe(`http://${registry.host}`);
    } finally {
      await other.close();
    }
  });
});
