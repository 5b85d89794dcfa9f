// What read-only callers rely on: the migration status of a database never
// migrated creates nothing (no table on a server, no directory for PGlite with
// `create: false`), and a connection string that is not a PostgreSQL URL is
// refused before any connection or DNS lookup.
import { mkdir, mkdtemp, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { StowageError } from '@stowage/oci';
import { createTestDatabase, postgresPeer, requirePeers, type TestDatabase } from '@stowage/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createPgliteDatabase,
  createPostgresDatabase,
  type Database,
  databaseUrlProblem,
  isDatabaseError,
  openDatabase,
} from './database.js';
import { redactDatabaseUrl } from './index.js';
import { assertMigrated, migrate, migrationStatus, migrations } from './migrations.js';

const postgres = await postgresPeer();
const dirs: string[] = [];
afterAll(async () => {
  for (const dir of dirs) await rm(dir, { recursive: true, force: true });
});

async function scratch(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'stowage-metadata-ro-'));
  dirs.push(dir);
  return dir;
}

function codeOf(work: () => unknown): Promise<string | undefined> {
  return Promise.resolve()
    .then(work)
    .then(
      () => undefined,
      (error: unknown) => (isDatabaseError(error) ? error.code : `not a DatabaseError: ${error}`),
    );
}

async function tables(db: Database): Promise<string[]> {
  const { rows } = await db.query<{ name: string }>(
    "SELECT tablename AS name FROM pg_tables WHERE schemaname = 'public' ORDER BY 1",
  );
  return rows.map((r) => r.name);
}

const everyPending = { applied: [], pending: migrations.map((m) => m.id) };

describe('read-only use', () => {
  it('the status of an embedded database never migrated creates no table', async () => {
    const db = await createPgliteDatabase();
    try {
      expect(await migrationStatus(db)).toEqual(everyPending);
      expect(await codeOf(() => assertMigrated(db))).toBe('MIGRATIONS_PENDING');
      expect(await tables(db)).toEqual([]);
    } finally {
      await db.close();
    }
  });

  it('an embedded database is not created with create: false', async () => {
    const dir = await scratch();
    const missing = join(dir, 'missing');
    expect(await codeOf(() => openDatabase({ dataDir: missing, create: false }))).toBe('DATABASE_UNKNOWN');
    await expect(stat(missing)).rejects.toThrow(/ENOENT/);
    // an empty directory is no database either, and stays empty
    const empty = join(dir, 'empty');
    await mkdir(empty);
    expect(await codeOf(() => createPgliteDatabase({ dataDir: empty, create: false }))).toBe(
      'DATABASE_UNKNOWN',
    );
    expect(await readdir(empty)).toEqual([]);
    const file = join(dir, 'file');
    await writeFile(file, 'x');
    expect(await codeOf(() => openDatabase({ dataDir: file }))).toBe('DATABASE_UNKNOWN');
    // created by default; then create: false opens it
    const made = await openDatabase({ dataDir: join(dir, 'made') });
    await migrate(made);
    await made.close();
    const reopened = await openDatabase({ dataDir: join(dir, 'made'), create: false });
    try {
      expect((await migrationStatus(reopened)).pending).toEqual([]);
    } finally {
      await reopened.close();
    }
  }, 60_000);

  it('refuses connection strings that are not PostgreSQL URLs before connecting', async () => {
    for (const text of [
      'notaurl',
      'base',
      'host=127.0.0.1 dbname=registry',
      'http://127.0.0.1/registry',
      'postgres:127.0.0.1/registry',
      'postgres://',
      'postgres:///registry',
      'postgres://127.0.0.1:99999/registry',
      'postgres://127.0.0.1:0/registry',
      'postgres://[::1/registry',
      'socket:',
    ]) {
      expect(databaseUrlProblem(text), text).toBeTypeOf('string');
      // thrown at creation: no pool exists, so nothing was looked up or connected
      expect(await codeOf(() => createPostgresDatabase({ connectionString: text })), text).toBe(
        'OPTIONS_INVALID',
      );
    }
    // the refusal names the option at fault and why, for callers that branch on it
    const refused = await Promise.resolve()
      .then(() => createPostgresDatabase({ connectionString: 'http://127.0.0.1/registry' }))
      .catch((error: unknown) => error);
    expect(isDatabaseError(refused, 'OPTIONS_INVALID') && refused.details).toEqual({
      option: 'connectionString',
      problem: databaseUrlProblem('http://127.0.0.1/registry'),
    });
    // the guard is the brand, not the code: another package's error with the same code is not one
    expect(isDatabaseError(new StowageError('OPTIONS_INVALID', 'not from the database'))).toBe(false);
    for (const text of [
      'postgres://127.0.0.1/registry',
      'postgresql://user:secret@db.example:5432/registry?sslmode=require',
      'postgres://[::1]:5432/registry',
      'postgres:///registry?host=/var/run/postgresql',
      'socket:/var/run/postgresql?db=registry',
    ]) {
      expect(databaseUrlProblem(text), text).toBeUndefined();
    }
    expect(redactDatabaseUrl('postgres://user:s3cr@t@db:5432/x')).toBe('postgres://user:***@db:5432/x');
    // a host that does not resolve is an unreachable database, like a refused connection
    const unresolvable = createPostgresDatabase({ connectionString: 'postgres://stowage.invalid/registry' });
    try {
      expect(await codeOf(() => migrationStatus(unresolvable))).toBe('UNAVAILABLE');
    } finally {
      await unresolvable.close();
    }
    expect(redactDatabaseUrl('postgres://user@db/x')).toBe('postgres://user@db/x');
  });

  describe('on PostgreSQL', () => {
    if (!requirePeers(postgres)) return;
    let test: TestDatabase;
    beforeAll(async () => {
      test = await createTestDatabase();
    });
    afterAll(() => test?.drop());

    it('the status of a database never migrated creates no table', async () => {
      const db = createPostgresDatabase({ connectionString: test.url });
      try {
        expect(await migrationStatus(db)).toEqual(everyPending);
        expect(await codeOf(() => assertMigrated(db))).toBe('MIGRATIONS_PENDING');
        expect(await tables(db)).toEqual([]);
      } finally {
        await db.close();
      }
    });

    it('a database the server does not have is DATABASE_UNKNOWN', async () => {
      const url = new URL(test.url);
      url.pathname = `/${test.name}_absent`;
      const db = createPostgresDatabase({ connectionString: url.toString() });
      try {
        expect(await codeOf(() => migrationStatus(db))).toBe('DATABASE_UNKNOWN');
      } finally {
        await db.close();
      }
    });
  });
});
