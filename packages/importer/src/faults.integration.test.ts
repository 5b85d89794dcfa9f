// Faults: the database connection terminated mid-import (pg_terminate_backend):
// the import retries or rolls back that repository, and a rerun completes with
// the same final rows as an undisturbed import.
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
import { readRows } from '../test/fixture.js';
import { importTree } from './importer.js';

const postgres = await postgresPeer();
const dirs: string[] = [];
afterAll(async () => {
  for (const dir of dirs) await rm(dir, { recursive: true, force: true });
});

describe('importing while the database connection is killed', () => {
  if (!requirePeers(postgres)) return;

  it('retries or rolls back the repository, and a rerun converges to the undisturbed rows', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'stowage-faults-'));
    dirs.push(dir);
    const tree = new DistributionTreeWriter(dir);
    await populateTree(tree, { repositories: 40, tagsPerRepository: 25 });

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
      const killer = (async () => {
        while (running && kills < 6) {
          await new Promise((resolve) => setTimeout(resolve, 40 + Math.random() * 60));
          kills += await terminateConnections(test.name);
        }
      })();
      const first = await importTree({ db, root: dir, lockfiles: false, retryBudgetMs: 30_000 }).then(
        (result) => ({ ok: true as const, result }),
        (error: unknown) => ({ ok: false as const, error }),
      );
      running = false;
      await killer;
      expect(kills).toBeGreaterThan(0);
      if (first.ok) expect(first.result.retries).toBeGreaterThan(0);
      // whatever happened, nothing half-imported: every repository present has all its tags
      const partial = await readRows(db);
      for (const repository of partial.repositories) {
        const want = expected.tags.filter((t) => t.startsWith(`${repository} `));
        const have = partial.tags.filter((t) => t.startsWith(`${repository} `));
        expect(have, repository).toEqual(want);
      }
      await importTree({ db, root: dir, lockfiles: false });
      expect(await readRows(db)).toEqual(expected);
    } finally {
      await db.close();
      await test.drop();
    }
  }, 120_000);
});
