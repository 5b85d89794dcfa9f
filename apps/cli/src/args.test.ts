// The parser over a command list of the test's own: what any new command gets for free.
import { describe, expect, it } from 'vitest';
import { optionTable, parseCommandLine } from './args.js';
import { type Command, defineCommand } from './command.js';

const noop = async () => 0;
const command = (name: string, options: Command['options'] = {}): Command =>
  defineCommand({
    name,
    synopsis: name,
    summary: name,
    usage: `usage: stowage ${name}`,
    help: name,
    options,
    run: noop,
  });

const commands = [
  command('ls', { json: { type: 'boolean' }, platform: { type: 'string' } }),
  command('store gc', { 'dry-run': { type: 'boolean' } }),
  command('store rm', { force: { type: 'boolean' } }),
  command('store images', { json: { type: 'boolean' }, filter: { type: 'string', multiple: true } }),
];

function usageLine(argv: string[]): string {
  try {
    parseCommandLine(argv, commands);
  } catch (error) {
    return (error as Error).message;
  }
  throw new Error(`${argv.join(' ')} parsed`);
}

describe('the command line parser', () => {
  it('finds a command by its words and passes the rest on as operands', () => {
    const line = parseCommandLine(
      ['store', 'images', '--json', 'a', '--filter', 'x', '--filter=y', 'b'],
      commands,
    );
    expect(line.command?.name).toBe('store images');
    expect(line.operands).toEqual(['a', 'b']);
    expect(line.values).toEqual({ json: true, filter: ['x', 'y'] });
    expect(parseCommandLine(['ls', 'reg/repo', '--platform', 'linux/arm64'], commands)).toMatchObject({
      operands: ['reg/repo'],
      values: { platform: 'linux/arm64' },
    });
  });

  it('names the group, its members and the foreign option in one line', () => {
    expect(usageLine(['store'])).toBe('store needs a subcommand: gc, rm or images (see stowage --help)');
    expect(usageLine(['store', 'du'])).toBe(
      'unknown command "store du": store has gc, rm and images (see stowage --help)',
    );
    expect(usageLine(['cp'])).toBe('unknown command "cp" (see stowage --help)');
    expect(usageLine(['store', 'gc', '--json'])).toBe(
      '--json is not an option of store gc (see stowage store gc --help)',
    );
    expect(usageLine(['ls', '--platform'])).toBe('--platform needs a value (see stowage ls --help)');
    expect(usageLine(['ls', '--json=1'])).toBe('--json takes no value (see stowage ls --help)');
    expect(usageLine(['ls', '--platform', 'a', '--platform', 'b'])).toBe(
      '--platform is given twice (see stowage ls --help)',
    );
  });

  it('shows a group its own help, and leaves --help to any command', () => {
    expect(parseCommandLine(['store', '--help'], commands)).toMatchObject({
      command: undefined,
      group: 'store',
    });
    expect(parseCommandLine(['store', 'rm', '-h'], commands)).toMatchObject({ values: { help: true } });
  });

  it('refuses two commands that give one option two meanings', () => {
    expect(() =>
      optionTable([command('a', { x: { type: 'string' } }), command('b', { x: { type: 'boolean' } })]),
    ).toThrow('--x of b differs');
  });
});

describe('the command list', () => {
  it('gives every command a help that starts with its usage and shows an example', async () => {
    const { COMMANDS } = await import('./commands.js');
    const names = COMMANDS.map((c) => c.name);
    expect(new Set(names).size).toBe(names.length);
    for (const command of COMMANDS) {
      expect(command.help.split('\n')[0], command.name).toBe(command.usage);
      expect(command.usage, command.name).toMatch(new RegExp(`^usage: stowage ${command.name}( |$)`));
      expect(command.help, command.name).toMatch(/\nexamples?:\n {2}stowage /);
    }
    // the options of all of them fit in one table (a value-taking option takes a value everywhere)
    expect(() => optionTable(COMMANDS)).not.toThrow();
  });
});
