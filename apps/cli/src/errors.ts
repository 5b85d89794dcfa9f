// The one place where failures become what the user reads and the exit code
// scripts branch on. Branches on error codes, never on message text.
import { statSync } from 'node:fs';
import { inspect } from 'node:util';
import type { DatabaseError } from '@stowage/metadata-db';
import { isStowageError, redactDatabaseUrl } from '@stowage/oci';
import { UsageError } from './command.js';
import type { DatabaseChoice } from './database.js';

/** Documented in the README and in `stowage --help`. */
export const ExitCode = {
  ok: 0,
  failure: 1,
  usage: 2,
  /** The registry root is not a distribution tree, lacks a repository asked for, or holds a manifest that stops the import. */
  input: 3,
  /** An invalid URL, an unreachable, missing or unmigrated database, or a database failure. */
  database: 4,
  /** A registry has no such repository, tag, manifest, blob or platform. */
  notFound: 6,
  /** A registry wants credentials, refused the ones given, or denies the operation to them. */
  auth: 7,
  /** A registry cannot be reached, timed out, is unavailable or rate-limits us. */
  network: 8,
  /** A registry refuses the change as it stands: unsupported there, a blob missing, a conflict. */
  refused: 9,
  interrupted: 130,
} as const;

/**
 * Error codes by the exit code they give (the packages' codes: OCI's, the client's, and the
 * stages storage's and storage manager's).
 */
const NOT_FOUND = new Set([
  'MANIFEST_UNKNOWN',
  'BLOB_UNKNOWN',
  'NAME_UNKNOWN',
  'NO_MATCHING_PLATFORM',
  // a stage that is not there, one whose blob or child is gone, a custom tag that is not there
  'STAGE_NOT_FOUND',
  'BROKEN_IMAGE',
  'CUSTOM_TAG_NOT_FOUND',
  'NOT_IN_FINAL_REPO',
]);
const AUTH = new Set(['UNAUTHORIZED', 'DENIED', 'CREDENTIALS_ERROR']);
const NETWORK = new Set(['NETWORK_ERROR', 'TIMEOUT', 'UNAVAILABLE', 'TOOMANYREQUESTS']);
const REFUSED = new Set([
  'UNSUPPORTED',
  'MANIFEST_BLOB_UNKNOWN',
  'SPARSE_INDEX_UNSUPPORTED',
  'UNSUPPORTED_MANIFEST',
  'LOCK_TIMEOUT',
  // the stages storage: a delete refused, a custom tag on another image; the manager: a stage gone meanwhile
  'DELETE_REFUSED',
  'CUSTOM_TAG_MISMATCH',
  'UNEXPECTED_STORAGE_STATE',
]);
/** Options a package refused (the CLI checks its flags first, so this is a value it let through). */
const USAGE = new Set(['OPTIONS_INVALID']);

export interface Explained {
  readonly exitCode: number;
  /** One line, without the `stowage: ` prefix. */
  readonly line: string;
}

export interface ErrorContext {
  /** The database the command was opening or using, to name it in messages. */
  readonly database?: DatabaseChoice | undefined;
  /** The import's log file, to say when it is what could not be written. */
  readonly logFile?: string | undefined;
}

function databaseName(choice: DatabaseChoice | undefined): string {
  if (choice?.url !== undefined) return redactDatabaseUrl(choice.url);
  return choice?.dataDir ?? 'the database';
}

function explainDatabase(error: DatabaseError, context: ErrorContext): string {
  const choice = context.database;
  const source = choice?.source ?? '--database-url';
  switch (error.code) {
    case 'OPTIONS_INVALID':
      return `${source} is ${error.message}`;
    case 'UNAVAILABLE':
      return `cannot reach the database at ${databaseName(choice)} (${error.message}): check ${source} and that PostgreSQL is running`;
    case 'DATABASE_UNKNOWN': {
      if (choice?.url !== undefined)
        return `${error.message} on ${databaseName(choice)}: create it, or fix ${source}`;
      const dir = choice?.dataDir ?? '';
      const isFile = (() => {
        try {
          return !statSync(dir).isDirectory();
        } catch {
          return false;
        }
      })();
      return isFile
        ? `${error.message}: give --data-dir the directory of an embedded database, or give --database-url`
        : `no embedded database in ${dir}: create it with stowage db migrate --data-dir ${dir}, or give --database-url`;
    }
    case 'MIGRATIONS_PENDING':
    case 'MIGRATION_UNKNOWN':
    case 'MIGRATION_EDITED':
      return error.message;
    default:
      return `the database failed (${error.code}): ${error.message}`;
  }
}

/**
 * What a failure means for the user: one line and an exit code. The importer's
 * and the database's checks are loaded here, on the way out, so a command that
 * uses neither does not load them at start-up.
 */
export async function explain(error: unknown, context: ErrorContext = {}): Promise<Explained> {
  const [{ isImportError }, { isDatabaseError }] = await Promise.all([
    import('@stowage/importer'),
    import('@stowage/metadata-db'),
  ]);
  if (error instanceof UsageError) return { exitCode: ExitCode.usage, line: error.message };
  if (isImportError(error)) {
    switch (error.code) {
      case 'NOT_A_DISTRIBUTION_TREE':
        return { exitCode: ExitCode.input, line: error.message };
      case 'NAME_UNKNOWN':
        return { exitCode: ExitCode.input, line: `${error.message}: check the --repository names` };
      case 'MANIFEST_NOT_JSON':
      case 'MANIFEST_UNKNOWN_MEDIA_TYPE':
        return {
          exitCode: ExitCode.input,
          line: `${error.message}: the import stopped there (repositories before it are imported); fix or remove that manifest and run it again`,
        };
      case 'ABORTED':
        return { exitCode: ExitCode.interrupted, line: 'stopped; run the same command again to continue' };
      case 'OPTIONS_INVALID':
        return { exitCode: ExitCode.usage, line: error.message };
      default:
        return { exitCode: ExitCode.failure, line: error.message };
    }
  }
  if (isDatabaseError(error)) {
    return { exitCode: ExitCode.database, line: explainDatabase(error, context) };
  }
  if (isStowageError(error)) {
    const line = `${error.code}: ${error.message}`;
    const status = (error as { status?: unknown }).status;
    if (NOT_FOUND.has(error.code)) return { exitCode: ExitCode.notFound, line };
    if (USAGE.has(error.code)) return { exitCode: ExitCode.usage, line };
    if (AUTH.has(error.code)) {
      return {
        exitCode: ExitCode.auth,
        line: `${line}: log in (docker login or podman login), or give --authfile`,
      };
    }
    if (NETWORK.has(error.code)) {
      return {
        exitCode: ExitCode.network,
        line: `${line}: check the registry's address and that it is up (--plain-http for one without TLS)`,
      };
    }
    if (REFUSED.has(error.code) || status === 409) return { exitCode: ExitCode.refused, line };
    return { exitCode: ExitCode.failure, line };
  }
  const errno = error as NodeJS.ErrnoException;
  if (typeof errno?.code === 'string' && typeof errno.syscall === 'string') {
    const log = context.logFile;
    if (log !== undefined && typeof errno.path === 'string' && `${log}/`.startsWith(`${errno.path}/`)) {
      return {
        exitCode: ExitCode.failure,
        line: `cannot write the log file ${log} (${errno.message}): give --log-file or --log-directory a writable place, or use --log-to-stdout`,
      };
    }
    // a file the command could not read or write: Node's message names the call, the path and why
    return { exitCode: ExitCode.failure, line: errno.message };
  }
  const message = error instanceof Error ? error.message : String(error);
  return {
    exitCode: ExitCode.failure,
    line: `${message} (an unexpected failure: run it again with --debug for the stack trace)`,
  };
}

/** The stack trace (and causes) that `--debug` adds after the line. */
export function debugText(error: unknown): string {
  return inspect(error, { depth: 6 });
}
