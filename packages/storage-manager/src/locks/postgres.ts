import { createHash } from 'node:crypto';
import { type Clock, type Logger, type ResolvedLogger, redactDatabaseUrl, resolveLogger } from '@stowage/oci';
import pg from 'pg';
import { LockError } from './errors.js';
import { closedError, pollUntil, resolvePollSettings } from './poll.js';
import type { AcquireOptions, LockHandle, LockManager } from './types.js';

export interface PostgresLockManagerOptions {
  /** `postgres://…`; the manager makes its own pool and ends it on `close()`. */
  readonly databaseUrl?: string;
  /** A pool to take connections from instead (left open on `close()`). */
  readonly pool?: pg.Pool;
  /** Prefix hashed with every lock name into the advisory key. Default `stowage:`. */
  readonly keyPrefix?: string;
  /**
   * Connections of the pool made from `databaseUrl`. Every held lock keeps
   * one; a waiting acquire borrows one for each try only. Default 10.
   */
  readonly maxConnections?: number;
  /** First wait between two tries of a busy lock (doubling up to `maxPollMs`). Default 20. */
  readonly pollMs?: number;
  readonly maxPollMs?: number;
  readonly clock?: Clock;
  readonly logger?: Logger;
}

/** A PostgreSQL advisory lock, held by one dedicated session. */
export interface PostgresLockHandle extends LockHandle {
  /** The signed 64-bit advisory key, in decimal. */
  readonly key: string;
  /** True once the session holding the lock is gone: the server has dropped the lock. */
  readonly isLost: boolean;
  /** Resolves (never rejects) with a `LOCK_LOST` error when the session is lost while held. */
  readonly lost: Promise<LockError>;
}

/** The advisory key of a lock name: the first 8 bytes of sha256(prefix + name) as a signed big-endian int64. */
export function advisoryLockKey(name: string, keyPrefix = 'stowage:'): string {
  return createHash('sha256')
    .update(keyPrefix + name)
    .digest()
    .readBigInt64BE(0)
    .toString();
}

/**
 * Named locks as PostgreSQL session advisory locks, for builders on several
 * hosts sharing one repository: the key is `advisoryLockKey(name)`, taken
 * with `pg_try_advisory_lock[_shared]` and retried with backoff (each try on
 * a pooled connection, given back while the lock is busy). Each held lock
 * keeps its own connection until released; when that connection dies the
 * server has already dropped the lock, and the handle says so (`lost`).
 */
export function createPostgresLockManager(options: PostgresLockManagerOptions): LockManager {
  if ((options.databaseUrl === undefined) === (options.pool === undefined)) {
    throw new LockError('OPTIONS_INVALID', 'give exactly one of databaseUrl and pool');
  }
  const maxConnections = options.maxConnections ?? 10;
  if (!Number.isInteger(maxConnections) || maxConnections < 1) {
    throw new LockError(
      'OPTIONS_INVALID',
      `maxConnections must be a positive integer, not ${maxConnections}`,
    );
  }
  const keyPrefix = options.keyPrefix ?? 'stowage:';
  const settings = resolvePollSettings(options);
  const log = resolveLogger(options.logger);
  const ownPool = options.databaseUrl !== undefined;
  const pool =
    options.pool ??
    new pg.Pool({
      connectionString: options.databaseUrl,
      max: maxConnections,
      // a peer that vanishes without closing the socket is noticed (and the lock reported lost)
      keepAlive: true,
      keepAliveInitialDelayMillis: 10_000,
    });
  const description = `postgres:${options.databaseUrl !== undefined ? redactDatabaseUrl(options.databaseUrl) : describePool(pool)}`;
  const closing = new AbortController();
  // An idle pooled connection that dies is the pool's business: keep it from crashing the
  // process. The listener stays after close(): `pool.end()` resolves once it has asked its
  // idle connections to end, not once they have, and one the server terminates meanwhile
  // (a database dropped WITH (FORCE), a restart) still reports through the pool.
  const onPoolError = (error: Error) =>
    (closing.signal.aborted ? log.debug : log.warn)(
      { err: error, manager: description },
      'idle lock connection failed',
    );
  if (ownPool) pool.on('error', onPoolError);
  const held = new Set<PgHandle>();
  let ended: Promise<void> | undefined;

  return {
    description,
    async acquire(name: string, acquireOptions: AcquireOptions = {}): Promise<PostgresLockHandle> {
      if (typeof name !== 'string' || name === '')
        throw new LockError('OPTIONS_INVALID', 'a lock needs a name');
      acquireOptions.signal?.throwIfAborted();
      if (closing.signal.aborted) throw closedError(description, name);
      const shared = acquireOptions.shared ?? false;
      const key = advisoryLockKey(name, keyPrefix);
      const fn = shared ? 'pg_try_advisory_lock_shared' : 'pg_try_advisory_lock';
      let client: pg.PoolClient | undefined;
      let waited = false;
      // Each try borrows a connection and gives it back when the lock is busy, so
      // waiters never hold the pool's connections while they sleep: a holder that
      // needs another lock (or the pool for anything else) still gets one.
      await pollUntil(
        { name, manager: description, settings, options: acquireOptions, closing: closing.signal },
        async () => {
          const candidate = await connect(pool, {
            name,
            description,
            signal: acquireOptions.signal,
            closing: closing.signal,
          });
          let failure: Error | undefined;
          const onError = (error: Error) => {
            failure ??= error;
          };
          candidate.on('error', onError);
          try {
            const { rows } = await candidate.query<{ ok: boolean }>(`SELECT ${fn}($1::bigint) AS ok`, [key]);
            if (failure) throw failure;
            candidate.removeListener('error', onError);
            if (rows[0]?.ok === true) {
              client = candidate;
              return true;
            }
            candidate.release();
          } catch (error) {
            candidate.removeListener('error', onError);
            // a connection that failed a query is dropped, not pooled again
            candidate.release(error instanceof Error ? error : true);
            throw new LockError('LOCK_FAILED', `cannot take lock ${JSON.stringify(name)} (${description})`, {
              retryable: true,
              cause: error,
              details: { name, key, manager: description },
            });
          }
          if (!waited) log.debug({ name, key, shared }, 'advisory lock busy, waiting');
          waited = true;
          return false;
        },
      );
      if (!client) throw new Error('unreachable: the poll ended without a connection');
      const handle = new PgHandle({ name, shared, key, client, held, log, manager: description });
      held.add(handle);
      if (closing.signal.aborted) {
        await handle.release();
        throw closedError(description, name);
      }
      log.debug({ name, key, shared }, 'advisory lock taken');
      return handle;
    },
    async close(): Promise<void> {
      closing.abort();
      await Promise.all([...held].map((handle) => handle.release()));
      if (ownPool) {
        ended ??= pool.end();
        await ended;
      }
    },
  };
}

function describePool(pool: pg.Pool): string {
  const o = pool.options as { connectionString?: string; host?: string; port?: number; database?: string };
  if (o.connectionString) return redactDatabaseUrl(o.connectionString);
  return `//${o.host ?? 'localhost'}:${o.port ?? 5432}/${o.database ?? ''}`;
}

/** A pooled connection; an abort or close while waiting for one gives it back once it comes. */
async function connect(
  pool: pg.Pool,
  ctx: { name: string; description: string; signal: AbortSignal | undefined; closing: AbortSignal },
): Promise<pg.PoolClient> {
  const stop = ctx.signal ? AbortSignal.any([ctx.signal, ctx.closing]) : ctx.closing;
  const connecting = pool.connect();
  let onAbort: (() => void) | undefined;
  const aborted = new Promise<never>((_, reject) => {
    onAbort = () => reject(ctx.signal?.aborted ? ctx.signal.reason : closedError(ctx.description, ctx.name));
    stop.addEventListener('abort', onAbort, { once: true });
  });
  try {
    return await Promise.race([connecting, aborted]);
  } catch (error) {
    if (stop.aborted) {
      connecting.then(
        (client) => client.release(),
        () => undefined,
      );
      throw error;
    }
    throw new LockError(
      'LOCK_FAILED',
      `cannot connect for lock ${JSON.stringify(ctx.name)} (${ctx.description})`,
      {
        retryable: true,
        cause: error,
        details: { name: ctx.name, manager: ctx.description },
      },
    );
  } finally {
    if (onAbort) stop.removeEventListener('abort', onAbort);
  }
}

class PgHandle implements PostgresLockHandle {
  readonly name: string;
  readonly shared: boolean;
  readonly key: string;
  readonly lost: Promise<LockError>;
  readonly #client: pg.PoolClient;
  readonly #held: Set<PgHandle>;
  readonly #log: ResolvedLogger;
  readonly #manager: string;
  #lostError: LockError | undefined;
  #resolveLost!: (error: LockError) => void;
  #released: Promise<void> | undefined;
  readonly #onError = (error: Error) => this.#markLost(error);
  readonly #onEnd = () => this.#markLost(new Error('connection ended'));

  constructor(init: {
    name: string;
    shared: boolean;
    key: string;
    client: pg.PoolClient;
    held: Set<PgHandle>;
    log: ResolvedLogger;
    manager: string;
  }) {
    this.name = init.name;
    this.shared = init.shared;
    this.key = init.key;
    this.#client = init.client;
    this.#held = init.held;
    this.#log = init.log;
    this.#manager = init.manager;
    this.lost = new Promise((resolve) => {
      this.#resolveLost = resolve;
    });
    this.#client.on('error', this.#onError);
    this.#client.on('end', this.#onEnd);
  }

  get isLost(): boolean {
    return this.#lostError !== undefined;
  }

  #markLost(cause: Error): void {
    if (this.#lostError || this.#released) return;
    this.#lostError = new LockError(
      'LOCK_LOST',
      `lock ${JSON.stringify(this.name)} is lost: its database session ended (${this.#manager})`,
      { cause, details: { name: this.name, key: this.key, manager: this.#manager } },
    );
    this.#log.error({ name: this.name, key: this.key, err: cause }, 'advisory lock lost with its connection');
    this.#resolveLost(this.#lostError);
  }

  release(): Promise<void> {
    this.#released ??= this.#release();
    return this.#released;
  }

  async #release(): Promise<void> {
    this.#held.delete(this);
    const client = this.#client;
    if (this.#lostError) {
      client.removeListener('end', this.#onEnd);
      client.release(this.#lostError);
      client.removeListener('error', this.#onError);
      return;
    }
    const fn = this.shared ? 'pg_advisory_unlock_shared' : 'pg_advisory_unlock';
    try {
      const { rows } = await client.query<{ ok: boolean }>(`SELECT ${fn}($1::bigint) AS ok`, [this.key]);
      if (rows[0]?.ok !== true)
        this.#log.warn({ name: this.name, key: this.key }, 'advisory lock was not held at release');
      client.removeListener('end', this.#onEnd);
      client.removeListener('error', this.#onError);
      client.release();
    } catch (error) {
      // the session is broken: destroying it drops the lock on the server
      this.#log.warn(
        { name: this.name, key: this.key, err: error },
        'advisory unlock failed; dropping the connection',
      );
      client.removeListener('end', this.#onEnd);
      client.release(error instanceof Error ? error : true);
      client.removeListener('error', this.#onError);
    }
    this.#log.debug({ name: this.name, key: this.key }, 'advisory lock released');
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.release();
  }
}
