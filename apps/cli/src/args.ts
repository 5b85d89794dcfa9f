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

/**
 * Every option any command takes, by name, to find the command's words in a
 * line: two commands may differ on whether an option repeats, never on whether
 * it takes a value, and a one-letter form means one option everywhere.
 */
export function optionTable(commands: readonly Command[]): OptionTable {
  const all: Record<string, OptionSpec> = { ...GENERAL_OPTIONS };
  const owner: Record<string, string> = {};
  const shorts = new Map<string, string>();
  for (const [name, spec] of Object.entries(all)) if (spec.short) shorts.set(spec.short, name);
  for (const command of commands) {
    for (const [name, spec] of Object.entries(command.options)) {
      const known = all[name];
      if (known && known.type !== spec.type) {
        throw new Error(
          `option --${name} of ${command.name} differs from the one of ${owner[name] ?? 'every command'}`,
        );
      }
      if (spec.short && (shorts.get(spec.short) ?? name) !== name) {
        throw new Error(
          `-${spec.short} of ${command.name} is already -${spec.short} of --${shorts.get(spec.short)}`,
        );
      }
      if (spec.short) shorts.set(spec.short, name);
      // for finding the command, every option with a value may repeat
      all[name] = {
        type: spec.type,
        ...(spec.type === 'string' ? { multiple: true } : {}),
        ...(spec.short || known?.short ? { short: spec.short ?? known?.short } : {}),
      };
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

interface Scanned {
  readonly values: Record<string, string | boolean | string[]>;
  /** Options as given, in order. */
  readonly given: readonly string[];
  readonly positionals: readonly string[];
}

/** One pass over `argv` with an option table; `fail` is called with the first mistake. */
function scan(
  argv: readonly string[],
  options: OptionTable,
  fail: (message: string, name?: string) => never,
): Scanned {
  const values: Record<string, string | boolean | string[]> = {};
  const given: string[] = [];
  const positionals: string[] = [];
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
    if (!spec) return fail(`unknown option ${JSON.stringify(`--${name}`).slice(1, -1)}`, name);
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
  return { values, given, positionals };
}

/**
 * Parses `argv` (without node and the script); throws `UsageError` naming the
 * first mistake. A first pass with every command's options finds the command's
 * words; a second reads the line with that command's options alone.
 */
export function parseCommandLine(
  argv: readonly string[],
  commands: readonly Command[] = COMMANDS,
): CommandLine {
  const union = optionTable(commands);
  const guessed = guessCommand(commands, argv)?.name;
  const first = scan(argv, union, (message) => {
    throw new UsageError(`${message} (see ${helpOf(guessed)})`, guessed);
  });
  const positionals = first.positionals;
  const [word, second] = positionals;
  if (word === undefined) return { command: undefined, operands: [], values: first.values };
  const command = findCommand(commands, positionals);
  if (!command) {
    const fail = (message: string): never => {
      throw new UsageError(`${message} (see ${helpOf(guessed)})`, guessed);
    };
    const members = commands
      .filter((c) => groupOf(c.name) === word)
      .map((c) => c.name.slice(word.length + 1));
    if (members.length === 0) return fail(`unknown command ${JSON.stringify(word)}`);
    if (second === undefined) {
      if (first.values.help) return { command: undefined, operands: [], values: first.values, group: word };
      return fail(`${word} needs a subcommand: ${list(members, 'or')}`);
    }
    return fail(`unknown command "${word} ${second}": ${word} has ${list(members, 'and')}`);
  }
  const name = command.name;
  const own = scan(argv, { ...GENERAL_OPTIONS, ...command.options }, (message, option) => {
    // an option of some other command
    const line =
      option !== undefined && Object.hasOwn(union, option)
        ? `--${option} is not an option of ${name}`
        : message;
    throw new UsageError(`${line} (see ${helpOf(name)})`, name);
  });
  return { command, operands: own.positionals.slice(name.split(' ').length), values: own.values };
}
