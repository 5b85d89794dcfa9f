import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { promisify } from 'node:util';
import { type Digest, digestOf, type Registry } from '@stowage/oci';
import {
  collect,
  type DockerRegistry,
  pushImage,
  pushIndex,
  type RandomImage,
  randomImage,
  randomIndex,
  requirePeers,
  startDockerRegistry,
} from '@stowage/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createOciLayoutRegistry, type OciLayoutRegistry } from './oci-layout.js';

const run = promisify(execFile);

const ACCEPT = [
  'application/vnd.oci.image.index.v1+json',
  'application/vnd.oci.image.manifest.v1+json',
  'application/vnd.docker.distribution.manifest.v2+json',
  'application/vnd.docker.distribution.manifest.list.v2+json',
].join(', ');

/** Just enough of the distribution API for `pushImage`/`pushIndex`: content reaches docker-registry without our code. */
function distribution(url: string): Registry {
  const api = (repository: string, path: string) => `${url}/v2/${repository}/${path}`;
  const pusher: Pick<Registry, 'headBlob' | 'putBlob' | 'putManifest'> = {
    async headBlob(repository, digest) {
      const response = await fetch(api(repository, `blobs/${digest}`), { method: 'HEAD' });
      return response.ok ? { digest, size: Number(response.headers.get('content-length')) } : undefined;
    },
    async putBlob(repository, body, { digest }) {
      const started = await fetch(api(repository, 'blobs/uploads/'), { method: 'POST' });
      const location = new URL(started.headers.get('location') as string, url);
      location.searchParams.set('digest', digest);
      const bytes = await collect(body);
      const done = await fetch(location, {
        method: 'PUT',
        body: bytes,
        headers: { 'content-type': 'application/octet-stream' },
      });
      if (done.status !== 201) throw new Error(`blob push: ${done.status} ${await done.text()}`);
      return { digest, size: bytes.byteLength };
    },
    async putManifest(repository, reference, { bytes, mediaType }) {
      const response = await fetch(api(repository, `manifests/${reference}`), {
        method: 'PUT',
        body: bytes,
        headers: { 'content-type': mediaType },
      });
      if (response.status !== 201)
        throw new Error(`manifest push: ${response.status} ${await response.text()}`);
      return { digest: response.headers.get('docker-content-digest') as Digest };
    },
  };
  return pusher as Registry;
}

/** Every file under `dir`, relative, sorted. */
async function files(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  return entries
    .filter((e) => e.isFile())
    .map((e) => relative(dir, join(e.parentPath, e.name)))
    .sort();
}

/** The layout of exactly these blobs: oci-layout, index.json and blobs/sha256/<hex>, nothing else. */
function layoutFiles(digests: Iterable<string>): string[] {
  return [
    'index.json',
    'oci-layout',
    ...[...new Set(digests)].map((d) => `blobs/sha256/${d.slice(7)}`),
  ].sort();
}

function imageDigests(image: RandomImage): string[] {
  return [image.manifest.digest, ...image.blobs.map((b) => b.descriptor.digest)];
}

describe('skopeo and the OCI layout registry read and write the same layouts', () => {
  if (!requirePeers('docker-registry', 'skopeo')) return;

  let docker: DockerRegistry;
  let work: string;
  const image = randomImage({ layers: 3 });
  const index = randomIndex({ platforms: ['linux/amd64', 'linux/arm64'], sharedLayers: 1 });
  const indexDigests = () => [index.index.digest, ...index.images.flatMap(imageDigests)];

  async function skopeo(...args: string[]): Promise<Buffer> {
    const { stdout } = await run('skopeo', args, { encoding: 'buffer', maxBuffer: 64 << 20 });
    return stdout;
  }

  async function digestIn(repository: string, tag: string): Promise<string | null> {
    const response = await fetch(`${docker.url}/v2/${repository}/manifests/${tag}`, {
      method: 'HEAD',
      headers: { accept: ACCEPT },
    });
    return response.headers.get('docker-content-digest');
  }

  async function expectBlobs(
    registry: OciLayoutRegistry,
    repository: string,
    of: RandomImage,
  ): Promise<void> {
    for (const blob of of.blobs) {
      const content = await registry.getBlob(repository, blob.descriptor.digest);
      expect(content.size).toBe(blob.descriptor.size);
      expect(digestOf(await collect(content.stream))).toBe(blob.descriptor.digest);
    }
  }

  beforeAll(async () => {
    docker = await startDockerRegistry();
    work = await mkdtemp(join(tmpdir(), 'stowage-oci-layout-skopeo-'));
    const source = distribution(docker.url);
    await pushImage(source, 'src/single', image, 'v1');
    await pushIndex(source, 'src/multi', index, 'v1');
  });

  afterAll(async () => {
    await docker?.stop();
    if (work) await rm(work, { recursive: true, force: true });
  });

  it('reads what skopeo wrote: tags, manifest bytes and every blob, digests unchanged', async () => {
    const dir = join(work, 'from skopeo', 'My Image');
    await mkdir(join(work, 'from skopeo'));
    for (const [name, tag] of [
      ['single', 'v1'],
      ['multi', 'multi'],
    ] as const) {
      await skopeo(
        'copy',
        '--quiet',
        '--all',
        '--preserve-digests',
        '--src-tls-verify=false',
        `docker://${docker.host}/src/${name}:v1`,
        `oci:${dir}:${tag}`,
      );
    }
    const registry = createOciLayoutRegistry({ directories: { layout: dir }, readOnly: true });
    expect((await registry.listRepositories()).items).toEqual(['layout']);
    expect((await registry.listTags('layout')).items).toEqual(['multi', 'v1']);

    const single = await registry.getManifest('layout', 'v1');
    expect(single.digest).toBe(image.manifest.digest);
    expect(single.mediaType).toBe(image.manifest.mediaType);
    expect(Buffer.from(single.bytes).equals(Buffer.from(image.manifest.bytes))).toBe(true);
    await expectBlobs(registry, 'layout', image);

    const multi = await registry.getManifest('layout', 'multi');
    expect(multi.digest).toBe(index.index.digest);
    expect(Buffer.from(multi.bytes).equals(Buffer.from(index.index.bytes))).toBe(true);
    // skopeo writes the children as blobs only: found by digest
    for (const child of index.images) {
      const got = await registry.getManifest('layout', child.manifest.digest);
      expect(Buffer.from(got.bytes).equals(Buffer.from(child.manifest.bytes))).toBe(true);
      await expectBlobs(registry, 'layout', child);
    }
    await registry.close();

    // the same layout as a repository under a root (skopeo creates the last path component only)
    await mkdir(join(work, 'root', 'imported'), { recursive: true });
    await skopeo(
      'copy',
      '--quiet',
      '--preserve-digests',
      '--src-tls-verify=false',
      `docker://${docker.host}/src/single:v1`,
      `oci:${join(work, 'root', 'imported', 'single')}:v1`,
    );
    const rooted = createOciLayoutRegistry({ root: join(work, 'root'), readOnly: true });
    expect((await rooted.listRepositories()).items).toEqual(['imported/single']);
    expect((await rooted.headManifest('imported/single', 'v1'))?.digest).toBe(image.manifest.digest);
    await rooted.close();
  }, 120_000);

  it('skopeo reads what we wrote: inspect --raw prints our bytes, copy keeps every digest', async () => {
    const root = join(work, 'ours');
    const registry = createOciLayoutRegistry({ root });
    await pushImage(registry, 'apps/single', image, 'v1');
    await pushIndex(registry, 'apps/multi', index, 'v1');
    // nothing but the three parts of a layout
    expect(await files(join(root, 'apps/single'))).toEqual(layoutFiles(imageDigests(image)));
    expect(await files(join(root, 'apps/multi'))).toEqual(layoutFiles(indexDigests()));

    const single = `oci:${join(root, 'apps/single')}:v1`;
    const multi = `oci:${join(root, 'apps/multi')}:v1`;
    expect((await skopeo('inspect', '--raw', single)).equals(Buffer.from(image.manifest.bytes))).toBe(true);
    expect((await skopeo('inspect', '--raw', multi)).equals(Buffer.from(index.index.bytes))).toBe(true);
    for (const [layout, name] of [
      [single, 'single'],
      [multi, 'multi'],
    ] as const) {
      await skopeo(
        'copy',
        '--quiet',
        '--all',
        '--preserve-digests',
        '--dest-tls-verify=false',
        layout,
        `docker://${docker.host}/back/${name}:v1`,
      );
    }
    expect(await digestIn('back/single', 'v1')).toBe(image.manifest.digest);
    expect(await digestIn('back/multi', 'v1')).toBe(index.index.digest);

    // a tag moved through the registry is what skopeo reads next
    await registry.putManifest('apps/multi', 'v1', {
      bytes: index.images[0]!.manifest.bytes,
      mediaType: index.images[0]!.manifest.mediaType,
    });
    expect(
      (await skopeo('inspect', '--raw', multi)).equals(Buffer.from(index.images[0]!.manifest.bytes)),
    ).toBe(true);

    // skopeo adds a tag to a layout we wrote; we read both, and skopeo reads ours still
    await skopeo(
      'copy',
      '--quiet',
      '--preserve-digests',
      '--src-tls-verify=false',
      `docker://${docker.host}/src/single:v1`,
      `oci:${join(root, 'apps/multi')}:single`,
    );
    expect((await registry.listTags('apps/multi')).items).toEqual(['single', 'v1']);
    expect((await registry.getManifest('apps/multi', 'single')).digest).toBe(image.manifest.digest);
    await registry.putManifest('apps/multi', 'again', {
      bytes: index.index.bytes,
      mediaType: index.index.mediaType,
    });
    expect(
      (await skopeo('inspect', '--raw', `oci:${join(root, 'apps/multi')}:single`)).equals(
        Buffer.from(image.manifest.bytes),
      ),
    ).toBe(true);
    await skopeo(
      'copy',
      '--quiet',
      '--all',
      '--preserve-digests',
      '--dest-tls-verify=false',
      `oci:${join(root, 'apps/multi')}:again`,
      `docker://${docker.host}/back/again:v1`,
    );
    expect(await digestIn('back/again', 'v1')).toBe(index.index.digest);
    expect(await files(join(root, 'apps/multi'))).toEqual(
      layoutFiles([...indexDigests(), ...imageDigests(image)]),
    );
    await registry.close();
  }, 120_000);
});
