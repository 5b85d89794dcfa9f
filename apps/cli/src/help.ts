// What `--help` prints (to stdout) and what follows a usage error's line (on stderr).
// Each command's own help is in its file; the synopsis and a group's help are made
// from the command list.
import {
  type Command,
  DATABASE_OPTIONS_HELP,
  GENERAL_OPTIONS_HELP,
  groupOf,
  URL_EXAMPLE,
} from './command.js';
import { COMMANDS } from './commands.js';

/** Lines of `stowage <left>  <right>`, the right column aligned. */
function table(rows: readonly (readonly [string, string])[]): string {
  const width = Math.max(...rows.map(([left]) => left.length)) + 2;
  return rows.map(([left, right]) => `  stowage ${left.padEnd(width)}${right}`).join('\n');
}

const SYNOPSIS = `usage: stowage <command> [options]
${table([
  ...COMMANDS.map((c) => [c.synopsis, c.summary] as const),
  ['--version | --help', "stowage <command> --help shows a command's own help"],
])}`;

export const EXIT_CODES = `exit codes:
  0    done
  1    any other failure (run it again with --debug for the stack trace)
  2    usage error: an unknown command or option, a missing or invalid value
  3    the registry root is not a distribution tree, lacks a --repository asked for,
       or holds a manifest that stops the import; sync: its config file is unreadable
       or invalid
  4    the database: an invalid URL, unreachable, missing, not migrated, or failing
  5    sync: some image (or an upstream as a whole) failed; the others are synced
  6    not found: no such repository, tag, manifest, blob, platform or stage (or a stage
       whose blob is gone)
  7    auth: the registry wants credentials, refused them, or denies the operation
  8    network: the registry cannot be reached, timed out, is unavailable or rate-limits
  9    refused: the registry does not support the change, refused a delete, or its state
       conflicts with it
  130  interrupted (SIGINT); running the same command again continues`;

const TOP = `stowage: the command line of the Stowage toolkit.

${SYNOPSIS}

options of every command:
${DATABASE_OPTIONS_HELP}
${GENERAL_OPTIONS_HELP}
  -v, --version          print the version

${EXIT_CODES}

example:
  stowage db migrate --database-url ${URL_EXAMPLE}
  stowage import /var/lib/docker-registry --database-url ${URL_EXAMPLE}`;

/** `stowage db --help`: the group's commands, and where their options are. */
function groupHelp(group: string): string {
  const members = COMMANDS.filter((c) => groupOf(c.name) === group);
  return `usage:
${table(members.map((c) => [c.synopsis, c.summary] as const))}

${members.map((c) => `stowage ${c.name} --help`).join(' and ')} show their options.`;
}

/** The full help of a command, of a group of commands, or the top one. */
export function helpText(command: Command | undefined, group?: string): string {
  if (command) return command.help;
  return group ? groupHelp(group) : TOP;
}

/** What follows a usage error's line: the usage of the command it was about. */
export function usageText(name: string | undefined): string {
  return COMMANDS.find((c) => c.name === name)?.usage ?? SYNOPSIS;
}
