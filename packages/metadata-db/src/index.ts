export {
  createPgliteDatabase,
  createPostgresDatabase,
  type Database,
  DatabaseError,
  type DatabaseErrorCode,
  databaseUrlProblem,
  isTransaction,
  openDatabase,
  type PgliteOptions,
  type PostgresOptions,
  type Queryable,
  type QueryResult,
  redactDatabaseUrl,
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
  type NewManifest,
  type RepositoryRow,
  type RowCounts,
} from './store.js';
