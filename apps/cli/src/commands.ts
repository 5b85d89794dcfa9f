// Every command of stowage, in the order the top help lists them. A new command
// is a file exporting a defineCommand(...) and a line here; nothing else.
import type { Command } from './command.js';
import { dbMigrateCommand, dbStatusCommand } from './db.js';
import { importCommand } from './import.js';
import { syncCommand } from './sync.js';

export const COMMANDS: readonly Command[] = [importCommand, syncCommand, dbMigrateCommand, dbStatusCommand];
