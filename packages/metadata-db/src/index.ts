/** Re-exported from `@stowage/oci`, where it now lives. */
export { redactDatabaseUrl } from '@stowage/oci';
export {
  createPgliteDatabase,
  createPostgresDatabase,
  type Database,
  DatabaseError,
  type DatabaseErrorCode,
  databaseUrlProblem,
  isDatabaseError,
  isTransaction,
  openDatabase,
  type PgliteOptions,
  type PoolStats,
  type PostgresOptions,
  type Queryable,
  type QueryOptions,
  type QueryResult,
  type Transaction,
  toDatabaseError,
} from './database.js';
export {
  assertMigrated,
  checksum,
  type Migration,
  type MigrationStatus,
  migrate,
  migrationStatus,
  migrations,
} from './migrations.js';
export {
  decodeDigest,
  encodeDigest,
  MetadataStore,
  type NewLayer,
  type NewManifest,
  type RepositoryRow,
  type RowCounts,
} from './store.js';
