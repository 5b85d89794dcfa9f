// Writes OCI image layouts of random gzip layers, for the benches that push them
// (skopeo copy oci:<dir>:<tag> reads the same layout).
import { createHash, randomFillSync } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { createGzip } from 'node:zlib';
import { MediaType } from '@stowage/oci';

/** Writes a gzip layer (stored blocks of random bytes: skopeo sees it is compressed and copies it as is). */
async function writeLayer(dir: string, bytes: number): Promise<{ digest: string; size: number }> {
  const temp = join(dir, 'blobs', 'sha256', `layer-${Math.random()}`);
  const hash = createHash('sha256');
  let size = 0;
  async function* random() {
    const chunk = Buffer.alloc(1 << 20);
    for (let left = bytes; left > 0; left -= chunk.byteLength) {
      randomFillSync(chunk);
      yield left >= chunk.byteLength ? chunk : chunk.subarray(0, left);
    }
  }
  await pipeline(
    random(),
    createGzip({ level: 0 }),
    async function* (source: AsyncIterable<Buffer>) {
      for await (const chunk of source) {
        hash.update(chunk);
        size += chunk.byteLength;
        yield chunk;
      }
    },
    createWriteStream(temp),
  );
  const hex = hash.digest('hex');
  await rename(temp, join(dir, 'blobs', 'sha256', hex));
  return { digest: `sha256:${hex}`, size };
}

async function writeBlob(dir: string, content: string): Promise<{ digest: string; size: number }> {
  const hex = createHash('sha256').update(content).digest('hex');
  await writeFile(join(dir, 'blobs', 'sha256', hex), content);
  return { digest: `sha256:${hex}`, size: Buffer.byteLength(content) };
}

export async function writeLayout(
  dir: string,
  tag: string,
  layers: number,
  layerBytes: number,
): Promise<void> {
  await mkdir(join(dir, 'blobs', 'sha256'), { recursive: true });
  const written = [];
  for (let i = 0; i < layers; i++) written.push(await writeLayer(dir, layerBytes));
  const config = await writeBlob(
    dir,
    JSON.stringify({
      architecture: 'amd64',
      os: 'linux',
      rootfs: { type: 'layers', diff_ids: written.map((l) => l.digest) },
    }),
  );
  const manifest = JSON.stringify({
    schemaVersion: 2,
    mediaType: MediaType.OciManifest,
    config: { mediaType: MediaType.OciConfig, ...config },
    layers: written.map((l) => ({ mediaType: MediaType.OciLayerGzip, ...l })),
  });
  const top = await writeBlob(dir, manifest);
  await writeFile(join(dir, 'oci-layout'), '{"imageLayoutVersion":"1.0.0"}');
  await writeFile(
    join(dir, 'index.json'),
    JSON.stringify({
      schemaVersion: 2,
      manifests: [
        {
          mediaType: MediaType.OciManifest,
          ...top,
          annotations: { 'org.opencontainers.image.ref.name': tag },
        },
      ],
    }),
  );
}
