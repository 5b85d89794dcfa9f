// Online GC under load, through stowage-server in database mode: twenty
// pushers of images sharing layers, some waiting past the review delay between
// their blobs and their manifest, while the server's GC workers review with a
// delay of two seconds. Afterwards every acknowledged manifest pulls whole; a
// manifest whose blob was collected first was refused with
// MANIFEST_BLOB_UNKNOWN and accepted once its blobs were pushed again; and,
// once the delay has passed, nothing that nothing references is left: not in
// the database, not in the blob files.
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createPostgresDatabase, decodeDigest, migrate } from '@stowage/metadata-db';
import { type Digest, digestOf, isStowageError } from '@stowage/oci';
import { createRegistryClient, type RegistryClient } from '@stowage/registry-client';
import {
  collect,
  createTestDatabase,
  postgresPeer,
  pushImage,
  type RandomBlob,
  type RandomImage,
  randomBlob,
  randomImage,
  requirePeers,
  type TestDatabase,
} from '@stowage/testing';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { loadConfig } from './config.js';
import { type RunningServer, startServer } from './server.js';

const postgres = await postgresPeer();
const REVIEW_DELAY_MS = 2000;
const PUSHERS = 20;
const IMAGES_PER_PUSHER = 4;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Every blob file under a distribution-layout root, by digest. */
async function blobFiles(root: string): Promise<Set<Digest>> {
  const found = new Set<Digest>();
  const base = join(root, 'docker/registry/v2/blobs/sha256');
  for (const shard of await readdir(base).catch(() => [] as string[])) {
    for (const hex of await readdir(join(base, shard))) found.add(`sha256:${hex}` as Digest);
  }
  return found;
}

describe('online GC under load through stowage-server in database mode', () => {
  if (!requirePeers(postgres)) return;
  let database: TestDatabase;
  let root: string;
  let running: RunningServer;
  let client: RegistryClient;
  /** The first case's image, tagged at its end: its blobs are kept too. */
  const lateImage = randomImage({ layers: 2 });

  beforeAll(async () => {
    database = await createTestDatabase('stowage_online_gc');
    const db = createPostgresDatabase({ connectionString: database.url });
    await migrate(db);
    await db.close();
    root = await mkdtemp(join(tmpdir(), 'stowage-online-gc-'));
    const config = await loadConfig({
      overrides: {
        'storage.filesystem.rootdirectory': root,
        'http.addr': '127.0.0.1:0',
        'database.url': database.url,
        'gc.reviewafter': `${REVIEW_DELAY_MS}ms`,
        'gc.interval': '100ms',
        'gc.deleteuntagged': true,
      },
    });
    running = await startServer(config, { logger: pino({ level: 'silent' }) });
    client = createRegistryClient({ registry: new URL(running.url).host, auth: { useConfigFiles: false } });
  });

  afterAll(async () => {
    await client?.close();
    await running?.close();
    await database?.drop();
    if (root) await rm(root, { recursive: true, force: true });
  });

  it('a manifest whose layer was collected first is refused cleanly, and accepted once its blobs are pushed again', async () => {
    const image = lateImage;
    for (const blob of image.blobs) {
      await client.putBlob('gc/late', blob.bytes, {
        digest: blob.descriptor.digest,
        size: blob.descriptor.size,
      });
    }
    await vi.waitFor(
      async () =>
        expect(await client.headBlob('gc/late', image.layers[0]!.descriptor.digest)).toBeUndefined(),
      { timeout: REVIEW_DELAY_MS * 5, interval: 100 },
    );
    const put = { bytes: image.manifest.bytes, mediaType: image.manifest.mediaType };
    const refused = await client.putManifest('gc/late', 'v1', put).catch((error: unknown) => error);
    expect(isStowageError(refused, 'MANIFEST_BLOB_UNKNOWN')).toBe(true);
    expect(await client.headManifest('gc/late', 'v1')).toBeUndefined();
    await pushImage(client, 'gc/late', image, 'v1');
    expect((await client.getManifest('gc/late', 'v1')).digest).toBe(image.manifest.digest);
  }, 30_000);

  it('twenty pushers sharing layers: every acknowledged manifest pulls whole, and what nothing keeps is gone after the delay', async () => {
    const shared: RandomBlob[] = Array.from({ length: 6 }, () => randomBlob(4096));
    /** The image each tag ends on. */
    const tagged = new Map<string, { repository: string; image: RandomImage }>();
    let lateManifests = 0;
    const pusher = async (p: number) => {
      const repository = `load/p${p % 5}`;
      for (let j = 0; j < IMAGES_PER_PUSHER; j++) {
        const image = randomImage({
          layers: 1,
          layerSize: 2048,
          sharedLayers: [
            shared[(p + j) % shared.length] as RandomBlob,
            shared[(p * 3 + j) % shared.length] as RandomBlob,
          ],
        });
        const tag = `t${p}-${j % 2}`; // every other image moves a tag, leaving the one before untagged
        for (let attempt = 1; ; attempt++) {
          for (const blob of image.blobs) {
            await client.putBlob(repository, blob.bytes, {
              digest: blob.descriptor.digest,
              size: blob.descriptor.size,
            });
          }
          // some pushers wait past the review delay: their blobs may be collected before the manifest
          if (attempt === 1 && (p + j) % 4 === 0) {
            lateManifests++;
            await sleep(REVIEW_DELAY_MS + 300);
          }
          try {
            await client.putManifest(repository, tag, {
              bytes: image.manifest.bytes,
              mediaType: image.manifest.mediaType,
            });
            break;
          } catch (error) {
            // a blob collected before the manifest came: push them again, then the manifest
            if (!isStowageError(error, 'MANIFEST_BLOB_UNKNOWN')) throw error;
          }
        }
        tagged.set(`${repository}:${tag}`, { repository, image });
      }
    };
    await Promise.all(Array.from({ length: PUSHERS }, (_, p) => pusher(p)));
    expect(lateManifests).toBeGreaterThan(0);

    // every tag pulls whole: its manifest, and every blob hashing to its digest
    const pullAll = async () => {
      for (const [key, { repository, image }] of tagged) {
        const tag = key.slice(key.indexOf(':') + 1);
        expect((await client.getManifest(repository, tag)).digest).toBe(image.manifest.digest);
        for (const blob of image.blobs) {
          const content = await client.getBlob(repository, blob.descriptor.digest);
          expect(digestOf(await collect(content.stream))).toBe(blob.descriptor.digest);
        }
      }
    };
    await pullAll();

    // after the delay, the reviews have removed every untagged manifest and every blob nothing references
    const keptBlobs = new Set<Digest>(lateImage.blobs.map((blob) => blob.descriptor.digest));
    for (const { image } of tagged.values())
      for (const blob of image.blobs) keptBlobs.add(blob.descriptor.digest);
    const db = createPostgresDatabase({ connectionString: database.url });
    try {
      const referencedNow = async () => {
        const { rows } = await db.query<{ digest: Uint8Array }>('SELECT digest FROM blobs');
        return new Set(rows.map((row) => decodeDigest(row.digest)));
      };
      const manifestsNow = async () => {
        const { rows } = await db.query<{ n: string }>(
          `SELECT count(*) AS n FROM manifests m JOIN repositories r ON r.id = m.repository_id WHERE r.path LIKE 'load/%'`,
        );
        return Number(rows[0]?.n);
      };
      await vi.waitFor(
        async () => {
          expect(await manifestsNow()).toBe(tagged.size);
          expect(await referencedNow()).toEqual(keptBlobs);
        },
        { timeout: REVIEW_DELAY_MS * 10, interval: 200 },
      );
      // the files are exactly the blobs kept: none lost, none left behind
      expect(await blobFiles(root)).toEqual(keptBlobs);
    } finally {
      await db.close();
    }
    await pullAll();
  }, 90_000);
});
