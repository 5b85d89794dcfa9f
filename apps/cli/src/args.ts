// The command line, read by a strict parser of our own: it knows which
// option takes a value, so it can name the option that lacks one, and it
// knows which command each option belongs to.
import { StowageError } from '@stowage/oci';

export type CommandName = 'import' | 'db migrate' | 'db status' | 'sync';

/** A mistake in the command line: exit code 2, one line naming it, then the usage. */
export class UsageError extends StowageError<'USAGE'> {
  /** Whose usage to show: a command's, or the top one's. */
  readonly command: CommandName | undefined;
  constructor(message: string, command: CommandName | undefined) {
    super('USAGE', message, { details: command ? { command } : {} });
    this.command = command;
  }
}

interface OptionSpec {
  readonly type: 'string' | 'boolean';
  readonly multiple?: boolean;
  readonly short?: string;
}

const GENERAL = {
  help: { type: 'boolean', short: 'h' },
  version: { type: 'boolean', short: 'v' },
  debug: { type: 'boolean' },
} as const satisfies Record<string, OptionSpec>;

const DATABASE = {
  'database-url': { type: 'string' },
  'data-dir': { type: 'string' },
} as const satisfies Record<string, OptionSpec>;

const IMPORT = {
  'step-one': { type: 'boolean' },
  'pre-import': { type: 'boolean' },
  'step-two': { type: 'boolean' },
  'all-repositories': { type: 'boolean' },
  'step-three': { type: 'boolean' },
  'common-blobs': { type: 'boolean' },
  repository: { type: 'string', multiple: true },
  'dry-run': { type: 'boolean' },
  'tag-concurrency': { type: 'string' },
  'pre-import-skip-recent': { type: 'string' },
  'row-count': { type: 'boolean' },
  'log-file': { type: 'string' },
  'log-directory': { type: 'string' },
  'log-to-stdout': { type: 'boolean' },
  'no-lockfiles': { type: 'boolean' },
} as const satisfies Record<string, OptionSpec>;

const SYNC = {
  config: { type: 'string' },
  root: { type: 'string' },
  json: { type: 'boolean' },
  upstream: { type: 'string', multiple: true },
} as const satisfies Record<string, OptionSpec>;

const OPTIONS: Readonly<Record<string, OptionSpec>> = { ...GENERAL, ...DATABASE, ...IMPORT, ...SYNC };

/** The options each command takes (the general ones everywhere). */
const ALLOWED: Readonly<Record<CommandName, ReadonlySet<string>>> = {
  import: new Set([...Object.keys(GENERAL), ...Object.keys(DATABASE), ...Object.keys(IMPORT)]),
  'db migrate': new Set([...Object.keys(GENERAL), ...Object.keys(DATABASE)]),
  'db status': new Set([...Object.keys(GENERAL), ...Object.keys(DATABASE)]),
  sync: new Set([...Object.keys(GENERAL), ...Object.keys(SYNC)]),
};

export interface Values {
  readonly help?: boolean;
  readonly version?: boolean;
  readonly debug?: boolean;
  readonly 'database-url'?: string;
  readonly 'data-dir'?: string;
  readonly 'step-one'?: boolean;
  readonly 'pre-import'?: boolean;
  readonly 'step-two'?: boolean;
  readonly 'all-repositories'?: boolean;
  readonly 'step-three'?: boolean;
  readonly 'common-blobs'?: boolean;
  readonly repository?: readonly string[];
  readonly 'dry-run'?: boolean;
  readonly 'tag-concurrency'?: string;
  readonly 'pre-import-skip-recent'?: string;
  readonly 'row-count'?: boolean;
  readonly 'log-file'?: string;
  readonly 'log-directory'?: string;
  readonly 'log-to-stdout'?: boolean;
  readonly 'no-lockfiles'?: boolean;
  readonly config?: string;
  readonly root?: string;
  readonly json?: boolean;
  readonly upstream?: readonly string[];
}

export interface CommandLine {
  /** `undefined` when none was given (`stowage --help`, `stowage --version`, or nothing). */
  readonly command: CommandName | undefined;
  /** The positionals after the command's own words. */
  readonly operands: readonly string[];
  /** `stowage db --help`: the help of the db commands. */
  readonly db?: true;
  readonly values: Values;
}

/** `--help` after this, for the hint at the end of a usage error's line. */
export function helpOf(command: CommandName | undefined): string {
  return command ? `stowage ${command} --help` : 'stowage --help';
}

/** The command the words seem to name, for hints when the line does not parse. */
function guessCommand(argv: readonly string[]): CommandName | undefined {
  if (argv.includes('import')) return 'import';
  if (argv.includes('sync')) return 'sync';
  const db = argv.indexOf('db');
  const sub = db >= 0 ? argv[db + 1] : undefined;
  return sub === 'migrate' || sub === 'status' ? `db ${sub}` : undefined;
}

/** Whether `argv` asks for stack traces, readable before (and whatever) the rest parses. */
export function wantsDebug(argv: readonly string[]): boolean {
  const end = argv.indexOf('--');
  return (end < 0 ? argv : argv.slice(0, end)).includes('--debug');
}

/** Parses `argv` (without node and the script); throws `UsageError` naming the first mistake. */
export function parseCommandLine(argv: readonly string[]): CommandLine {
  const values: Record<string, string | boolean | string[]> = {};
  const given: string[] = [];
  const positionals: string[] = [];
  const fail = (message: string): never => {
    const command = guessCommand(argv);
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
      const short = Object.entries(OPTIONS).find(([, spec]) => spec.short === arg.slice(1));
      if (!short) return fail(`unknown option ${arg}`);
      name = short[0];
    } else {
      positionals.push(arg);
      continue;
    }
    // own properties only: `--constructor` is no option
    const spec = Object.hasOwn(OPTIONS, name) ? OPTIONS[name] : undefined;
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
  let command: CommandName | undefined;
  let operands: string[];
  if (first === undefined) {
    command = undefined;
    operands = [];
  } else if (first === 'import') {
    command = 'import';
    operands = positionals.slice(1);
  } else if (first === 'sync') {
    command = 'sync';
    operands = positionals.slice(1);
  } else if (first === 'db' && (second === 'migrate' || second === 'status')) {
    command = `db ${second}`;
    operands = positionals.slice(2);
  } else if (first === 'db') {
    if (values.help && second === undefined) return { command: undefined, operands: [], values, db: true };
    return fail(
      second === undefined
        ? 'db needs a subcommand: migrate or status'
        : `unknown command "db ${second}": db has migrate and status`,
    );
  } else {
    return fail(`unknown command ${JSON.stringify(first)}`);
  }
  if (command) {
    const allowed = ALLOWED[command];
    const foreign = given.find((n) => !allowed.has(n));
    if (foreign)
      throw new UsageError(`--${foreign} is not an option of ${command} (see ${helpOf(command)})`, command);
  }
  return { command, operands, values };
}
