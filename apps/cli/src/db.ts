// stowage db migrate / db status.
import {
  type CommandRun,
  DATABASE_OPTIONS,
  DATABASE_OPTIONS_HELP,
  defineCommand,
  GENERAL_OPTIONS_HELP,
  quoted,
  URL_EXAMPLE,
  usageError,
} from './command.js';
import { chooseDatabase, openChosen } from './database.js';

const MIGRATE_USAGE = 'usage: stowage db migrate [--database-url <url> | --data-dir <dir>]';

const MIGRATE_HELP = `${MIGRATE_USAGE}

Applies the migrations this version has and the database lacks, in one transaction. Without a
database URL it creates the embedded database in --data-dir when there is none. A database holding
a migration this version does not know, or one changed since it was applied, is refused.

options:
${DATABASE_OPTIONS_HELP}
${GENERAL_OPTIONS_HELP}

example:
  stowage db migrate --database-url ${URL_EXAMPLE}`;

const STATUS_USAGE = 'usage: stowage db status [--database-url <url> | --data-dir <dir>]';

const STATUS_HELP = `${STATUS_USAGE}

Prints the applied and pending migrations as one JSON line: {"applied":[...],"pending":[...]}.
It only reads: a database never migrated shows every migration pending, and a missing embedded
database is reported (exit code 4), never created.

options:
${DATABASE_OPTIONS_HELP}
${GENERAL_OPTIONS_HELP}

example:
  stowage db status --data-dir ./.stowage-metadata`;

async function runDb(
  sub: 'migrate' | 'status',
  operands: readonly string[],
  values: { readonly 'database-url'?: string | undefined; readonly 'data-dir'?: string | undefined },
  run: CommandRun,
): Promise<number> {
  const command = `db ${sub}`;
  if (operands.length > 0)
    throw usageError(command, `${command} takes no arguments, not ${quoted(operands)}`);
  const { migrate, migrationStatus } = await import('@stowage/metadata-db');
  const choice = chooseDatabase(values, command);
  run.database = choice;
  // only migrate creates an embedded database; status reads, and creates nothing
  const db = await openChosen(choice, { create: sub === 'migrate' });
  try {
    if (sub === 'migrate') {
      const applied = await migrate(db);
      process.stdout.write(applied.length ? `applied: ${applied.join(', ')}\n` : 'the schema is current\n');
    } else {
      process.stdout.write(`${JSON.stringify(await migrationStatus(db))}\n`);
    }
  } finally {
    await db.close();
  }
  return 0;
}

export const dbMigrateCommand = defineCommand({
  name: 'db migrate',
  synopsis: 'db migrate [options]',
  summary: 'create the database or bring its schema up to date',
  usage: MIGRATE_USAGE,
  help: MIGRATE_HELP,
  options: DATABASE_OPTIONS,
  run: ({ operands, values, run }) => runDb('migrate', operands, values, run),
});

export const dbStatusCommand = defineCommand({
  name: 'db status',
  synopsis: 'db status [options]',
  summary: 'show applied and pending migrations (changes nothing)',
  usage: STATUS_USAGE,
  help: STATUS_HELP,
  options: DATABASE_OPTIONS,
  run: ({ operands, values, run }) => runDb('status', operands, values, run),
});
