import { randomBytes } from 'node:crypto';
import pg from 'pg';
import type { PeerStatus } from './peers.js';

/** The PostgreSQL server tests use: trust auth on 127.0.0.1:5432 unless `STOWAGE_TEST_POSTGRES` says otherwise. */
export const postgresAdminUrl =
  process.env.STOWAGE_TEST_POSTGRES ?? 'postgres://postgres@127.0.0.1:5432/postgres';

/** Whether the PostgreSQL server answers (a peer for `requirePeers`). */
export async function postgresPeer(): Promise<PeerStatus> {
  const client = new pg.Client({ connectionString: postgresAdminUrl, connectionTimeoutMillis: 3000 });
  try {
    await client.connect();
    await client.query('SELECT 1');
    return { name: 'postgresql', available: true };
  } catch (error) {
    return {
      name: 'postgresql',
      available: false,
      reason: `PostgreSQL is not reachable at ${postgresAdminUrl.replace(/\/\/[^@]*@/, '//')} (${(error as Error).message})`,
    };
  } finally {
    await client.end().catch(() => undefined);
  }
}

export interface TestDatabase {
  readonly url: string;
  readonly name: string;
  drop(): Promise<void>;
}

/** A fresh, empty database for one test run; `drop()` removes it (terminating its connections). */
export async function createTestDatabase(prefix = 'stowage_test'): Promise<TestDatabase> {
  const name = `${prefix}_${process.pid}_${randomBytes(4).toString('hex')}`;
  const admin = new pg.Client({ connectionString: postgresAdminUrl });
  await admin.connect();
  try {
    await admin.query(`CREATE DATABASE ${name}`);
  } finally {
    await admin.end();
  }
  const url = new URL(postgresAdminUrl);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    name,
    async drop() {
      const client = new pg.Client({ connectionString: postgresAdminUrl });
      await client.connect();
      try {
        await client.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      } finally {
        await client.end();
      }
    },
  };
}

/**
 * Terminates the connections to a database that are running a statement or
 * sit inside an open transaction (a fault no real server produces on demand
 * otherwise). Idle connections are left alone, so every kill counted lands in
 * the middle of some work. Returns how many were terminated.
 */
export async function terminateConnections(database: string): Promise<number> {
  const client = new pg.Client({ connectionString: postgresAdminUrl });
  await client.connect();
  try {
    const { rows } = await client.query<{ killed: boolean }>(
      `SELECT pg_terminate_backend(pid) AS killed FROM pg_stat_activity
       WHERE datname = $1 AND pid <> pg_backend_pid()
         AND state IN ('active', 'idle in transaction', 'idle in transaction (aborted)')`,
      [database],
    );
    return rows.filter((row) => row.killed).length;
  } finally {
    await client.end();
  }
}
