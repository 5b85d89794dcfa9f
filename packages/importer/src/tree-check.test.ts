// A path that is not a registry's storage tree is refused with
// NOT_A_DISTRIBUTION_TREE before anything is written (no lockfile, no log
// file, no row, no statistics), and a dry run touches no lockfile: it runs
// after a completed import and leaves a tree without lockfiles without them.
import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createImageStore } from '@stowage/image-store';
import { createPgliteDatabase, type Database, migrate } from '@stowage/metadata-db';
import { DistributionTreeWriter, populateTree, pushImage, randomImage, snapshotTree } from '@stowage/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ImportError } from './errors.js';
import { importTree } from './importer.js';
import { openDistributionTree } from './layout.js';

let work: string;
let db: Database;
beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'stowage-tree-check-'));
  db = await createPgliteDatabase();
  await migrate(db);
});
afterAll(async () => {
  await db?.close();
  await rm(work, { recursive: true, force: true });
});

async function rowsWritten(): Promise<number> {
  const { rows } = await db.query<{ n: unknown }>(
    'SELECT (SELECT count(*) FROM repositories) + (SELECT count(*) FROM blobs) + (SELECT count(*) FROM import_statistics) AS n',
  );
  return Number(rows[0]?.n);
}

describe('a path that is not a distribution tree', () => {
  it('is refused, naming what it is and what to give, and nothing is written', async () => {
    const cases = join(work, 'cases');
    await mkdir(cases);
    const file = join(cases, 'a-file');
    await writeFile(file, 'not a tree');
    const empty = join(cases, 'empty');
    await mkdir(empty);
    const bareV2 = join(cases, 'bare-v2');
    await mkdir(join(bareV2, 'docker/registry/v2'), { recursive: true });
    // a real OCI image layout, as Stowage's image store (and skopeo's oci: transport) writes it
    const store = await createImageStore({ root: join(cases, 'store') });
    await pushImage(store, 'demo/app', randomImage({ layers: 1 }), 'v1');
    await store.flush();
    await store.close();
    const layout = join(cases, 'store', 'demo/app');
    expect((await stat(join(layout, 'oci-layout'))).isFile()).toBe(true);
    // a real tree given one level too deep
    const tree = new DistributionTreeWriter(join(cases, 'tree'));
    await populateTree(tree, { repositories: 1, tagsPerRepository: 1 });

    const expected: [string, string, RegExp][] = [
      [join(cases, 'missing'), 'missing', /\/missing does not exist: give the registry's storage root/],
      [file, 'not-a-directory', /\/a-file is a file, not a directory: give the registry's storage root/],
      [empty, 'no-v2', /\/empty holds no docker\/registry\/v2 directory/],
      [bareV2, 'empty-v2', /\/bare-v2\/docker\/registry\/v2 holds neither repositories\/ nor blobs\//],
      [layout, 'oci-layout', /\/demo\/app is an OCI image layout, not a registry's storage tree/],
      [
        join(tree.root, 'docker'),
        'inside-the-tree',
        /give .*\/tree \(the directory holding docker\/registry\/v2\)/,
      ],
      [join(tree.root, 'docker/registry'), 'inside-the-tree', /give .*\/tree \(the directory holding/],
    ];
    const before = await snapshotTree(cases);
    for (const [root, reason, message] of expected) {
      // lockfiles on and a log file asked for: an import that got anywhere would write both
      const error = await importTree({ db, root, logFile: join(root, 'import.log') }).catch(
        (e: unknown) => e,
      );
      expect(error, root).toBeInstanceOf(ImportError);
      expect((error as ImportError).code, root).toBe('NOT_A_DISTRIBUTION_TREE');
      expect((error as ImportError).details, root).toMatchObject({ root, reason });
      expect((error as ImportError).message, root).toMatch(message);
      await expect(openDistributionTree(root)).rejects.toThrow(message);
    }
    // a dry run, a step and a subset are refused the same way
    for (const options of [{ dryRun: true }, { mode: 'blobs' as const }, { repositories: ['team0/app0'] }]) {
      const error = await importTree({ db, root: empty, ...options }).catch((e: unknown) => e);
      expect((error as ImportError).code, JSON.stringify(options)).toBe('NOT_A_DISTRIBUTION_TREE');
    }
    expect(await snapshotTree(cases)).toEqual(before);
    expect(await rowsWritten()).toBe(0);
  }, 60_000);

  it('a tree, or its docker/registry/v2, is accepted', async () => {
    const tree = new DistributionTreeWriter(join(work, 'accepted'));
    await populateTree(tree, { repositories: 1, tagsPerRepository: 1 });
    expect((await openDistributionTree(tree.root)).v2).toBe(tree.v2);
    expect((await openDistributionTree(tree.v2)).v2).toBe(tree.v2);
    // blobs alone (a registry whose repositories were all deleted) is a tree too
    const blobsOnly = new DistributionTreeWriter(join(work, 'blobs-only'));
    await blobsOnly.blob('x');
    expect((await openDistributionTree(blobsOnly.root)).v2).toBe(blobsOnly.v2);
  });
});

describe('a dry run', () => {
  it('touches no lockfile: it runs after a completed import and writes none on a tree without them', async () => {
    const root = join(work, 'dry');
    await populateTree(new DistributionTreeWriter(root), { repositories: 3, tagsPerRepository: 2 });
    const lockfiles = join(root, 'docker/registry/lockfiles');
    // a tree without lockfiles keeps having none, whatever the mode
    const before = await snapshotTree(root);
    for (const mode of ['full', 'import', 'pre-import', 'blobs'] as const) {
      const result = await importTree({ db, root, mode, dryRun: true });
      expect(result.dryRun).toBe(true);
    }
    await expect(stat(lockfiles)).rejects.toThrow(/ENOENT/);
    expect(await snapshotTree(root)).toEqual(before);

    // a completed import hands the registry to the database
    await importTree({ db, root });
    expect(await readFile(join(lockfiles, 'database-in-use'), 'utf8')).toBe('{"version":1}');
    const imported = await snapshotTree(root);
    // a dry run afterwards runs and changes no lockfile (GitLab's fails: "database-in-use lockfile exists")
    const dry = await importTree({ db, root, dryRun: true });
    expect(dry.rows.tags).toBe(6);
    expect(await snapshotTree(root)).toEqual(imported);
    await expect(stat(join(lockfiles, 'filesystem-in-use'))).rejects.toThrow(/ENOENT/);
  });
});
