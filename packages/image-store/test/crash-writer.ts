// A writer for the crash test: pushes blobs and small manifests into a store
// until it is killed, printing one line per acknowledged write.
import { digestOf, MediaType } from '@stowage/oci';
import { createImageStore } from '../src/index.js';

const [root, run] = process.argv.slice(2) as [string, string];
const store = await createImageStore({ root, indexFlushDelayMs: 5 });
const config = new TextEncoder().encode(
  JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] } }),
);
await store.putBlob('crash/app', config, { digest: digestOf(config) });
for (let i = 0; ; i++) {
  const layer = new Uint8Array(1024 + Math.floor(Math.random() * 256 * 1024));
  crypto.getRandomValues(layer.subarray(0, Math.min(layer.byteLength, 65536)));
  const digest = digestOf(layer);
  await store.putBlob('crash/app', layer, { digest, size: layer.byteLength });
  process.stdout.write(`blob ${digest}\n`);
  const manifest = new TextEncoder().encode(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: MediaType.OciManifest,
      config: { mediaType: MediaType.OciConfig, digest: digestOf(config), size: config.byteLength },
      layers: [{ mediaType: MediaType.OciLayer, digest, size: layer.byteLength }],
    }),
  );
  const pushed = await store.putManifest('crash/app', `${run}-${i}`, {
    bytes: manifest,
    mediaType: MediaType.OciManifest,
  });
  process.stdout.write(`tag ${run}-${i} ${pushed.digest}\n`);
}
