// Which database a command uses: --database-url, --data-dir, the environment, the default.
import { resolve } from 'node:path';
import type { Database } from '@stowage/metadata-db';
import { usageError } from './command.js';

export interface DatabaseChoice {
  /** A PostgreSQL connection string, as given. */
  readonly url?: string;
  /** Where `url` came from, to name it in messages. */
  readonly source?: '--database-url' | 'STOWAGE_DATABASE_URL' | 'DATABASE_URL';
  /** The embedded database's directory (absolute). */
  readonly dataDir?: string;
}

/**
 * `--database-url`, else `--data-dir`, else STOWAGE_DATABASE_URL, then
 * DATABASE_URL (empty ones do not count), else the embedded database in
 * ./.stowage-metadata. Both flags at once is a usage error.
 */
export function chooseDatabase(
  values: { readonly 'database-url'?: string | undefined; readonly 'data-dir'?: string | undefined },
  command: string,
  env: NodeJS.ProcessEnv = process.env,
): DatabaseChoice {
  const url = values['database-url'];
  const dir = values['data-dir'];
  if (url !== undefined && dir !== undefined) {
    throw usageError(command, 'give --database-url or --data-dir, not both');
  }
  if (url !== undefined) return { url, source: '--database-url' };
  if (dir !== undefined) return { dataDir: resolve(dir) };
  for (const name of ['STOWAGE_DATABASE_URL', 'DATABASE_URL'] as const) {
    const value = env[name];
    if (value) return { url: value, source: name };
  }
  return { dataDir: resolve('.stowage-metadata') };
}

/**
 * Opens the chosen database. An embedded one is created only when `create`
 * (`db migrate`); every other command refuses a missing one and writes
 * nothing. A URL is checked before anything connects.
 */
export async function openChosen(choice: DatabaseChoice, options: { create: boolean }): Promise<Database> {
  const { createPostgresDatabase, openDatabase } = await import('@stowage/metadata-db');
  if (choice.url !== undefined) return createPostgresDatabase({ connectionString: choice.url });
  return await openDatabase({ dataDir: choice.dataDir as string, create: options.create });
}
