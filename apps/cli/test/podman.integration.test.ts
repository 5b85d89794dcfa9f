// podman pulls what stowage copy wrote, with the digest stowage reports: an image
// with a real tar layer (podman unpacks it into its containers/storage), copied
// from docker-registry to stowage-server; and stowage copies on what podman pushed.
import { execFile } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { digestOf, MediaType } from '@stowage/oci';
import { createRegistryClient } from '@stowage/registry-client';
import { type DockerRegistry, requirePeers } from '@stowage/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureBinary, stowage } from './binary.js';
import { startRegistries, type TestRegistries } from './registries.js';

const run = promisify(execFile);

describe('podman pulls what stowage copy wrote', () => {
  if (!requirePeers('docker-registry', 'podman', 'tar')) return;
  let work: string;
  let upstream: DockerRegistry;
  let started: TestRegistries | undefined;
  let ours: string;
  let digest: string;
  const tag = `t${process.pid}`;

  beforeAll(async () => {
    await ensureBinary();
    started = await startRegistries('podman');
    ({ work, upstream, ours } = started);

    // one real layer: a tar of one file, as podman can unpack it
    await writeFile(join(work, 'hello.txt'), `hello from stowage ${tag}\n`);
    const { stdout: layer } = await run('tar', ['-c', '-C', work, 'hello.txt'], { encoding: 'buffer' });
    const layerDigest = digestOf(layer);
    const config = Buffer.from(
      JSON.stringify({
        architecture: 'amd64',
        os: 'linux',
        config: { Cmd: ['/hello.txt'] },
        rootfs: { type: 'layers', diff_ids: [layerDigest] },
      }),
    );
    const manifest = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: MediaType.OciManifest,
        config: { mediaType: MediaType.OciConfig, digest: digestOf(config), size: config.byteLength },
        layers: [{ mediaType: MediaType.OciLayer, digest: layerDigest, size: layer.byteLength }],
      }),
    );
    const client = createRegistryClient({ registry: upstream.host, auth: { useConfigFiles: false } });
    await client.putBlob('hello', layer, { digest: layerDigest, size: layer.byteLength });
    await client.putBlob('hello', config, { digest: digestOf(config), size: config.byteLength });
    digest = (await client.putManifest('hello', 'v1', { bytes: manifest, mediaType: MediaType.OciManifest }))
      .digest;
    await client.close();
  }, 300_000);

  afterAll(async () => {
    await run('podman', ['rmi', '--force', `${ours}/mirror/hello:${tag}`]).catch(() => undefined);
    await started?.stop();
  });

  it('pulls it with the same digest, and its layer unpacked holds the file', async () => {
    const copied = await stowage(
      ['copy', `${upstream.host}/hello:v1`, `${ours}/mirror/hello:${tag}`, '--json'],
      {
        cwd: work,
      },
    );
    expect([copied.code, copied.err]).toEqual([0, '']);
    expect(JSON.parse(copied.out).digest).toBe(digest);
    await run('podman', ['pull', '--quiet', '--tls-verify=false', `${ours}/mirror/hello:${tag}`]);
    const { stdout } = await run('podman', [
      'image',
      'inspect',
      '--format',
      '{{.Digest}}',
      `${ours}/mirror/hello:${tag}`,
    ]);
    expect(stdout.trim()).toBe(digest);
    // podman (root, its default storage) unpacked the layer: the file is in the image's root
    const { stdout: mounted } = await run('podman', ['image', 'mount', `${ours}/mirror/hello:${tag}`]);
    try {
      const { stdout: text } = await run('cat', [join(mounted.trim(), 'hello.txt')]);
      expect(text).toBe(`hello from stowage ${tag}\n`);
    } finally {
      await run('podman', ['image', 'unmount', `${ours}/mirror/hello:${tag}`]);
    }
  }, 120_000);

  it('the other way round: stowage copies what podman pushed, with the digest podman reports', async () => {
    // podman pushes the image it pulled above (it may compress the layer: its digest file says
    // what it wrote), and stowage copies that on, digest for digest, and reads it back
    const digestFile = join(work, 'podman.digest');
    await run('podman', [
      'push',
      '--quiet',
      '--tls-verify=false',
      '--digestfile',
      digestFile,
      `${ours}/mirror/hello:${tag}`,
      `${ours}/from-podman/hello:${tag}`,
    ]);
    const pushed = (await readFile(digestFile, 'utf8')).trim();
    expect(pushed).toMatch(/^sha256:[0-9a-f]{64}$/);
    const seen = await stowage(['digest', `${ours}/from-podman/hello:${tag}`], { cwd: work });
    expect([seen.code, seen.out]).toEqual([0, `${pushed}\n`]);
    const copied = await stowage(
      ['copy', `${ours}/from-podman/hello:${tag}`, `${upstream.host}/from-podman/hello:${tag}`, '--json'],
      { cwd: work },
    );
    expect([copied.code, copied.err]).toEqual([0, '']);
    expect(JSON.parse(copied.out).digest).toBe(pushed);
    const inspected = await stowage(['inspect', `${upstream.host}/from-podman/hello:${tag}`, '--json'], {
      cwd: work,
    });
    expect(JSON.parse(inspected.out).Digest).toBe(pushed);
  }, 120_000);
});
