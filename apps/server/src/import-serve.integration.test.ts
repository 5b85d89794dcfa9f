// Import, then serve, as a user does it: Debian's docker-registry (distribution
// 2.8) is filled by real skopeo (single OCI and Docker images, a two-platform
// OCI index and a Docker manifest list, layers shared across repositories,
// several tags, nested names, a moved tag) and stopped, so only its tree is
// left; `importTree` fills a fresh migrated PostgreSQL database from that tree;
// then the BUILT stowage-server binary serves it in database mode from the
// same directory (`--root <rootdirectory> --database-url <url>`). skopeo
// (inspect, copy --all --preserve-digests) and podman (pull, unpacking every
// layer) then fetch every tag docker-registry had, with identical digests.
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { importTree } from '@stowage/importer';
import { createPostgresDatabase, migrate } from '@stowage/metadata-db';
import { type Digest, digestOf, MediaType } from '@stowage/oci';
import { createRegistryClient } from '@stowage/registry-client';
import {
  createTestDatabase,
  expectedTags,
  populateWithSkopeo,
  postgresPeer,
  pushedImages,
  pushedManifest,
  type RandomImage,
  type RandomIndex,
  type RegistryContents,
  readRegistryContents,
  requirePeers,
  type SkopeoPush,
  skopeo,
  skopeoCopy,
  startDockerRegistry,
  type TestDatabase,
} from '@stowage/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bin, ensureBinary, type Serving, serving, stopServers } from '../test/binary.js';

const run = promisify(execFile);
const postgres = await postgresPeer();

afterAll(stopServers);

beforeAll(ensureBinary, 300_000);

/** Runs podman; a failure says the command and what podman printed. */
async function podman(...args: string[]): Promise<string> {
  try {
    const { stdout } = await run('podman', args, { maxBuffer: 16 << 20 });
    return stdout;
  } catch (error) {
    const stderr = String((error as { stderr?: string }).stderr ?? '').trim();
    throw new Error(`podman ${args.join(' ')} failed: ${stderr}`, { cause: error });
  }
}

/** The platform podman picks from an index on this machine. */
const hostArchitecture =
  ({ x64: 'amd64', arm64: 'arm64' } as Record<string, string>)[process.arch] ?? process.arch;

const isDockerList = (content: RandomImage | RandomIndex) =>
  pushedManifest(content).mediaType === MediaType.DockerManifestList;

/** Each file's bytes hash to the digest it is named for, and nothing expected is missing. */
async function expectFiles(files: ReadonlyMap<string, Digest>, where: string): Promise<void> {
  for (const [file, digest] of files) {
    const bytes = await readFile(file).catch(() => undefined);
    expect(bytes, `${where}: ${file}`).toBeDefined();
    expect(digestOf(bytes as Buffer), `${where}: ${file}`).toBe(digest);
  }
}

describe('import, then serve: stowage-server in database mode over the tree docker-registry wrote', () => {
  if (!requirePeers('docker-registry', 'skopeo', 'podman', postgres)) return;

  let work: string;
  let root: string;
  let upstreamPort: number;
  let pushes: readonly SkopeoPush[];
  let served: RegistryContents;
  let database: TestDatabase | undefined;
  let server: Serving | undefined;
  /** `host:port` of stowage-server, the registry part of image references. */
  let host: string;
  /** Every `repository:tag` docker-registry had, with what it holds. */
  let tags: [string, RandomImage | RandomIndex][];
  const pulled: string[] = [];

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'stowage-server-import-serve-'));
    const upstream = await startDockerRegistry({ dataDir: join(work, 'registry') });
    try {
      pushes = await populateWithSkopeo(upstream.host, { work: join(work, 'sources') });
      const client = createRegistryClient({ registry: upstream.host, auth: { useConfigFiles: false } });
      try {
        served = await readRegistryContents(client);
      } finally {
        await client.close();
      }
    } finally {
      // only the tree is left: what stowage-server serves comes from nowhere else
      await upstream.stop();
    }
    root = upstream.dataDir;
    upstreamPort = upstream.port;
    // every tag docker-registry reported, with what was pushed under it (the first test checks they match)
    const expected = expectedTags(pushes);
    tags = served.manifests
      .filter((m) => !m.reference.includes(':'))
      .map(({ repository, reference }) => {
        const ref = `${repository}:${reference}`;
        return [ref, expected.get(ref) as RandomImage | RandomIndex];
      });

    database = await createTestDatabase('stowage_server_import');
    const db = createPostgresDatabase({ connectionString: database.url });
    try {
      await migrate(db);
      const result = await importTree({ db, root });
      expect(result.warnings).toEqual([]);
    } finally {
      await db.close();
    }

    server = await serving(process.execPath, [
      bin,
      '--root',
      root,
      '--database-url',
      database.url,
      '--addr',
      '127.0.0.1:0',
    ]);
    host = new URL(server.url).host;
  }, 120_000);

  afterAll(async () => {
    if (pulled.length > 0) await podman('rmi', '--force', '--ignore', ...pulled).catch(() => undefined);
    if (server) expect(await server.stop()).toBe(0);
    await database?.drop();
    if (work) await rm(work, { recursive: true, force: true });
  });

  it('docker-registry had every tag pushed, and is gone: the tree alone is served', async () => {
    const byTag = served.manifests.filter((m) => !m.reference.includes(':'));
    expect(byTag.map((m) => `${m.repository}:${m.reference}`).sort()).toEqual(
      [...expectedTags(pushes).keys()].sort(),
    );
    for (const [i, [ref, content]] of tags.entries()) {
      expect(content, ref).toBeDefined();
      expect(byTag[i]?.content.digest, ref).toBe(pushedManifest(content).digest);
    }
    const types = new Set(byTag.map((m) => m.content.mediaType));
    for (const type of [
      MediaType.OciManifest,
      MediaType.OciIndex,
      MediaType.DockerManifest,
      MediaType.DockerManifestList,
    ]) {
      expect(types).toContain(type);
    }
    await expect(fetch(`http://127.0.0.1:${upstreamPort}/v2/`)).rejects.toThrow();
    expect(server?.logs.find((entry) => entry.msg === 'listening')?.root).toBe(root);
  });

  it('serves the catalog, tags, manifests and blobs docker-registry reported', async () => {
    const client = createRegistryClient({ registry: host, auth: { useConfigFiles: false } });
    try {
      const ours = await readRegistryContents(client);
      expect(ours.repositories).toEqual(served.repositories);
      expect(ours.tags).toEqual(served.tags);
      expect(ours.manifests).toHaveLength(served.manifests.length);
      for (const [i, { repository, reference, content }] of served.manifests.entries()) {
        const got = ours.manifests[i];
        expect(`${got?.repository}:${got?.reference}`).toBe(`${repository}:${reference}`);
        expect(got?.content.digest, `${repository}:${reference}`).toBe(content.digest);
        expect(got?.content.mediaType, `${repository}:${reference}`).toBe(content.mediaType);
        expect(Buffer.from(got?.content.bytes ?? []).equals(Buffer.from(content.bytes))).toBe(true);
      }
      expect(ours.blobs).toEqual(served.blobs);
    } finally {
      await client.close();
    }
  });

  it('skopeo inspect --raw: every tag, byte for byte the manifest docker-registry had', async () => {
    for (const [ref, content] of tags) {
      const top = pushedManifest(content);
      const raw = await skopeo(['inspect', '--raw', '--tls-verify=false', `docker://${host}/${ref}`]);
      expect(digestOf(raw), ref).toBe(top.digest);
      expect(raw.equals(Buffer.from(top.bytes)), ref).toBe(true);
    }
  });

  it('skopeo copy --all --preserve-digests: every tag, every platform, with identical digests', async () => {
    // skopeo makes the layout's directory, not its parent
    await mkdir(join(work, 'copies'), { recursive: true });
    for (const [position, [ref, content]] of tags.entries()) {
      const top = pushedManifest(content);
      const dir = join(work, 'copies', String(position));
      const files = new Map<string, Digest>();
      if (isDockerList(content)) {
        // skopeo 1.9 cannot write a Docker manifest list into an OCI layout without converting it
        // (which --preserve-digests forbids): its own dir: transport keeps every manifest as it is
        await skopeoCopy(`docker://${host}/${ref}`, `dir:${dir}`);
        files.set(join(dir, 'manifest.json'), top.digest);
        for (const image of pushedImages(content)) {
          files.set(join(dir, `${image.manifest.digest.slice(7)}.manifest.json`), image.manifest.digest);
          for (const blob of image.blobs)
            files.set(join(dir, blob.descriptor.digest.slice(7)), blob.descriptor.digest);
        }
      } else {
        const tag = ref.slice(ref.lastIndexOf(':') + 1);
        await skopeoCopy(`docker://${host}/${ref}`, `oci:${dir}:${tag}`);
        const index = JSON.parse(await readFile(join(dir, 'index.json'), 'utf8')) as {
          manifests: { digest: string; mediaType: string; annotations?: Record<string, string> }[];
        };
        expect(index.manifests, ref).toHaveLength(1);
        expect(index.manifests[0]?.annotations?.['org.opencontainers.image.ref.name'], ref).toBe(tag);
        expect(index.manifests[0]?.digest, ref).toBe(top.digest);
        expect(index.manifests[0]?.mediaType, ref).toBe(top.mediaType);
        const blob = (digest: string) => join(dir, 'blobs', 'sha256', digest.slice(7));
        files.set(blob(top.digest), top.digest);
        for (const image of pushedImages(content)) {
          files.set(blob(image.manifest.digest), image.manifest.digest);
          for (const layer of image.blobs) files.set(blob(layer.descriptor.digest), layer.descriptor.digest);
        }
      }
      await expectFiles(files, ref);
    }
  });

  it('podman pulls every tag: the digest it records is the tag digest, the image the platform it runs on', async () => {
    for (const [ref, content] of tags) {
      const name = `${host}/${ref}`;
      const repository = name.slice(0, name.lastIndexOf(':'));
      const top = pushedManifest(content);
      pulled.push(name);
      await podman('pull', '--quiet', '--tls-verify=false', name);
      // for an index podman pulls one platform's image and records the index's digest for it
      expect((await podman('image', 'inspect', '--format', '{{.Digest}}', name)).trim(), ref).toBe(
        top.digest,
      );
      const [inspected] = JSON.parse(await podman('image', 'inspect', name)) as {
        Id: string;
        RepoDigests: string[];
      }[];
      const images = pushedImages(content);
      const image = (
        images.length === 1 ? images[0] : images.find((i) => i.platform.architecture === hostArchitecture)
      ) as RandomImage;
      expect(image, ref).toBeDefined();
      expect(inspected?.Id, ref).toBe(image.config.descriptor.digest.slice(7));
      // by the tag's digest and, for an index, by the digest of the platform's manifest too
      const digests = new Set([top.digest, image.manifest.digest]);
      expect([...(inspected?.RepoDigests ?? [])].sort(), ref).toEqual(
        [...digests].map((digest) => `${repository}@${digest}`).sort(),
      );
    }
  }, 90_000);
});
