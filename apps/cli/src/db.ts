// stowage db migrate / db status.
import { migrate, migrationStatus } from '@stowage/metadata-db';
import { helpOf, UsageError, type Values } from './args.js';
import { chooseDatabase, openChosen } from './database.js';
import type { CommandRun } from './import.js';

export async function dbCommand(
  sub: 'migrate' | 'status',
  operands: readonly string[],
  values: Values,
  run: CommandRun,
): Promise<number> {
  const command = `db ${sub}` as const;
  if (operands.length > 0) {
    throw new UsageError(
      `${command} takes no arguments, not ${operands.map((o) => JSON.stringify(o)).join(' ')} (see ${helpOf(command)})`,
      command,
    );
  }
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
