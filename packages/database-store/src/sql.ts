import { type Database, isDatabaseError, type Transaction } from '@stowage/metadata-db';

/** pg answers bigint columns as strings, PGlite as numbers. */
export function num(value: unknown): number {
  return typeof value === 'number' ? value : Number(value);
}

/** How often a transaction that lost a deadlock or a serialization race is run again. */
const CONFLICT_ATTEMPTS = 4;

/**
 * Runs `work` in a transaction, again when PostgreSQL chose it as a deadlock
 * victim or refused it for a serialization conflict: nothing of a refused
 * attempt was committed, and `work` reads what it needs afresh each time.
 */
export async function transact<T>(db: Database, work: (tx: Transaction) => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await db.transaction(work);
    } catch (error) {
      const conflict = isDatabaseError(error, 'DEADLOCK') || isDatabaseError(error, 'SERIALIZATION_FAILURE');
      if (!conflict || attempt >= CONFLICT_ATTEMPTS) throw error;
      await new Promise((resolve) => setTimeout(resolve, 5 * attempt * Math.random()));
    }
  }
}
