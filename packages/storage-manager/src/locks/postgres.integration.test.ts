import { type Clock, isStowageError } from '@stowage/oci';
import {
  createTestDatabase,
  postgresAdminUrl,
  postgresPeer,
  requirePeers,
  type TestDatabase,
} from '@stowage/testing';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { advisoryLockKey, createPostgresLockManager, type PostgresLockHandle } from './postgres.js';
import type { LockManager } from './types.js';

const peer = await postgresPeer();

const instantClock = (): Clock & { slept: number[] } => {
  let now = 0;
  const slept: number[] = [];
  return {
    slept,
    now: () => now,
    sleep: (ms, signal) =>
      new Promise((resolve, reject) =>
        setImmediate(() => {
          if (signal?.aborted) return reject(signal.reason);
          slept.push(ms);
          now += ms;
          resolve();
        }),
      ),
  };
};

describe('PostgreSQL advisory locks', () => {
  if (!requirePeers(peer)) return;
  let db: TestDatabase;
  let admin: pg.Client;
  const managers: LockManager[] = [];
  beforeAll(async () => {
    db = await createTestDatabase('stowage_locks');
    admin = new pg.Client({ connectionString: db.url });
    await admin.connect();
  });
  afterAll(async () => {
    for (const m of managers) await m.close();
    await admin?.end();
    await db?.drop();
  });
  const create = (options: { clock?: Clock; logger?: object } = {}): LockManager => {
    const m = createPostgresLockManager({ databaseUrl: db.url, pollMs: 2, maxPollMs: 20, ...options });
    managers.push(m);
    return m;
  };

  /** The sessions holding the advisory lock of `name` on the server, with the mode. */
  async function holders(name: string): Promise<{ pid: number; mode: string }[]> {
    const key = BigInt(advisoryLockKey(name));
    const unsigned = BigInt.asUintN(64, key);
    const { rows } = await admin.query<{ pid: number; mode: string }>(
      `SELECT pid, mode FROM pg_locks WHERE locktype = 'advisory' AND granted
         AND classid = $1::bigint::oid AND objid = $2::bigint::oid AND objsubid = 1 ORDER BY pid`,
      [(unsigned >> 32n).toString(), (unsigned & 0xffffffffn).toString()],
    );
    return rows;
  }

  it('keys are the first 8 bytes of sha256(prefix + name), signed', () => {
    // computed with python3 hashlib: sha256('stowage:a') starts 431afc4adb8f439a, 'stowage:b' cc30fe83822f9259
    expect(advisoryLockKey('a')).toBe('4835454548377027482');
    expect(advisoryLockKey('b')).toBe('-3733204250311814567');
    expect(advisoryLockKey('a', 'other:')).not.toBe(advisoryLockKey('a'));
  });

  it('an exclusive lock is one session holding ExclusiveLock on the server, gone at release', async () => {
    const locks = create();
    const handle = (await locks.acquire('stage-id.repo.d1')) as PostgresLockHandle;
    expect(handle.key).toBe(advisoryLockKey('stage-id.repo.d1'));
    expect((await holders('stage-id.repo.d1')).map((h) => h.mode)).toEqual(['ExclusiveLock']);
    await handle.release();
    await handle.release();
    expect(await holders('stage-id.repo.d1')).toEqual([]);
  });

  it('exclusive excludes everyone, in one manager and across managers; shared ones coexist', async () => {
    const a = create({ clock: instantClock() });
    const b = create({ clock: instantClock() });
    const held = await a.acquire('n1');
    for (const [m, shared] of [
      [a, false],
      [b, false],
      [b, true],
    ] as const) {
      const error = await m.acquire('n1', { shared, timeoutMs: 100 }).catch((e: unknown) => e);
      expect(isStowageError(error, 'LOCK_TIMEOUT')).toBe(true);
    }
    await held.release();
    const s1 = await a.acquire('n1', { shared: true, timeoutMs: 0 });
    const s2 = await b.acquire('n1', { shared: true, timeoutMs: 0 });
    expect((await holders('n1')).map((h) => h.mode)).toEqual(['ShareLock', 'ShareLock']);
    const error = await b.acquire('n1', { timeoutMs: 100 }).catch((e: unknown) => e);
    expect(isStowageError(error, 'LOCK_TIMEOUT')).toBe(true);
    await s1.release();
    await s2.release();
    const exclusive = await b.acquire('n1', { timeoutMs: 0 });
    await exclusive.release();
  });

  it('a waiting acquire gets the lock when the holder releases; the timeout polls with backoff', async () => {
    const clock = instantClock();
    const locks = create({ clock });
    const held = await locks.acquire('n2');
    const error = await locks.acquire('n2', { timeoutMs: 50 }).catch((e: unknown) => e);
    expect(isStowageError(error, 'LOCK_TIMEOUT')).toBe(true);
    expect(clock.slept).toEqual([2, 4, 8, 16, 20]);
    const waiting = locks.acquire('n2');
    await held.release();
    const next = await waiting;
    expect(await holders('n2')).toHaveLength(1);
    await next.release();
  });

  it('waiters do not hold connections while they sleep: a holder can still take another lock from a small pool', async () => {
    const locks = createPostgresLockManager({
      databaseUrl: db.url,
      pollMs: 2,
      maxPollMs: 20,
      maxConnections: 2,
    });
    managers.push(locks);
    const outer = await locks.acquire('nested.outer');
    const waiters = [
      locks.acquire('nested.outer'),
      locks.acquire('nested.outer'),
      locks.acquire('nested.outer'),
    ];
    const inner = await locks.acquire('nested.inner');
    expect(await holders('nested.inner')).toHaveLength(1);
    await inner.release();
    await outer.release();
    // each waiter in turn, whichever gets it first
    await Promise.all(waiters.map(async (waiting) => await (await waiting).release()));
  });

  it('an abort stops the wait and returns the connection', async () => {
    const locks = create();
    const held = await locks.acquire('n3');
    const controller = new AbortController();
    const waiting = locks.acquire('n3', { signal: controller.signal });
    controller.abort(new Error('enough'));
    await expect(waiting).rejects.toThrow('enough');
    await held.release();
    expect(await holders('n3')).toEqual([]);
  });

  it('a session killed while holding: the handle reports LOCK_LOST and the lock is free for others', async () => {
    const logged: unknown[] = [];
    const locks = create({ logger: { error: (fields: unknown) => logged.push(fields) } });
    const other = create();
    const handle = (await locks.acquire('n4')) as PostgresLockHandle;
    expect(handle.isLost).toBe(false);
    const [holder] = await holders('n4');
    await admin.query('SELECT pg_terminate_backend($1)', [holder!.pid]);
    const lost = await handle.lost;
    expect(isStowageError(lost, 'LOCK_LOST')).toBe(true);
    expect(handle.isLost).toBe(true);
    expect(logged).toHaveLength(1);
    // the client hears of the end before the exiting backend has dropped its locks: wait a little
    const taken = await other.acquire('n4', { timeoutMs: 10_000 });
    await handle.release();
    expect(await holders('n4')).toHaveLength(1);
    await taken.release();
    // the manager goes on working with fresh connections
    const again = await locks.acquire('n4', { timeoutMs: 0 });
    await again.release();
  });

  it('close() releases held locks, fails waiters with UNAVAILABLE and ends its pool', async () => {
    const url = new URL(db.url);
    url.searchParams.set('application_name', 'stowage_close_test');
    const locks = createPostgresLockManager({ databaseUrl: url.toString(), pollMs: 2 });
    await locks.acquire('n5');
    await locks.acquire('n6', { shared: true });
    const waiting = locks.acquire('n5').catch((e: unknown) => e);
    const before = await admin.query<{ n: number }>(
      'SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = $1 AND application_name = $2',
      [db.name, 'stowage_close_test'],
    );
    expect(before.rows[0]!.n).toBeGreaterThanOrEqual(2);
    await locks.close();
    await locks.close();
    expect(isStowageError(await waiting, 'UNAVAILABLE')).toBe(true);
    expect(await holders('n5')).toEqual([]);
    expect(await holders('n6')).toEqual([]);
    // The pool ended: its connections are closed. A backend leaves pg_stat_activity only once
    // its process has exited, a moment after the client closed the socket (seen as 2 in CI when
    // asked at once), so it is asked until the count is 0, for up to 5 s.
    const connected = async () =>
      (
        await admin.query<{ n: number }>(
          'SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = $1 AND application_name = $2',
          [db.name, 'stowage_close_test'],
        )
      ).rows[0]?.n;
    const deadline = Date.now() + 5_000;
    let left = await connected();
    while (left !== 0 && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 20));
      left = await connected();
    }
    expect(left).toBe(0);
    expect(isStowageError(await locks.acquire('n7').catch((e: unknown) => e), 'UNAVAILABLE')).toBe(true);
  });

  it('a connection the server terminates while close() ends the pool is no uncaught error', async () => {
    // pool.end() resolves once it has asked its idle connections to end, before they have:
    // one terminated meanwhile (here, every few rounds) reports through the pool afterwards
    const uncaught: unknown[] = [];
    const onUncaught = (error: unknown) => uncaught.push(error);
    process.on('uncaughtException', onUncaught);
    try {
      for (let round = 0; round < 30; round++) {
        const locks = createPostgresLockManager({ databaseUrl: db.url });
        await (await locks.acquire('n10')).release();
        const closed = locks.close();
        const killed = admin.query(
          `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
            WHERE datname = $1 AND pid <> pg_backend_pid()`,
          [db.name],
        );
        await Promise.all([closed, killed]);
      }
      await new Promise((resolve) => setTimeout(resolve, 200));
    } finally {
      process.off('uncaughtException', onUncaught);
    }
    expect(uncaught).toEqual([]);
  });

  it('takes a pool instead of a URL and leaves it open', async () => {
    const pool = new pg.Pool({ connectionString: db.url, max: 2 });
    // the pool is the test's: so is handling the errors of its idle connections
    pool.on('error', () => undefined);
    try {
      const locks = createPostgresLockManager({ pool, keyPrefix: 'other:' });
      const handle = await locks.acquire('n8');
      expect(await holders('n8')).toEqual([]); // another prefix, another key
      await handle.release();
      await locks.close();
      expect((await pool.query('SELECT 1 AS one')).rows[0].one).toBe(1);
    } finally {
      await pool.end();
    }
  });

  it('a database that cannot be reached fails with a retryable LOCK_FAILED', async () => {
    const url = new URL(postgresAdminUrl);
    url.port = '1';
    url.password = 'secret';
    const locks = createPostgresLockManager({ databaseUrl: url.toString() });
    managers.push(locks);
    expect(locks.description).not.toContain('secret');
    const error = await locks.acquire('n9').catch((e: unknown) => e);
    expect(isStowageError(error, 'LOCK_FAILED')).toBe(true);
    expect((error as { retryable: boolean }).retryable).toBe(true);
  });
});

describe('PostgreSQL lock options', () => {
  it('redacts the password in the description and refuses ambiguous options', () => {
    const locks = createPostgresLockManager({ databaseUrl: 'postgres://u:pw@h:5432/db' });
    expect(locks.description).toBe('postgres:postgres://u:***@h:5432/db');
    void locks.close();
    expect(() => createPostgresLockManager({})).toThrow(expect.objectContaining({ code: 'OPTIONS_INVALID' }));
    expect(() => createPostgresLockManager({ databaseUrl: 'postgres://h/db', pool: new pg.Pool() })).toThrow(
      expect.objectContaining({ code: 'OPTIONS_INVALID' }),
    );
  });
});
