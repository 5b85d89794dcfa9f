import { PGlite } from '@electric-sql/pglite';
import { StowageError } from '@stowage/oci';
import pg from 'pg';

export type DatabaseErrorCode =
  | 'UNIQUE_VIOLATION'
  | 'FOREIGN_KEY_VIOLATION'
  | 'CHECK_VIOLATION'
  | 'NOT_NULL_VIOLATION'
  | 'SERIALIZATION_FAILURE'
  | 'DEADLOCK'
  | 'CONNECTION'
  | 'ADMIN_SHUTDOWN'
  | 'QUERY_CANCELED'
  | 'READ_ONLY'
  | 'PERMISSION'
  | 'MIGRATION_UNKNOWN'
  | 'MIGRATION_EDITED'
  | 'MIGRATIONS_PENDING'
  | 'DATABASE';

/** A database failure; `retryable` says whether running the same transaction again may work. */
export class DatabaseError extends StowageError<DatabaseErrorCode> {
  readonly sqlState: string | undefined;
  constructor(
    code: DatabaseErrorCode,
    message: string,
    options: { sqlState?: string; cause?: unknown } = {},
  ) {
    const retryable = ['SERIALIZATION_FAILURE', 'DEADLOCK', 'CONNECTION', 'ADMIN_SHUTDOWN'].includes(code);
    super(code, message, {
      retryable,
      ...(options.cause === undefined ? {} : { cause: options.cause }),
      details: options.sqlState ? { sqlState: options.sqlState } : {},
    });
    this.sqlState = options.sqlState;
  }
}

const BY_STATE: Readonly<Record<string, DatabaseErrorCode>> = {
  '23505': 'UNIQUE_VIOLATION',
  '23503': 'FOREIGN_KEY_VIOLATION',
  '23514': 'CHECK_VIOLATION',
  '23502': 'NOT_NULL_VIOLATION',
  '40001': 'SERIALIZATION_FAILURE',
  '40P01': 'DEADLOCK',
  '57P01': 'ADMIN_SHUTDOWN',
  '57P02': 'ADMIN_SHUTDOWN',
  '57P03': 'CONNECTION',
  '57014': 'QUERY_CANCELED',
  '25006': 'READ_ONLY',
  '42501': 'PERMISSION',
};

const NETWORK_CODES = new Set([
  'ECONNRESET',
  'ECONNREFUSED',
  'ETIMEDOUT',
  'EPIPE',
  'ENOTCONN',
  'EHOSTUNREACH',
]);

/** What a transaction's work threw: database and network failures mapped, anything else as it was. */
function rethrowable(error: unknown): unknown {
  if (error instanceof StowageError) return error;
  const e = error as { code?: unknown; severity?: unknown; message?: unknown };
  const looksLikeDb =
    typeof e?.code === 'string' &&
    (typeof e.severity === 'string' || NETWORK_CODES.has(e.code) || /^[0-9A-Z]{5}$/.test(e.code));
  const looksLikeConnection =
    typeof e?.message === 'string' &&
    /Connection terminated|Client has encountered a connection error/i.test(e.message);
  return looksLikeDb || looksLikeConnection ? toDatabaseError(error) : error;
}

/** Maps what pg, PGlite or the network threw to a `DatabaseError` (a `DatabaseError` passes through). */
export function toDatabaseError(error: unknown): DatabaseError {
  if (error instanceof DatabaseError) return error;
  const e = error as { code?: unknown; message?: unknown };
  const code = typeof e?.code === 'string' ? e.code : undefined;
  const message = typeof e?.message === 'string' ? e.message : String(error);
  if (code && BY_STATE[code])
    return new DatabaseError(BY_STATE[code], message, { sqlState: code, cause: error });
  if (code?.startsWith('08'))
    return new DatabaseError('CONNECTION', message, { sqlState: code, cause: error });
  if (code && NETWORK_CODES.has(code)) return new DatabaseError('CONNECTION', message, { cause: error });
  if (
    /Connection terminated|connection.*(closed|ended|lost)|Client has encountered a connection error/i.test(
      message,
    )
  ) {
    return new DatabaseError('CONNECTION', message, { cause: error });
  }
  return new DatabaseError('DATABASE', message, { ...(code ? { sqlState: code } : {}), cause: error });
}

export interface QueryResult<Row> {
  readonly rows: Row[];
  readonly rowCount: number;
}

/** What every query runs on: the database, or one transaction of it. */
export interface Queryable {
  query<Row = Record<string, unknown>>(sql: string, params?: readonly unknown[]): Promise<QueryResult<Row>>;
  /** Runs a script of several statements (no parameters). */
  exec(sql: string): Promise<void>;
}

export interface Transaction extends Queryable {
  /** Runs `work` in a savepoint: its failure undoes only what it did. */
  savepoint<T>(work: (tx: Transaction) => Promise<T>): Promise<T>;
}

export interface Database extends Queryable {
  readonly kind: 'postgres' | 'pglite';
  /** Runs `work` in a transaction, committed when it resolves, rolled back when it throws. */
  transaction<T>(work: (tx: Transaction) => Promise<T>): Promise<T>;
  close(): Promise<void>;
}

let savepoints = 0;

function transactionOn(runner: Queryable): Transaction {
  const tx: Transaction = {
    query: (sql, params) => runner.query(sql, params),
    exec: (sql) => runner.exec(sql),
    async savepoint(work) {
      const name = `sp_${++savepoints}`;
      await runner.exec(`SAVEPOINT ${name}`);
      try {
        const result = await work(tx);
        await runner.exec(`RELEASE SAVEPOINT ${name}`);
        return result;
      } catch (error) {
        await runner.exec(`ROLLBACK TO SAVEPOINT ${name}`);
        throw error;
      }
    },
  };
  return tx;
}

export interface PostgresOptions {
  /** `postgres://user@host:port/db` */
  readonly connectionString: string;
  /** Pool size. Default 4. */
  readonly max?: number;
}

/** A pg pool on a PostgreSQL server. */
export function createPostgresDatabase(options: PostgresOptions): Database {
  const pool = new pg.Pool({ connectionString: options.connectionString, max: options.max ?? 4 });
  // An idle client whose backend was terminated emits an error: it is dropped from the pool, not fatal.
  pool.on('error', () => undefined);
  const run = async <Row>(client: pg.Pool | pg.PoolClient, sql: string, params?: readonly unknown[]) => {
    try {
      const result = await client.query(sql, params as unknown[] | undefined);
      return { rows: result.rows as Row[], rowCount: result.rowCount ?? 0 };
    } catch (error) {
      throw toDatabaseError(error);
    }
  };
  return {
    kind: 'postgres',
    query: (sql, params) => run(pool, sql, params),
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
        query: (sql, params) => run(client, sql, params),
        exec: async (sql) => {
          await run(client, sql);
        },
      };
      try {
        await runner.exec('BEGIN');
        const result = await work(transactionOn(runner));
        await runner.exec('COMMIT');
        return result;
      } catch (error) {
        const thrown = rethrowable(error);
        if (
          thrown instanceof DatabaseError &&
          (thrown.code === 'CONNECTION' || thrown.code === 'ADMIN_SHUTDOWN')
        ) {
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
}

/** Embedded PostgreSQL (PGlite): the zero-setup default. One connection; transactions queue. */
export async function createPgliteDatabase(options: PgliteOptions = {}): Promise<Database> {
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
    transaction: (work) =>
      wrap(() =>
        lite.transaction(async (inner) => {
          const runner: Queryable = {
            query: <Row>(sql: string, params?: readonly unknown[]) =>
              wrap(async () => {
                const result = await inner.query<Row>(sql, params as unknown[] | undefined);
                return { rows: result.rows, rowCount: result.affectedRows ?? result.rows.length };
              }),
            exec: (sql: string) => wrap(async () => void (await inner.exec(sql))),
          };
          return work(transactionOn(runner));
        }),
      ),
    close: () => lite.close(),
  };
}

/** PostgreSQL when a URL is given, else PGlite (in `dataDir`, or in memory). */
export async function openDatabase(
  options: { url?: string; dataDir?: string; max?: number } = {},
): Promise<Database> {
  if (options.url) {
    return createPostgresDatabase({
      connectionString: options.url,
      ...(options.max ? { max: options.max } : {}),
    });
  }
  return createPgliteDatabase(options.dataDir ? { dataDir: options.dataDir } : {});
}
