// Takes a store lock in its own process for the lock tests, prints "held",
// then releases it after the given time or, without one, holds it until killed.
import { createImageStore } from '../src/index.js';

const [root, name, releaseAfter] = process.argv.slice(2) as [string, string, string?];
const store = await createImageStore({ root, staleLockMs: Number(process.env.LOCK_STALE_MS ?? 60_000) });
const lock = await store.lock(name);
process.stdout.write('held\n');
if (releaseAfter === undefined) setInterval(() => {}, 1 << 30);
else
  setTimeout(async () => {
    process.stdout.write('releasing\n');
    await lock.release();
    await store.close();
  }, Number(releaseAfter));
