import { createHash } from 'node:crypto';
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { PGlite } from '@electric-sql/pglite';
import { isStowageError, StowageError } from '@stowage/oci';
import pg from 'pg';

export type DatabaseErrorCode =
  | 'UNIQUE_VIOLATION'
  | 'FOREIGN_KEY_VIOLATION'
  | 'CHECK_VIOLATION'
  | 'NOT_NULL_VIOLATION'
  | 'SERIALIZATION_FAILURE'
  | 'DEADLOCK'
  /**
   * The database cannot serve now: a connection refused, lost or timed out, a
   * host that does not resolve, a backend terminated or a server shutting down
   * (57P01–03, class 08); `sqlState` tells which when the server said.
   */
  | 'UNAVAILABLE'
  | 'QUERY_CANCELED'
  | 'LOCK_NOT_AVAILABLE'
  | 'TOO_MANY_CONNECTIONS'
  | 'READ_ONLY'
  | 'PERMISSION'
  | 'MIGRATION_UNKNOWN'
  | 'MIGRATION_EDITED'
  | 'MIGRATIONS_PENDING'
  /** An option that cannot be used: a connection string that is not a PostgreSQL URL (refused before any connection or DNS lookup). */
  | 'OPTIONS_INVALID'
  /** No embedded database in the data directory (and `create: false`), or a server without that database (3D000). */
  | 'DATABASE_UNKNOWN'
  | 'DATABASE';

/**
 * Codes for which running the same transaction again may succeed: lost or
 * refused connections, a terminated backend, serialization failures and
 * deadlocks, a statement timeout or cancel, a lock wait that gave up, and a
 * server out of connection slots.
 */
const RETRYABLE: ReadonlySet<DatabaseErrorCode> = new Set<DatabaseErrorCode>([
  'SERIALIZATION_FAILURE',
  'DEADLOCK',
  'UNAVAILABLE',
  'QUERY_CANCELED',
  'LOCK_NOT_AVAILABLE',
  'TOO_MANY_CONNECTIONS',
]);

/** Marks a `DatabaseError`, so `isDatabaseError` works across duplicate installs. */
const DATABASE_ERROR: unique symbol = Symbol.for('@stowage/metadata-db:database-error') as never;

/** A database failure; `retryable` says whether running the same transaction again may work. */
export class DatabaseError extends StowageError<DatabaseErrorCode> {
  readonly sqlState: string | undefined;
  constructor(
    code: DatabaseErrorCode,
    message: string,
    options: { sqlState?: string; cause?: unknown; details?: Readonly<Record<string, unknown>> } = {},
  ) {
    const retryable = RETRYABLE.has(code);
    super(code, message, {
      retryable,
      ...(options.cause === undefined ? {} : { cause: options.cause }),
      details: { ...options.details, ...(options.sqlState ? { sqlState: options.sqlState } : {}) },
    });
    this.sqlState = options.sqlState;
    Object.defineProperty(this, DATABASE_ERROR, { value: true });
  }
}

/** True for a `DatabaseError` (optionally with the given code), from any copy of this package. */
export function isDatabaseError(value: unknown, code?: DatabaseErrorCode): value is DatabaseError {
  return (
    isStowageError(value, code) && (value as unknown as Record<symbol, unknown>)[DATABASE_ERROR] === true
  );
}

const BY_STATE: Readonly<Record<string, DatabaseErrorCode>> = {
  '23505': 'UNIQUE_VIOLATION',
  '23503': 'FOREIGN_KEY_VIOLATION',
  '23514': 'CHECK_VIOLATION',
  '23502': 'NOT_NULL_VIOLATION',
  '40001': 'SERIALIZATION_FAILURE',
  '40P01': 'DEADLOCK',
  '57P01': 'UNAVAILABLE',
  '57P02': 'UNAVAILABLE',
  '57P03': 'UNAVAILABLE',
  '57014': 'QUERY_CANCELED',
  '55P03': 'LOCK_NOT_AVAILABLE',
  '53300': 'TOO_MANY_CONNECTIONS',
  '25006': 'READ_ONLY',
  '42501': 'PERMISSION',
  '3D000': 'DATABASE_UNKNOWN',
};

const NETWORK_CODES = new Set([
  'ECONNRESET',
  'ECONNREFUSED',
  'ETIMEDOUT',
  'EPIPE',
  'ENOTCONN',
  'EHOSTUNREACH',
  // a host name that does not resolve: unreachable as well
  'ENOTFOUND',
  'EAI_AGAIN',
]);

/** What pg says when a connection broke or could not be made, without a code. */
const CONNECTION_MESSAGE =
  /Connection terminated|connection.*(closed|ended|lost)|Client has encountered a connection error|timeout exceeded when trying to connect/i;

/** What a transaction's work threw: database and network failures mapped, anything else as it was. */
function rethrowable(error: unknown): unknown {
  if (isStowageError(error)) return error;
  const e = error as { code?: unknown; severity?: unknown; message?: unknown };
  const looksLikeDb =
    typeof e?.code === 'string' &&
    (typeof e.severity === 'string' || NETWORK_CODES.has(e.code) || /^[0-9A-Z]{5}$/.test(e.code));
  const looksLikeConnection = typeof e?.message === 'string' && CONNECTION_MESSAGE.test(e.message);
  return looksLikeDb || looksLikeConnection ? toDatabaseError(error) : error;
}

/** Maps what pg, PGlite or the network threw to a `DatabaseError` (a `DatabaseError` passes through). */
export function toDatabaseError(error: unknown): DatabaseError {
  if (isDatabaseError(error)) return error;
  const e = error as { code?: unknown; message?: unknown };
  const code = typeof e?.code === 'string' ? e.code : undefined;
  const message = typeof e?.message === 'string' ? e.message : String(error);
  if (code && BY_STATE[code])
    return new DatabaseError(BY_STATE[code], message, { sqlState: code, cause: error });
  if (code?.startsWith('08'))
    return new DatabaseError('UNAVAILABLE', message, { sqlState: code, cause: error });
  if (code && NETWORK_CODES.has(code)) return new DatabaseError('UNAVAILABLE', message, { cause: error });
  if (CONNECTION_MESSAGE.test(message)) {
    return new DatabaseError('UNAVAILABLE', message, { cause: error });
  }
  return new DatabaseError('DATABASE', message, { ...(code ? { sqlState: code } : {}), cause: error });
}

export interface QueryResult<Row> {
  readonly rows: Row[];
  readonly rowCount: number;
}

export interface QueryOptions {
  /**
   * Prepare the statement once per connection and reuse its plan (PostgreSQL;
   * PGlite ignores it). For the hot statements whose text never changes: each
   * distinct text prepared stays prepared for the connection's life.
   */
  readonly prepare?: boolean;
}

/** What every query runs on: the database, or one transaction of it. */
export interface Queryable {
  query<Row = Record<string, unknown>>(
    sql: string,
    params?: readonly unknown[],
    options?: QueryOptions,
  ): Promise<QueryResult<Row>>;
  /** Runs a script of several statements (no parameters). */
  exec(sql: string): Promise<void>;
}

export interface Transaction extends Queryable {
  /** Runs `work` in a savepoint: its failure undoes only what it did. */
  savepoint<T>(work: (tx: Transaction) => Promise<T>): Promise<T>;
  /**
   * Calls `callback` once the whole transaction has committed. It is dropped,
   * never called, when the transaction rolls back, or when the savepoint it
   * was registered in rolls back.
   */
  afterCommit(callback: () => void): void;
}

/** A connection pool's state, for metrics. */
export interface PoolStats {
  /** Connections open, busy or idle. */
  readonly total: number;
  readonly idle: number;
  /** Callers waiting for a connection. */
  readonly waiting: number;
  /** The pool's size. */
  readonly max: number;
}

export interface Database extends Queryable {
  readonly kind: 'postgres' | 'pglite';
  /** The pool's state (PostgreSQL only: PGlite has one connection and no pool). */
  stats?(): PoolStats;
  /** Runs `work` in a transaction, committed when it resolves, rolled back when it throws. */
  transaction<T>(work: (tx: Transaction) => Promise<T>): Promise<T>;
  close(): Promise<void>;
}

/** Whether `q` is a transaction (or a savepoint of one), rather than autocommitting statements. */
export function isTransaction(q: Queryable): q is Transaction {
  return typeof (q as Partial<Transaction>).afterCommit === 'function';
}

let savepoints = 0;

/**
 * A transaction (or savepoint) on `runner`. Commit callbacks are kept in
 * `hooks`; a savepoint collects its own and hands them to its parent only
 * when it is released.
 */
function transactionOn(runner: Queryable, hooks: (() => void)[]): Transaction {
  return {
    query: (sql, params, options) => runner.query(sql, params, options),
    exec: (sql) => runner.exec(sql),
    afterCommit(callback) {
      hooks.push(callback);
    },
    async savepoint(work) {
      const name = `sp_${++savepoints}`;
      const own: (() => void)[] = [];
      await runner.exec(`SAVEPOINT ${name}`);
      try {
        const result = await work(transactionOn(runner, own));
        await runner.exec(`RELEASE SAVEPOINT ${name}`);
        hooks.push(...own);
        return result;
      } catch (error) {
        // when even this fails the transaction is lost; what the work threw says more
        await runner.exec(`ROLLBACK TO SAVEPOINT ${name}`).catch(() => undefined);
        throw error;
      }
    },
  };
}

/** A transaction whose work resolved although one of its statements had failed (outside a savepoint). */
function abortedTransaction(): DatabaseError {
  return new DatabaseError(
    'DATABASE',
    'the transaction was rolled back: one of its statements failed and the failure was not undone by a savepoint',
    { sqlState: '25P02' },
  );
}

/** Runs commit callbacks; one that throws does not keep the others from running. */
function runHooks(hooks: readonly (() => void)[]): void {
  for (const hook of hooks) {
    try {
      hook();
    } catch {
      // a cache update failing must not turn a committed transaction into an error
    }
  }
}

const statementNames = new Map<string, string>();

/** The prepared statement name of a text: its hash, so one name never meets two texts. */
function statementName(sql: string): string {
  let name = statementNames.get(sql);
  if (name === undefined) {
    name = `stowage_${createHash('sha256').update(sql).digest('hex').slice(0, 24)}`;
    statementNames.set(sql, name);
  }
  return name;
}

export interface PostgresOptions {
  /** `postgres://user@host:port/db` */
  readonly connectionString: string;
  /** Pool size. Default 4. */
  readonly max?: number;
  /** How long to wait for a connection (a new one, or a free one of a full pool) before `UNAVAILABLE`. Default: no limit. */
  readonly connectTimeoutMs?: number;
}

/**
 * Why `text` is not a connection string `pg` can use, or `undefined` when it
 * is one: a `postgres://` or `postgresql://` URL naming a host (in the
 * authority or as `?host=`, a socket directory), or a `socket:` URL naming a
 * socket directory. `pg` itself takes anything else as a database name on a
 * host called "base".
 */
export function databaseUrlProblem(text: string): string | undefined {
  const scheme = /^([a-z][a-z0-9+.-]*):/i.exec(text)?.[1]?.toLowerCase();
  if (scheme === undefined) return 'it has no postgres:// scheme';
  if (scheme !== 'postgres' && scheme !== 'postgresql' && scheme !== 'socket')
    return `its scheme is ${scheme}:, not postgres:`;
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    return 'it does not parse as a URL (a bad port, or a character that needs %-encoding?)';
  }
  if (scheme === 'socket') return url.pathname ? undefined : 'it names no socket directory';
  if (!text.slice(scheme.length + 1).startsWith('//')) return 'it lacks the // before the host';
  if (url.hostname === '' && !url.searchParams.get('host')) return 'it names no host';
  if (url.port === '0') return 'port 0 is not a port';
  return undefined;
}

/**
 * A pg pool on a PostgreSQL server. A connection string that is not a
 * PostgreSQL URL throws `OPTIONS_INVALID` here, before any connection is tried.
 */
export function createPostgresDatabase(options: PostgresOptions): Database {
  const problem = databaseUrlProblem(options.connectionString);
  if (problem !== undefined) {
    throw new DatabaseError(
      'OPTIONS_INVALID',
      `not a PostgreSQL URL (${problem}): expected postgres://user@host:5432/database`,
      { details: { option: 'connectionString', problem } },
    );
  }
  const max = options.max ?? 4;
  const pool = new pg.Pool({
    connectionString: options.connectionString,
    max,
    ...(options.connectTimeoutMs ? { connectionTimeoutMillis: options.connectTimeoutMs } : {}),
  });
  // An idle client whose backend was terminated emits an error: it is dropped from the pool, not fatal.
  pool.on('error', () => undefined);
  const run = async <Row>(
    client: pg.Pool | pg.PoolClient,
    sql: string,
    params?: readonly unknown[],
    options?: QueryOptions,
  ) => {
    try {
      const result = options?.prepare
        ? await client.query({ name: statementName(sql), text: sql, values: params as unknown[] | undefined })
        : await client.query(sql, params as unknown[] | undefined);
      return { rows: result.rows as Row[], rowCount: result.rowCount ?? 0 };
    } catch (error) {
      throw toDatabaseError(error);
    }
  };
  return {
    kind: 'postgres',
    stats: () => ({ total: pool.totalCount, idle: pool.idleCount, waiting: pool.waitingCount, max }),
    query: (sql, params, options) => run(pool, sql, params, options),
    exec: async (sql) => {
      await run(pool, sql);
    },
    async transaction(work) {
      let client: pg.PoolClient;
      try {
        client = await pool.connect();
      } catch (error) {
        throw toDatabaseError(error);
      }
      let broken = false;
      const onError = () => {
        broken = true;
      };
      client.on('error', onError);
      const runner: Queryable = {
        query: (sql, params, options) => run(client, sql, params, options),
        exec: async (sql) => {
          await run(client, sql);
        },
      };
      const hooks: (() => void)[] = [];
      try {
        await runner.exec('BEGIN');
        const result = await work(transactionOn(runner, hooks));
        // PostgreSQL answers COMMIT of a transaction in which a statement failed with ROLLBACK, not an error
        let ended: pg.QueryResult;
        try {
          ended = await client.query('COMMIT');
        } catch (error) {
          throw toDatabaseError(error);
        }
        if (ended.command === 'ROLLBACK') throw abortedTransaction();
        runHooks(hooks);
        return result;
      } catch (error) {
        const thrown = rethrowable(error);
        if (isDatabaseError(thrown, 'UNAVAILABLE')) {
          broken = true;
        }
        if (!broken) await runner.exec('ROLLBACK').catch(() => undefined);
        throw thrown;
      } finally {
        client.off('error', onError);
        client.release(broken ? true : undefined);
      }
    },
    close: () => pool.end(),
  };
}

export interface PgliteOptions {
  /** Where PGlite keeps its files; in memory when absent. */
  readonly dataDir?: string;
  /**
   * Create the database when `dataDir` holds none. Default true; with false,
   * a missing database throws `DATABASE_UNKNOWN` and nothing is written
   * (what read-only commands want).
   */
  readonly create?: boolean;
}

/** Whether `dataDir` holds a PostgreSQL data directory (its `PG_VERSION`); throws when `dataDir` is not a directory. */
function holdsDatabase(dataDir: string): boolean {
  const kind = (path: string) => {
    try {
      return statSync(path).isDirectory() ? 'directory' : 'file';
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return 'missing';
      throw error;
    }
  };
  const dir = kind(dataDir);
  if (dir === 'file') {
    throw new DatabaseError('DATABASE_UNKNOWN', `${dataDir} is a file, not a database directory`);
  }
  return dir === 'directory' && kind(join(dataDir, 'PG_VERSION')) === 'file';
}

/** Embedded PostgreSQL (PGlite): the zero-setup default. One connection; transactions queue. */
export async function createPgliteDatabase(options: PgliteOptions = {}): Promise<Database> {
  if (options.dataDir !== undefined && !holdsDatabase(options.dataDir) && options.create === false) {
    throw new DatabaseError('DATABASE_UNKNOWN', `no database in ${options.dataDir}`);
  }
  const lite = options.dataDir ? new PGlite(options.dataDir) : new PGlite();
  await lite.waitReady;
  const wrap = async <T>(work: () => Promise<T>): Promise<T> => {
    try {
      return await work();
    } catch (error) {
      throw rethrowable(error);
    }
  };
  const query = <Row>(sql: string, params?: readonly unknown[]) =>
    wrap(async () => {
      const result = await lite.query<Row>(sql, params as unknown[] | undefined);
      return { rows: result.rows, rowCount: result.affectedRows ?? result.rows.length };
    });
  return {
    kind: 'pglite',
    query,
    exec: (sql) => wrap(async () => void (await lite.exec(sql))),
    async transaction(work) {
      const hooks: (() => void)[] = [];
      const result = await wrap(() =>
        lite.transaction(async (inner) => {
          const runner: Queryable = {
            query: <Row>(sql: string, params?: readonly unknown[]) =>
              wrap(async () => {
                const result = await inner.query<Row>(sql, params as unknown[] | undefined);
                return { rows: result.rows, rowCount: result.affectedRows ?? result.rows.length };
              }),
            exec: (sql: string) => wrap(async () => void (await inner.exec(sql))),
          };
          const result = await work(transactionOn(runner, hooks));
          // PGlite, like the server, would answer COMMIT with a silent ROLLBACK after a failed statement
          const usable = await inner.query('SELECT 1').then(
            () => true,
            () => false,
          );
          if (!usable) throw abortedTransaction();
          return result;
        }),
      );
      // PGlite's transaction resolves only after its COMMIT
      runHooks(hooks);
      return result;
    },
    close: () => lite.close(),
  };
}

/**
 * PostgreSQL when a URL is given, else PGlite (in `dataDir`, or in memory).
 * `create: false` refuses (`DATABASE_UNKNOWN`) a `dataDir` holding no database instead of creating one.
 */
export async function openDatabase(
  options: { url?: string; dataDir?: string; max?: number; create?: boolean } = {},
): Promise<Database> {
  if (options.url) {
    return createPostgresDatabase({
      connectionString: options.url,
      ...(options.max ? { max: options.max } : {}),
    });
  }
  return createPgliteDatabase({
    ...(options.dataDir ? { dataDir: options.dataDir } : {}),
    ...(options.create === undefined ? {} : { create: options.create }),
  });
}
