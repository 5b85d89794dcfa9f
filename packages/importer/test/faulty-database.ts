// A Database wrapper that injects failures into chosen transactions and
// statements, and records when transactions commit or roll back.
import type { Database, Transaction } from '@stowage/metadata-db';

export interface Faults {
  /** Runs after a transaction's work, before its commit; throw to fail that attempt. `n` counts transactions from 1. */
  beforeCommit?(n: number): Promise<void> | void;
  /** Runs before each statement inside a transaction; throw to fail it. */
  onQuery?(sql: string, params: readonly unknown[] | undefined, n: number): void;
}

export interface FaultyDatabase extends Database {
  /** `commit <n>` and `rollback <n>`, in order; tests may push their own entries. */
  readonly events: string[];
}

export function withFaults(db: Database, faults: Faults): FaultyDatabase {
  const events: string[] = [];
  let transactions = 0;
  const wrap = (tx: Transaction, n: number): Transaction => ({
    query(sql, params) {
      faults.onQuery?.(sql, params, n);
      return tx.query(sql, params);
    },
    exec: (sql) => tx.exec(sql),
    savepoint: (work) => tx.savepoint((sp) => work(wrap(sp, n))),
    afterCommit: (callback) => tx.afterCommit(callback),
  });
  return {
    kind: db.kind,
    events,
    query: (sql, params) => db.query(sql, params),
    exec: (sql) => db.exec(sql),
    close: () => db.close(),
    async transaction(work) {
      const n = ++transactions;
      try {
        const result = await db.transaction(async (tx) => {
          const value = await work(wrap(tx, n));
          await faults.beforeCommit?.(n);
          return value;
        });
        events.push(`commit ${n}`);
        return result;
      } catch (error) {
        events.push(`rollback ${n}`);
        throw error;
      }
    },
  };
}
