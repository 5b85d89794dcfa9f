// Faults: the database connection terminated in the middle of repository
// transactions (pg_terminate_backend on busy backends only): the import retries
// those repositories and succeeds with the same rows as an undisturbed import,
// and a rerun changes nothing. Every repository records a configuration media
// type no migration seeds, so a retry that reused an id from its rolled-back
// attempt would fail.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createPgliteDatabase, createPostgresDatabase, migrate } from '@stowage/metadata-db';
import {
  createTestDatabase,
  DistributionTreeWriter,
  populateTree,
  postgresPeer,
  requirePeers,
  terminateConnections,
} from '@stowage/testing';
import { afterAll, describe, expect, it } from 'vitest';
import { fakeClock } from '../test/fake-clock.js';
import { readRows } from '../test/fixture.js';
import { importTree } from './importer.js';

const postgres = await postgresPeer();
const dirs: string[] = [];
afterAll(async () => {
  for (const dir of dirs) await rm(dir, { recursive: true, force: true });
});

describe('importing while the database connection is killed', () => {
  if (!requirePeers(postgres)) return;

  it('retries the interrupted repositories and ends with the undisturbed rows', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'stowage-faults-'));
    dirs.push(dir);
    const tree = new DistributionTreeWriter(dir);
    const names = await populateTree(tree, { repositories: 40, tagsPerRepository: 25 });
    // tagged first in each repository ('0' sorts before 'v'): a new config media type is inserted at
    // the start of the transaction, and a layer media type no migration seeds is met
    for (const [i, repository] of names.entries()) {
      const layer = await tree.blob(`odd layer of ${repository}`);
      await tree.layerLink(repository, layer);
      const odd = await tree.image(repository, {
        configMediaType: `application/vnd.stowage.fault-test.config.r${i}+json`,
        layers: [
          {
            digest: layer,
            size: Buffer.byteLength(`odd layer of ${repository}`),
            mediaType: `application/vnd.stowage.fault-test.layer.r${i}.tar`,
          },
        ],
      });
      await tree.tag(repository, '0-odd', odd.digest);
    }

    // the rows an undisturbed import produces
    const reference = await createPgliteDatabase();
    await migrate(reference);
    await importTree({ db: reference, root: dir, lockfiles: false, statistics: false });
    const expected = await readRows(reference);
    await reference.close();

    const test = await createTestDatabase();
    const db = createPostgresDatabase({ connectionString: test.url, max: 2 });
    try {
      await migrate(db);
      let kills = 0;
      let running = true;
      let importing = false;
      const killer = (async () => {
        while (running && kills < 6) {
          await new Promise((resolve) => setTimeout(resolve, 40 + Math.random() * 60));
          // from the first repository on (not the migration check), and only backends at work
          if (importing && running) kills += await terminateConnections(test.name);
        }
      })();
      const first = await importTree({
        db,
        root: dir,
        lockfiles: false,
        retryBudgetMs: 30_000,
        // the waits between attempts pass on this clock at once: the kills are real, the backoff is not slept
        clock: fakeClock(),
        onProgress: () => {
          importing = true;
        },
      }).then(
        (result) => ({ ok: true as const, result }),
        (error: unknown) => ({ ok: false as const, error }),
      );
      running = false;
      await killer;
      expect(kills).toBeGreaterThan(0);
      // the import went through the retry path and succeeded
      expect(first.ok ? undefined : first.error).toBeUndefined();
      expect(first.ok && first.result.retries).toBeGreaterThan(0);
      // nothing half-imported: every repository present has all its tags
      const partial = await readRows(db);
      for (const repository of partial.repositories) {
        const want = expected.tags.filter((t) => t.startsWith(`${repository} `));
        const have = partial.tags.filter((t) => t.startsWith(`${repository} `));
        expect(have, repository).toEqual(want);
      }
      expect(partial).toEqual(expected);
      await importTree({ db, root: dir, lockfiles: false });
      expect(await readRows(db)).toEqual(expected);
      const types = await db.query<{ n: unknown }>(
        "SELECT count(*) AS n FROM media_types WHERE media_type LIKE 'application/vnd.stowage.fault-test.config.%'",
      );
      expect(Number(types.rows[0]?.n)).toBe(names.length);
    } finally {
      await db.close();
      await test.drop();
    }
  }, 120_000);
});
