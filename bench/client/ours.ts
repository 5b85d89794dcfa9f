// One side of bench/client, run in its own process so its peak RSS is its own:
//   ours.ts push <layoutDir> <tag> <registryHost> <repository>
//   ours.ts pull <registryHost> <repository> <tag> <layoutDir>
// Pushes an OCI layout's image to a registry, or pulls one into an OCI layout,
// streaming every blob. Prints {"seconds":…,"maxRssMiB":…}.
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { type Descriptor, type Digest, manifestReferences, parseManifest } from '@stowage/oci';
import { createRegistryClient } from '@stowage/registry-client';

const [mode, ...args] = process.argv.slice(2);
const started = performance.now();
const blobPath = (dir: string, digest: Digest) => join(dir, 'blobs', ...digest.split(':'));

async function inParallel<T>(
  items: readonly T[],
  limit: number,
  fn: (item: T) => Promise<void>,
): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, items.length) }, async () => {
      while (next < items.length) await fn(items[next++] as T);
    }),
  );
}

if (mode === 'push') {
  const [dir, tag, host, repository] = args as [string, string, string, string];
  const client = createRegistryClient({ registry: host });
  const index = JSON.parse(await readFile(join(dir, 'index.json'), 'utf8')) as { manifests: Descriptor[] };
  const top = index.manifests.find(
    (m) => m.annotations?.['org.opencontainers.image.ref.name'] === tag,
  ) as Descriptor;
  const bytes = await readFile(blobPath(dir, top.digest));
  const parsed = parseManifest(bytes, { mediaType: top.mediaType });
  await inParallel(manifestReferences(parsed).blobs, 4, async (blob) => {
    await client.putBlob(
      repository,
      () => createReadStream(blobPath(dir, blob.digest), { highWaterMark: 1 << 20 }),
      {
        digest: blob.digest,
        size: blob.size,
      },
    );
  });
  await client.putManifest(repository, tag, { bytes, mediaType: parsed.mediaType });
  await client.close();
} else if (mode === 'pull') {
  const [host, repository, tag, dir] = args as [string, string, string, string];
  const client = createRegistryClient({ registry: host });
  const manifest = await client.getManifest(repository, tag);
  const parsed = parseManifest(manifest.bytes, { mediaType: manifest.mediaType });
  await mkdir(join(dir, 'blobs', 'sha256'), { recursive: true });
  await inParallel(manifestReferences(parsed).blobs, 4, async (blob) => {
    const content = await client.getBlob(repository, blob.digest);
    const target = blobPath(dir, blob.digest);
    await pipeline(content.stream, createWriteStream(`${target}.partial`));
    await rename(`${target}.partial`, target);
  });
  await writeFile(blobPath(dir, manifest.digest), manifest.bytes);
  await writeFile(join(dir, 'oci-layout'), '{"imageLayoutVersion":"1.0.0"}');
  const ref = { mediaType: manifest.mediaType, digest: manifest.digest, size: manifest.size };
  await writeFile(
    join(dir, 'index.json'),
    JSON.stringify({
      schemaVersion: 2,
      manifests: [{ ...ref, annotations: { 'org.opencontainers.image.ref.name': tag } }],
    }),
  );
  await client.close();
} else {
  console.error('usage: ours.ts push <dir> <tag> <host> <repo> | pull <host> <repo> <tag> <dir>');
  process.exit(2);
}
console.log(
  JSON.stringify({
    seconds: (performance.now() - started) / 1000,
    maxRssMiB: process.resourceUsage().maxRSS / 1024,
  }),
);
