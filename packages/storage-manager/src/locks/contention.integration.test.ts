import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createTestDatabase, postgresPeer, requirePeers, type TestDatabase } from '@stowage/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const repoRoot = join(import.meta.dirname, '../../../..');
const peer = await postgresPeer();

/** Runs pg-contender processes to the end; resolves with their exit codes. */
async function contenders(url: string, log: string, runs: readonly { role: string; rounds: number }[]) {
  const children = runs.map(({ role, rounds }) =>
    spawn(
      process.execPath,
      [
        '--conditions=@stowage/source',
        '--import',
        'tsx',
        join(import.meta.dirname, 'fixtures/pg-contender.ts'),
        url,
        'stage.contended',
        log,
        role,
        String(rounds),
      ],
      { cwd: repoRoot, stdio: ['ignore', 'inherit', 'inherit'] },
    ),
  );
  try {
    return await Promise.all(children.map((c) => new Promise((resolve) => c.once('exit', resolve))));
  } finally {
    for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
  }
}

/** The log as `[event, role, round]`, checked for overlapping holders: each enter is followed by its own leave. */
function parseAndCheck(text: string): string[][] {
  const events = text
    .trim()
    .split('\n')
    .map((line) => line.split(' '));
  let holder: string | undefined;
  for (const [event, role] of events) {
    if (event === 'enter') {
      expect(holder, `${role} entered while ${holder} held the lock`).toBeUndefined();
      holder = role;
    } else if (event === 'inside') {
      expect(holder).toBe(role);
    } else if (event === 'leave') {
      expect(holder).toBe(role);
      holder = undefined;
    }
  }
  expect(holder).toBeUndefined();
  return events;
}

describe('two processes contending for one PostgreSQL stage lock', () => {
  if (!requirePeers(peer)) return;
  let db: TestDatabase;
  let dir: string;
  beforeAll(async () => {
    db = await createTestDatabase('stowage_contention');
    dir = await mkdtemp(join(tmpdir(), 'stowage-contention-'));
  });
  afterAll(async () => {
    await db?.drop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('the second is refused while the first holds it, and enters only after the first leaves', async () => {
    const log = join(dir, 'choreographed.log');
    await writeFile(log, '');
    const rounds = 3;
    const codes = await contenders(db.url, log, [
      { role: 'first', rounds },
      { role: 'second', rounds },
    ]);
    expect(codes).toEqual([0, 0]);
    const lines = parseAndCheck(await readFile(log, 'utf8')).map((e) => e.join(' '));
    for (let r = 0; r < rounds; r++) {
      const at = (line: string) => {
        const index = lines.indexOf(line);
        expect(index, line).toBeGreaterThanOrEqual(0);
        return index;
      };
      expect(at(`enter first ${r}`)).toBeLessThan(at(`busy second ${r}`));
      expect(at(`busy second ${r}`)).toBeLessThan(at(`leave first ${r}`));
      expect(at(`leave first ${r}`)).toBeLessThan(at(`enter second ${r}`));
    }
  });

  it('left to race, their critical sections never overlap', async () => {
    const log = join(dir, 'free.log');
    await writeFile(log, '');
    const rounds = 15;
    const codes = await contenders(db.url, log, [
      { role: 'free-a', rounds },
      { role: 'free-b', rounds },
    ]);
    expect(codes).toEqual([0, 0]);
    const events = parseAndCheck(await readFile(log, 'utf8'));
    expect(events.filter(([e]) => e === 'enter')).toHaveLength(2 * rounds);
    expect(events.filter(([e]) => e === 'inside')).toHaveLength(2 * rounds * 3);
  });
});
