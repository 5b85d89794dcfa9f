// The command line, read by a strict parser of our own over the command list
// (commands.ts): it knows which option takes a value, so it can name the option
// that lacks one, and it knows which command each option belongs to.
import {
  type Command,
  GENERAL_OPTIONS,
  groupOf,
  helpOf,
  list,
  type OptionSpec,
  type OptionTable,
  UsageError,
  type Values,
} from './command.js';
import { COMMANDS } from './commands.js';

export interface CommandLine {
  /** `undefined` when none was given (`stowage --help`, `stowage --version`, or nothing). */
  readonly command: Command | undefined;
  /** The positionals after the command's own words. */
  readonly operands: readonly string[];
  /** `stowage db --help`: the group whose help to show. */
  readonly group?: string;
  readonly values: Values;
}

/** Every option any command takes, by name; two commands giving one name two meanings is a bug. */
export function optionTable(commands: readonly Command[]): OptionTable {
  const all: Record<string, OptionSpec> = { ...GENERAL_OPTIONS };
  const owner: Record<string, string> = {};
  for (const command of commands) {
    for (const [name, spec] of Object.entries(command.options)) {
      const known = all[name];
      if (
        known &&
        (known.type !== spec.type || known.multiple !== spec.multiple || known.short !== spec.short)
      ) {
        throw new Error(
          `option --${name} of ${command.name} differs from the one of ${owner[name] ?? 'every command'}`,
        );
      }
      all[name] = spec;
      owner[name] ??= command.name;
    }
  }
  return all;
}

/** The command the words name: the longest one whose words begin the positionals. */
function findCommand(commands: readonly Command[], positionals: readonly string[]): Command | undefined {
  let found: Command | undefined;
  for (const command of commands) {
    const words = command.name.split(' ');
    if (words.every((word, i) => positionals[i] === word)) {
      if (!found || words.length > found.name.split(' ').length) found = command;
    }
  }
  return found;
}

/** The command the words seem to name, for hints when the line does not parse. */
function guessCommand(commands: readonly Command[], argv: readonly string[]): Command | undefined {
  return commands.find((command) => {
    const words = command.name.split(' ');
    const at = argv.indexOf(words[0] as string);
    return at >= 0 && words.every((word, i) => argv[at + i] === word);
  });
}

/** Whether `argv` asks for stack traces, readable before (and whatever) the rest parses. */
export function wantsDebug(argv: readonly string[]): boolean {
  const end = argv.indexOf('--');
  return (end < 0 ? argv : argv.slice(0, end)).includes('--debug');
}

/** Parses `argv` (without node and the script); throws `UsageError` naming the first mistake. */
export function parseCommandLine(
  argv: readonly string[],
  commands: readonly Command[] = COMMANDS,
): CommandLine {
  const options = optionTable(commands);
  const values: Record<string, string | boolean | string[]> = {};
  const given: string[] = [];
  const positionals: string[] = [];
  const fail = (message: string): never => {
    const command = guessCommand(commands, argv)?.name;
    throw new UsageError(`${message} (see ${helpOf(command)})`, command);
  };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string;
    if (arg === '--') {
      positionals.push(...argv.slice(i + 1));
      break;
    }
    let name: string;
    let inline: string | undefined;
    if (arg.startsWith('--')) {
      const eq = arg.indexOf('=');
      name = eq < 0 ? arg.slice(2) : arg.slice(2, eq);
      inline = eq < 0 ? undefined : arg.slice(eq + 1);
    } else if (arg.startsWith('-') && arg.length > 1) {
      const short = Object.entries(options).find(([, spec]) => spec.short === arg.slice(1));
      if (!short) return fail(`unknown option ${arg}`);
      name = short[0];
    } else {
      positionals.push(arg);
      continue;
    }
    // own properties only: `--constructor` is no option
    const spec = Object.hasOwn(options, name) ? options[name] : undefined;
    if (!spec) return fail(`unknown option ${JSON.stringify(`--${name}`).slice(1, -1)}`);
    given.push(name);
    if (spec.type === 'boolean') {
      if (inline !== undefined) return fail(`--${name} takes no value`);
      values[name] = true;
      continue;
    }
    let value = inline;
    if (value === undefined) {
      const next = argv[i + 1];
      if (next === undefined || (next.startsWith('-') && next !== '-'))
        return fail(`--${name} needs a value`);
      value = next;
      i++;
    }
    if (spec.multiple) values[name] = [...((values[name] as string[] | undefined) ?? []), value];
    else if (values[name] !== undefined) return fail(`--${name} is given twice`);
    else values[name] = value;
  }

  const [first, second] = positionals;
  if (first === undefined) return { command: undefined, operands: [], values };
  const command = findCommand(commands, positionals);
  if (!command) {
    const members = commands
      .filter((c) => groupOf(c.name) === first)
      .map((c) => c.name.slice(first.length + 1));
    if (members.length === 0) return fail(`unknown command ${JSON.stringify(first)}`);
    if (second === undefined) {
      if (values.help) return { command: undefined, operands: [], values, group: first };
      return fail(`${first} needs a subcommand: ${list(members, 'or')}`);
    }
    return fail(`unknown command "${first} ${second}": ${first} has ${list(members, 'and')}`);
  }
  const allowed = new Set([...Object.keys(GENERAL_OPTIONS), ...Object.keys(command.options)]);
  const foreign = given.find((n) => !allowed.has(n));
  if (foreign) {
    throw new UsageError(
      `--${foreign} is not an option of ${command.name} (see ${helpOf(command.name)})`,
      command.name,
    );
  }
  return { command, operands: positionals.slice(command.name.split(' ').length), values };
}
