// What a command is: its name, the options it takes, its help, and the one
// function it runs. Every command file exports one (or a few) `defineCommand`
// results; `commands.ts` lists them, and the parser, the help and the
// dispatch in cli.ts read only that list.
import { StowageError } from '@stowage/oci';
import type { DatabaseChoice } from './database.js';

/** One option of the command line: whether it takes a value, may repeat, has a one-letter form. */
export interface OptionSpec {
  readonly type: 'string' | 'boolean';
  readonly multiple?: boolean;
  readonly short?: string;
}

export type OptionTable = Readonly<Record<string, OptionSpec>>;

/** The values an option table parses into: a boolean, a string, or every value of a repeatable option. */
export type ValuesOf<O extends OptionTable> = {
  readonly [K in keyof O]?: O[K] extends { readonly type: 'boolean' }
    ? boolean
    : O[K] extends { readonly multiple: true }
      ? readonly string[]
      : string;
};

/** The options every command takes. */
export const GENERAL_OPTIONS = {
  help: { type: 'boolean', short: 'h' },
  version: { type: 'boolean', short: 'v' },
  debug: { type: 'boolean' },
} as const satisfies OptionTable;

/** What a running command tells its caller, for the error messages after a failure. */
export interface CommandRun {
  /** The database the command was opening or using, to name it in messages. */
  database?: DatabaseChoice;
  /** The import's log file, to say when it is what could not be written. */
  logFile?: string;
}

export interface CommandContext<O extends OptionTable> {
  /** The positionals after the command's own words. */
  readonly operands: readonly string[];
  readonly values: ValuesOf<O & typeof GENERAL_OPTIONS>;
  readonly run: CommandRun;
}

/** Parsed values as the parser holds them, before a command's own table types them. */
export type Values = Readonly<Record<string, string | boolean | readonly string[] | undefined>>;

/** A command of the registry (`commands.ts`). */
export interface Command {
  /** Its words: `import`, `db migrate`. */
  readonly name: string;
  /** The form shown in the top synopsis, after `stowage `: `import [options] <registry-root>`. */
  readonly synopsis: string;
  /** What it does, in a few words, for the synopsis and its group's help. */
  readonly summary: string;
  /** The usage line printed first in its help and after a usage error. */
  readonly usage: string;
  /** The whole `--help` text, examples included. */
  readonly help: string;
  /** Its own options (the general ones are added). */
  readonly options: OptionTable;
  /** Runs it with values the parser checked against `options` (so typed as they declare). */
  run(context: {
    readonly operands: readonly string[];
    readonly values: Values;
    readonly run: CommandRun;
  }): Promise<number>;
}

/** A command with its values typed by its own option table. */
export function defineCommand<const O extends OptionTable>(spec: {
  readonly name: string;
  readonly synopsis: string;
  readonly summary: string;
  readonly usage: string;
  readonly help: string;
  readonly options: O;
  run(context: CommandContext<O>): Promise<number>;
}): Command {
  return spec as unknown as Command;
}

/** A mistake in the command line: exit code 2, one line naming it, then the usage. */
export class UsageError extends StowageError<'USAGE'> {
  /** Whose usage to show: a command's name, or the top one's. */
  readonly command: string | undefined;
  constructor(message: string, command: string | undefined) {
    super('USAGE', message, { details: command ? { command } : {} });
    this.command = command;
  }
}

/** `--help` after this, for the hint at the end of a usage error's line. */
export function helpOf(command: string | undefined): string {
  return command ? `stowage ${command} --help` : 'stowage --help';
}

/** A usage error of `command`, its line ending with where its help is. */
export function usageError(command: string, message: string): UsageError {
  return new UsageError(`${message} (see ${helpOf(command)})`, command);
}

/** "a, b or c" (or "and"), for messages naming choices. */
export function list(words: readonly string[], conjunction: 'or' | 'and'): string {
  return words.length <= 1
    ? words.join('')
    : `${words.slice(0, -1).join(', ')} ${conjunction} ${words.at(-1)}`;
}

/** `"a" "b"`: operands quoted for a message. */
export function quoted(operands: readonly string[]): string {
  return operands.map((o) => JSON.stringify(o)).join(' ');
}

/** The one operand a command takes, or a usage error naming what is missing or extra. */
export function oneOperand(command: string, operands: readonly string[], what: string): string {
  if (operands.length === 0) throw usageError(command, `${command} needs ${what}`);
  if (operands.length > 1) {
    throw usageError(
      command,
      `${command} takes one ${what.replace(/^an? /, '')}, not ${operands.length}: ${quoted(operands)}`,
    );
  }
  return operands[0] as string;
}

/** Help text shared by the commands that open the metadata database. */
export const URL_EXAMPLE = 'postgres://postgres@127.0.0.1:5432/registry';

export const DATABASE_OPTIONS = {
  'database-url': { type: 'string' },
  'data-dir': { type: 'string' },
} as const satisfies OptionTable;

export const DATABASE_OPTIONS_HELP = `  --database-url <url>   PostgreSQL: postgres://user@host:5432/database
  --data-dir <dir>       the embedded (PGlite) database's directory instead
                         (neither given: STOWAGE_DATABASE_URL, else DATABASE_URL, else the
                         embedded database in ./.stowage-metadata)`;

export const GENERAL_OPTIONS_HELP = `  --debug                a failure prints its stack trace too
  -h, --help             this help`;

/** The group a command belongs to: the first of its words when it has several (`db`), else none. */
export function groupOf(name: string): string | undefined {
  const space = name.indexOf(' ');
  return space < 0 ? undefined : name.slice(0, space);
}
