// The three steps run one by one reach the same rows as the full import;
// pre-import alone writes no tags; a repository filter imports only that one,
// leaves the lockfiles alone and refuses a repository the tree does not hold.
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createPgliteDatabase, type Database, decodeDigest, migrate } from '@stowage/metadata-db';
import { DistributionTreeWriter, populateTree } from '@stowage/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readRows } from '../test/fixture.js';
import { ImportError } from './errors.js';
import { importTree } from './importer.js';
import { Lockfiles } from './lockfiles.js';

let dir: string;
let names: string[];
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'stowage-modes-'));
  names = await populateTree(new DistributionTreeWriter(dir), { repositories: 6, tagsPerRepository: 5 });
});
afterAll(() => rm(dir, { recursive: true, force: true }));

async function fresh(): Promise<Database> {
  const db = await createPgliteDatabase();
  await migrate(db);
  return db;
}

describe('import modes', () => {
  it('step one, two and three in turn equal the full import', async () => {
    const full = await fresh();
    await importTree({ db: full, root: dir, lockfiles: false });
    const expected = await readRows(full);
    await full.close();

    const db = await fresh();
    const one = await importTree({ db, root: dir, mode: 'pre-import', lockfiles: false });
    expect(one.rows.tags).toBe(0);
    expect(one.rows.manifests).toBe(expected.manifests.length);
    const published = await db.query('SELECT 1 FROM repositories WHERE last_published_at IS NOT NULL');
    expect(published.rows).toHaveLength(6);
    // a second pre-import skips what was pre-imported recently
    const again = await importTree({
      db,
      root: dir,
      mode: 'pre-import',
      lockfiles: false,
      preImportSkipRecentMs: 3_600_000,
    });
    expect(again.manifests).toBe(0);
    const two = await importTree({ db, root: dir, mode: 'import' });
    expect(two.rows.tags).toBe(30);
    expect(two.rows.blobs).toBeLessThan(expected.blobs.length); // manifest payload blobs come with step three
    await importTree({ db, root: dir, mode: 'blobs' });
    expect(await readRows(db)).toEqual(expected);
    await db.close();
  });

  it('a rerun reads no manifest it has and writes only the tag that moved; a pre-import reads them all again', async () => {
    const root = await mkdtemp(join(tmpdir(), 'stowage-rerun-'));
    try {
      const writer = new DistributionTreeWriter(root);
      const [repository] = await populateTree(writer, { repositories: 2, tagsPerRepository: 3 });
      const db = await fresh();
      const first = await importTree({ db, root, lockfiles: false });
      expect(first.manifests).toBeGreaterThan(0);
      const rows = await readRows(db);
      const second = await importTree({ db, root, lockfiles: false });
      expect([second.manifests, second.tags]).toEqual([0, first.tags]);
      expect(await readRows(db)).toEqual(rows);
      // a push since: one new manifest, read and imported; its tag moved; the rest untouched
      const pushed = await writer.image(repository as string, { layers: ['a layer pushed since'] });
      await writer.tag(repository as string, 'v0', pushed.digest);
      const third = await importTree({ db, root, lockfiles: false });
      expect([third.manifests, third.tags]).toEqual([1, first.tags]);
      const moved = await db.query<{ digest: Uint8Array }>(
        `SELECT m.digest FROM tags t JOIN manifests m ON m.id = t.manifest_id JOIN repositories r ON r.id = t.repository_id
         WHERE r.path = $1 AND t.name = 'v0'`,
        [repository],
      );
      expect(decodeDigest(moved.rows[0]?.digest ?? new Uint8Array())).toBe(pushed.digest);
      // pre-import trusts no row: every tagged manifest is read again (container-registry#652);
      // as many as the first time, since v0 left one manifest for another
      const pre = await importTree({ db, root, mode: 'pre-import', lockfiles: false });
      expect(pre.manifests).toBe(first.manifests);
      await db.close();
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });

  it('imports only the repositories asked for', async () => {
    const db = await fresh();
    const target = names[2] as string;
    await importTree({ db, root: dir, mode: 'import', repositories: [target], lockfiles: false });
    expect((await readRows(db)).repositories).toEqual([target]);
    await db.close();
  });

  it('leaves the lockfiles alone when importing only some repositories', async () => {
    const db = await fresh();
    const target = names[1] as string;
    const locks = new Lockfiles(join(dir, 'docker/registry'));
    await rm(locks.dir, { recursive: true, force: true }); // the step-two run above wrote them
    await importTree({ db, root: dir, repositories: [target] });
    await importTree({ db, root: dir, mode: 'import', repositories: [target], dryRun: true });
    expect(await readdir(locks.dir).catch(() => [])).toEqual([]);
    // the whole registry does move them
    await importTree({ db, root: dir, mode: 'import' });
    expect(await locks.read('database-in-use')).toBe('{"version":1}');
    await rm(locks.dir, { recursive: true, force: true });
    await db.close();
  });

  it('refuses a repository the tree does not hold (naming it) and invalid options, before writing anything', async () => {
    const db = await fresh();
    const error = await importTree({
      db,
      root: dir,
      mode: 'import',
      repositories: [names[0] as string, 'team0/no-such-app', '../escape'],
      lockfiles: false,
    }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ImportError);
    expect((error as ImportError).code).toBe('NAME_UNKNOWN');
    expect((error as ImportError).message).toMatch(/"team0\/no-such-app", "\.\.\/escape"/);
    expect((error as ImportError).details).toEqual({ repositories: ['team0/no-such-app', '../escape'] });
    expect((await readRows(db)).repositories).toEqual([]);
    for (const tagConcurrency of [0, 2.5, Number.NaN]) {
      const invalid = await importTree({ db, root: dir, tagConcurrency }).catch((e: unknown) => e);
      expect((invalid as ImportError).code, String(tagConcurrency)).toBe('OPTIONS_INVALID');
    }
    await db.close();
  });

  it('a pre-import dry run leaves nothing either', async () => {
    const db = await fresh();
    const result = await importTree({ db, root: dir, mode: 'pre-import', dryRun: true, lockfiles: false });
    expect(result.rows.manifests).toBeGreaterThan(0);
    for (const rows of Object.values(await readRows(db))) expect(rows).toEqual([]);
    await db.close();
  });
});
