// A sync run for the crash test: mirrors every repository of an upstream into
// an image store and SIGKILLs itself once it has moved `killAtBytes` bytes.
// It kills only while no upload session is being opened: the one moment the
// journal cannot yet name a session (documented, left to the store's purge).
// Prints `done <report JSON>` when it finishes first.
import { createImageStore } from '@stowage/image-store';
import type { Registry } from '@stowage/oci';
import { parseSyncConfig, runSyncPass } from '../src/index.js';

const [root, upstream, stateDir, killAt] = process.argv.slice(2) as [string, string, string, string];
const killAtBytes = Number(killAt);
const store = await createImageStore({ root });
let opening = 0;
let moved = 0;
const destination = new Proxy(store, {
  get(target, key, receiver) {
    const value = Reflect.get(target, key, receiver);
    if (key !== 'startUpload' || typeof value !== 'function') return value;
    return async (...args: unknown[]) => {
      opening++;
      try {
        return await value.apply(target, args);
      } finally {
        opening--;
      }
    };
  },
}) as Registry;
const config = await parseSyncConfig({
  registries: [{ urls: [upstream], content: [{ prefix: '**' }], retryDelay: '10ms', concurrency: 3 }],
});
const report = await runSyncPass({
  config,
  destination,
  stateDir,
  onEvent: (event) => {
    if (event.type !== 'bytes') return;
    moved += event.bytes;
    if (moved >= killAtBytes && opening === 0) process.kill(process.pid, 'SIGKILL');
  },
});
await store.close();
process.stdout.write(`done ${JSON.stringify(report)}\n`);
