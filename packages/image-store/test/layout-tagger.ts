// Tags one image many times in an OCI layout from its own process, for the
// cross-process index.json test: prints "ready", waits for a line on stdin so
// that every tagger starts at once, then prints "done".
import { pushImage, randomImage } from '@stowage/testing';
import { createOciLayoutRegistry } from '../src/index.js';

const [dir, prefix, count] = process.argv.slice(2) as [string, string, string];
const registry = createOciLayoutRegistry({ directories: { app: dir } });
const image = randomImage({ seed: 7 });
await pushImage(registry, 'app', image, `${prefix}-first`);
process.stdout.write('ready\n');
await new Promise((resolve) => process.stdin.once('data', resolve));
for (let i = 0; i < Number(count); i++) {
  await registry.putManifest('app', `${prefix}-${i}`, {
    bytes: image.manifest.bytes,
    mediaType: image.manifest.mediaType,
  });
}
await registry.close();
process.stdout.write('done\n');
