// stowage completion: the bash script, sourced in a real bash, completes commands,
// subcommands and a command's own options; the zsh one names every command.
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { COMMANDS } from '../src/commands.js';
import { ensureBinary, stowage } from './binary.js';

describe('stowage completion', () => {
  let work: string;
  beforeAll(async () => {
    await ensureBinary();
    work = await mkdtemp(join(tmpdir(), 'stowage-cli-completion-'));
  }, 300_000);
  afterAll(async () => {
    if (work) await rm(work, { recursive: true, force: true });
  });

  it('bash completes commands, subcommands and options', async () => {
    const script = await stowage(['completion', 'bash'], { cwd: work });
    expect(script.code).toBe(0);
    const file = join(work, 'stowage.bash');
    await writeFile(file, script.out);
    const complete = async (...words: string[]) => {
      const line = words.map((w) => JSON.stringify(w)).join(' ');
      const { stdout } = await promisify(execFile)('bash', [
        '-c',
        `source ${JSON.stringify(file)}; COMP_WORDS=(stowage ${line}); COMP_CWORD=${words.length}; _stowage; echo "\${COMPREPLY[*]}"`,
      ]);
      return stdout.trim().split(' ');
    };
    expect(await complete('ma')).toEqual(['manifest', 'managed-images']);
    expect(await complete('store', '')).toEqual(['images', 'inspect', 'rm', 'gc', 'fsck']);
    expect(await complete('store', 'gc', '--d')).toEqual(['--dry-run', '--delete-untagged', '--debug']);
    expect(await complete('copy', '--pl')).toEqual(['--platform', '--plain-http']);
    // three-word commands: each level completes its own words, the command its options
    expect(await complete('stages', 'me')).toEqual(['metadata']);
    expect(await complete('stages', 'metadata', '')).toEqual(['ls']);
    expect(await complete('stages', 'import-metadata', '')).toEqual(['ls', 'show']);
    expect(await complete('stages', 'metadata', 'ls', '--re')).toEqual(['--repo']);
    expect(await complete('stages', 'ls', '--js')).toEqual(['--json']);
    expect(await complete('--ver')).toEqual(['--version']);
  }, 60_000);

  it('zsh names every command, and an unknown shell is a usage error', async () => {
    const zsh = await stowage(['completion', 'zsh'], { cwd: work });
    expect(zsh.out.split('\n')[0]).toBe('#compdef stowage');
    for (const word of new Set(COMMANDS.map((c) => c.name.split(' ')[0])))
      expect(zsh.out).toContain(`'${word}:`);
    const fish = await stowage(['completion', 'fish'], { cwd: work });
    expect([fish.code, fish.lines[0]]).toEqual([
      2,
      'stowage: completion knows bash and zsh, not "fish" (see stowage completion --help)',
    ]);
  }, 60_000);
});
