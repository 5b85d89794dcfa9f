// One of the processes of the multi-process records test: runs opsFor(label,
// count) against the store at `root`, printing "ack <n>" after each operation
// returns, then "done <records of the other worker it saw>".
import { createImageStore } from '../src/index.js';
import { CONTESTED, opsFor, SHARED_REPOSITORY } from './records-ops.js';

const [root, label, other, count, manifestFile] = process.argv.slice(2) as [
  string,
  string,
  string,
  string,
  string,
];
const { readFile } = await import('node:fs/promises');
const manifest = JSON.parse(await readFile(manifestFile, 'utf8')) as { bytes: string; mediaType: string };
const manifestBytes = Buffer.from(manifest.bytes, 'base64');
const store = await createImageStore({ root, staleLockMs: Number(process.env.LOCK_STALE_MS ?? 10_000) });
const ops = opsFor(label, Number(count));
let seen = 0;
process.stdout.write('start\n');
for (const [n, op] of ops.entries()) {
  switch (op.kind) {
    case 'create':
      await store.images.create({ id: op.id, names: [op.name] });
      break;
    case 'rename':
      await store.images.setNames(op.id, [op.name]);
      break;
    case 'delete':
      await store.images.delete(op.id);
      break;
    case 'tag':
      await store.putManifest(SHARED_REPOSITORY, op.tag, {
        bytes: manifestBytes,
        mediaType: manifest.mediaType,
      });
      break;
    case 'untag':
      await store.deleteTag(SHARED_REPOSITORY, op.tag);
      break;
    case 'contest':
      await store.images.addNames(op.id, [CONTESTED]);
      break;
    case 'peek': {
      const all = await store.images.list();
      seen = Math.max(seen, all.filter((r) => r.id.startsWith(`${other}-`)).length);
      break;
    }
  }
  process.stdout.write(`ack ${n + 1}\n`);
}
await store.close();
process.stdout.write(`done ${seen}\n`);
