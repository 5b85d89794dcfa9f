// Retries of a repository's transaction: the budget starts at the first
// failure, and warnings are reported once, after the attempt that commits.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createPgliteDatabase, type Database, DatabaseError, migrate } from '@stowage/metadata-db';
import { isStowageError } from '@stowage/oci';
import { DistributionTreeWriter } from '@stowage/testing';
import { afterAll, describe, expect, it } from 'vitest';
import { fakeClock } from '../test/fake-clock.js';
import { withFaults } from '../test/faulty-database.js';
import { readRows } from '../test/fixture.js';
import { ImportError } from './errors.js';
import { importTree } from './importer.js';
import type { ImportOptions } from './options.js';

const dirs: string[] = [];
afterAll(async () => {
  for (const dir of dirs) await rm(dir, { recursive: true, force: true });
});

async function freshTree(): Promise<DistributionTreeWriter> {
  const dir = await mkdtemp(join(tmpdir(), 'stowage-retries-'));
  dirs.push(dir);
  return new DistributionTreeWriter(dir);
}

async function freshDb(): Promise<Database> {
  const db = await createPgliteDatabase();
  await migrate(db);
  return db;
}

/** A tree with one repository holding one tagged image. */
async function oneImage(repository: string) {
  const tree = await freshTree();
  const image = await tree.image(repository);
  await tree.tag(repository, 'v1', image.digest);
  return { tree, digest: image.digest };
}

const lostConnection = (): never => {
  throw new DatabaseError('UNAVAILABLE', 'connection lost (injected)');
};

/** Step two of the import over `tree`, without lockfiles. */
function importTags(db: Database, tree: DistributionTreeWriter, options: Partial<ImportOptions> = {}) {
  return importTree({ db, root: tree.root, mode: 'import', lockfiles: false, ...options });
}

describe('retrying a repository', () => {
  it('retries a transaction that took longer than the budget before it failed', async () => {
    const { tree, digest } = await oneImage('slow/app');
    const inner = await freshDb();
    const clock = fakeClock();
    // the first attempt runs three times the budget, then loses its connection
    const db = withFaults(inner, {
      beforeCommit(n) {
        if (n !== 1) return;
        clock.advance(150);
        lostConnection();
      },
    });
    const result = await importTags(db, tree, { retryBudgetMs: 50, clock });
    expect(result.retries).toBe(1);
    expect(clock.sleeps).toHaveLength(1);
    expect((await readRows(inner)).tags).toEqual([`slow/app v1 ${digest}`]);
    await inner.close();
  });

  it('gives up once the budget after the first failure is spent', async () => {
    const { tree } = await oneImage('down/app');
    const inner = await freshDb();
    const clock = fakeClock();
    let firstFailure: number | undefined;
    const db = withFaults(inner, {
      beforeCommit() {
        firstFailure ??= clock.now();
        lostConnection();
      },
    });
    const error = await importTags(db, tree, { retryBudgetMs: 300, clock }).catch((e: unknown) => e);
    expect(isStowageError(error, 'UNAVAILABLE')).toBe(true);
    const rollbacks = db.events.filter((e) => e.startsWith('rollback')).length;
    expect(rollbacks).toBeGreaterThan(1);
    // one wait between each two attempts, and the last attempt began inside the budget
    expect(clock.sleeps).toHaveLength(rollbacks - 1);
    const waited = clock.sleeps.reduce((sum, ms) => sum + ms, 0);
    expect(waited - (clock.sleeps.at(-1) ?? 0)).toBeLessThan(300);
    expect(clock.now() - (firstFailure ?? 0)).toBeGreaterThanOrEqual(300);
    await inner.close();
  });

  it('reports the warnings of a retried repository once, after it commits, and none of one rolled back', async () => {
    const tree = await freshTree();
    const repo = 'warn/app';
    const orphan = await tree.blob('a layer without a _layers link');
    const partial = await tree.image(repo, { layers: ['linked', { digest: orphan, size: 31 }] });
    await tree.tag(repo, 'partial', partial.digest);
    await tree.tagWithoutLink(repo, 'no-link');
    // a repository that fails for good after meeting a skip of its own
    const lost = await tree.image('zz/failing', { layers: ['linked', { digest: orphan, size: 31 }] });
    await tree.tag('zz/failing', 'a', lost.digest);
    await tree.tag('zz/failing', 'b', await tree.rawManifest('zz/failing', 'not json'));

    const inner = await freshDb();
    const db = withFaults(inner, {
      beforeCommit(n) {
        if (n === 1) throw new DatabaseError('SERIALIZATION_FAILURE', 'could not serialize (injected)');
      },
    });
    const error = await importTags(db, tree, {
      clock: fakeClock(),
      onWarning: (w) => db.events.push(`warning ${w.reason} ${w.repository}`),
    }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ImportError);
    expect((error as ImportError).code).toBe('MANIFEST_NOT_JSON');
    expect(db.events).toEqual([
      'rollback 1',
      'commit 2',
      `warning missing-tag-link ${repo}`,
      `warning unlinked-layer ${repo}`,
      'rollback 3',
    ]);

    // a dry run has no commit to wait for: it reports them as each repository is done
    // (into a database of its own: a rerun does not read again a manifest already imported)
    const empty = await freshDb();
    const dry = await importTags(empty, tree, { dryRun: true, repositories: [repo] });
    expect(dry.warnings.map((w) => w.reason)).toEqual(['missing-tag-link', 'unlinked-layer']);
    await empty.close();
    await inner.close();
  });

  it('stops waiting for the next attempt when the signal fires, as ABORTED, and writes nothing', async () => {
    const { tree } = await oneImage('halted/app');
    const inner = await freshDb();
    const controller = new AbortController();
    const clock = fakeClock();
    // the wait between attempts is where the signal is seen: this clock's sleep never ends on its own
    const waiting: typeof clock = {
      ...clock,
      sleep: (ms, signal) =>
        new Promise((_, reject) => {
          clock.sleeps.push(ms);
          signal?.addEventListener('abort', () => reject(signal.reason), { once: true });
          controller.abort();
        }),
    };
    const db = withFaults(inner, { beforeCommit: lostConnection });
    const error = await importTags(db, tree, {
      retryBudgetMs: 60_000,
      clock: waiting,
      signal: controller.signal,
    }).catch((e: unknown) => e);
    expect(isStowageError(error, 'ABORTED')).toBe(true);
    expect(isStowageError((error as Error).cause, 'UNAVAILABLE')).toBe(true);
    expect(clock.sleeps).toHaveLength(1);
    expect(db.events).toEqual(['rollback 1']);
    expect((await readRows(inner)).tags).toEqual([]);
    await inner.close();
  });
});
