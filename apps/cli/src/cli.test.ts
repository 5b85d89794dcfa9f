// The stowage command: db migrate, import with row counts and a log file,
// SIGINT in the middle of an import, which leaves no half-imported repository,
// and flags refused with exit code 2 (or a typed error for an unknown repository).
import { spawn } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createPostgresDatabase } from '@stowage/metadata-db';
import {
  createTestDatabase,
  DistributionTreeWriter,
  populateTree,
  postgresPeer,
  requirePeers,
  type TestDatabase,
} from '@stowage/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const postgres = await postgresPeer();
const repoRoot = join(import.meta.dirname, '../../..');
const cli = join(import.meta.dirname, 'cli.ts');
const dirs: string[] = [];
afterAll(async () => {
  for (const dir of dirs) await rm(dir, { recursive: true, force: true });
});

function stowage(args: string[], onStderr?: (text: string, child: ReturnType<typeof spawn>) => void) {
  const child = spawn(process.execPath, ['--conditions=@stowage/source', '--import', 'tsx', cli, ...args], {
    cwd: repoRoot,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stdout.on('data', (chunk: Buffer) => {
    out += chunk.toString();
  });
  child.stderr.on('data', (chunk: Buffer) => {
    err += chunk.toString();
    onStderr?.(err, child);
  });
  return new Promise<{ code: number | null; out: string; err: string }>((resolve) =>
    child.once('exit', (code) => resolve({ code, out, err })),
  );
}

describe('stowage', () => {
  it('prints its usage and refuses unknown commands', async () => {
    expect((await stowage(['--help'])).code).toBe(0);
    const wrong = await stowage(['frobnicate']);
    expect(wrong.code).toBe(2);
    expect(wrong.out).toMatch(/usage/);
    const steps = await stowage(['import', '--step-one', '--step-two', '/nowhere']);
    expect(steps.code).toBe(2);
  });

  it('accepts --tag-concurrency from 1 to 5 only', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'stowage-cli-data-'));
    dirs.push(dataDir);
    for (const value of ['0', '6', 'abc', '2.5', '', '1e0']) {
      const refused = await stowage([
        'import',
        '/nowhere',
        '--data-dir',
        dataDir,
        `--tag-concurrency=${value}`,
        '--log-to-stdout',
      ]);
      expect(refused.code, value).toBe(2);
      expect(refused.err, value).toMatch(/--tag-concurrency must be a whole number from 1 to 5/);
    }
    // a valid value gets past the flags: the import itself then fails (the database is not migrated)
    const accepted = await stowage([
      'import',
      '/nowhere',
      '--data-dir',
      dataDir,
      '--tag-concurrency',
      '5',
      '--log-to-stdout',
    ]);
    expect(accepted.code).toBe(1);
    expect(accepted.err).toMatch(/MIGRATIONS_PENDING/);
    expect((await stowage(['--help'])).out).toMatch(
      /--tag-concurrency <n> +tag links read at once, 1 to 5 \(default 1/,
    );
  }, 60_000);

  describe('against PostgreSQL', () => {
    if (!requirePeers(postgres)) return;
    let test: TestDatabase;
    let tree: string;
    beforeAll(async () => {
      test = await createTestDatabase();
      tree = await mkdtemp(join(tmpdir(), 'stowage-cli-tree-'));
      dirs.push(tree);
      await populateTree(new DistributionTreeWriter(tree), { repositories: 60, tagsPerRepository: 40 });
    }, 60_000);
    afterAll(() => test?.drop());

    it('migrates, imports with row counts and a log file, and an interrupted import resumes', async () => {
      const url = ['--database-url', test.url];
      const migrated = await stowage(['db', 'migrate', ...url]);
      expect(migrated.code, migrated.err).toBe(0);
      expect(migrated.out).toMatch(/applied: 0001_initial/);
      expect((await stowage(['db', 'migrate', ...url])).out).toMatch(/current/);

      // SIGINT once a few repositories are in
      const logs = await mkdtemp(join(tmpdir(), 'stowage-cli-logs-'));
      dirs.push(logs);
      const interrupted = await stowage(
        ['import', tree, ...url, '--tag-concurrency', '2', '--log-directory', logs],
        (err, child) => {
          if (/import: [3-9]\d* repositories|import: \d{2,} repositories/.test(err) && !child.killed)
            child.kill('SIGINT');
        },
      );
      expect(interrupted.code, interrupted.err).toBe(130);
      // progress says how far along it is
      expect(interrupted.err).toMatch(/\(\d+ of 60\)/);
      const db = createPostgresDatabase({ connectionString: test.url });
      try {
        const per = await db.query<{ path: string; n: unknown }>(
          'SELECT r.path, count(t.id) AS n FROM repositories r LEFT JOIN tags t ON t.repository_id = r.id GROUP BY r.path',
        );
        expect(per.rows.length).toBeGreaterThan(0);
        expect(per.rows.length).toBeLessThan(60);
        // no half-imported repository: each one present has all 40 tags
        for (const row of per.rows) expect(Number(row.n), row.path).toBe(40);
      } finally {
        await db.close();
      }

      const log = join(tree, 'import.log');
      const done = await stowage(['import', tree, ...url, '--row-count', '--log-file', log]);
      expect(done.code, done.err).toBe(0);
      const summary = JSON.parse(done.out);
      expect(summary.rows).toMatchObject({ repositories: 60, tags: 2400, manifests: 240 });
      const lines = (await readFile(log, 'utf8'))
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l));
      expect(lines.at(-1)).toMatchObject({ msg: 'import finished' });
      expect(lines.filter((l) => l.msg === 'repository imported')).toHaveLength(60);

      // without --log-file the log goes to <RFC3339>-registry-import.log in --log-directory
      const again = await stowage(['import', tree, ...url, '--log-directory', logs]);
      expect(again.code, again.err).toBe(0);
      const files = (await readdir(logs)).filter((f) =>
        /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ-registry-import\.log$/.test(f),
      );
      expect(files.length).toBeGreaterThanOrEqual(1);
      const newest = files.sort().at(-1) as string;
      expect(await readFile(join(logs, newest), 'utf8')).toMatch(/"msg":"import finished"/);
      expect(again.err).toContain(`detailed log in ${join(logs, newest)}`);

      // --log-to-stdout: the log lines on stdout, then the summary; no progress and no file
      const before = (await readdir(logs)).length;
      const plain = await stowage(['import', tree, ...url, '--log-to-stdout']);
      expect(plain.code, plain.err).toBe(0);
      const out = plain.out
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l));
      expect(out.filter((l) => l.msg === 'repository imported')).toHaveLength(60);
      expect(out.at(-1)).toMatchObject({ repositories: 60 });
      expect(plain.err).not.toMatch(/repositories, \d+ tags/);
      expect((await readdir(logs)).length).toBe(before);
    }, 180_000);

    it('fails naming a --repository the tree does not hold', async () => {
      const result = await stowage([
        'import',
        tree,
        '--database-url',
        test.url,
        '--repository',
        'team0/app0',
        '--repository',
        'team0/no-such-app',
        '--log-to-stdout',
      ]);
      expect(result.code).toBe(1);
      expect(result.err).toMatch(/REPOSITORY_NOT_FOUND: .*"team0\/no-such-app"/);
    });
  });
});
