// The built `stowage` binary, run as a user runs it (node apps/cli/dist/cli.js in
// an empty working directory): each mistake is one line and a documented exit
// code (the stack only with --debug), --version and each command's own help,
// and no command writes what it must not (a path that is not a registry tree,
// lockfiles in a dry run, the embedded database for a read-only command). Then,
// against PostgreSQL: migrate, import with row counts and a log file, SIGINT in
// the middle of an import, which leaves no half-imported repository.
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createImageStore } from '@stowage/image-store';
import { createPostgresDatabase } from '@stowage/metadata-db';
import {
  createTestDatabase,
  DistributionTreeWriter,
  populateTree,
  postgresPeer,
  pushImage,
  randomImage,
  requirePeers,
  snapshotTree,
  type TestDatabase,
} from '@stowage/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureBinary, stowage } from '../test/binary.js';

const postgres = await postgresPeer();
const version = JSON.parse(await readFile(join(import.meta.dirname, '../package.json'), 'utf8')).version;
const dirs: string[] = [];
afterAll(async () => {
  for (const dir of dirs) await rm(dir, { recursive: true, force: true });
});

beforeAll(ensureBinary, 300_000);

async function scratch(prefix: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), `stowage-cli-${prefix}-`));
  dirs.push(dir);
  return dir;
}

const GIVE_ROOT =
  "give the registry's storage root (storage.filesystem.rootdirectory, the directory holding docker/registry/v2)";
const TOP_USAGE = 'usage: stowage <command> [options]';
const IMPORT_USAGE = 'usage: stowage import [options] <registry-root | store-root>';

describe('stowage, as a user meets it', () => {
  it('answers a usage mistake with one line naming it, then the usage, and exit code 2', async () => {
    const cwd = await scratch('usage');
    const cases: [string[], string, string][] = [
      [['--bogus'], 'unknown option --bogus (see stowage --help)', TOP_USAGE],
      [['--constructor'], 'unknown option --constructor (see stowage --help)', TOP_USAGE],
      [['frobnicate'], 'unknown command "frobnicate" (see stowage --help)', TOP_USAGE],
      [[], 'a command is needed (see stowage --help)', TOP_USAGE],
      [['db'], 'db needs a subcommand: migrate or status (see stowage --help)', TOP_USAGE],
      [['import', '--bogus', 'x'], 'unknown option --bogus (see stowage import --help)', IMPORT_USAGE],
      [['import', '--repository'], '--repository needs a value (see stowage import --help)', IMPORT_USAGE],
      [
        ['import', '--data-dir', '--dry-run', 'x'],
        '--data-dir needs a value (see stowage import --help)',
        IMPORT_USAGE,
      ],
      [
        ['import', '--dry-run=yes', 'x'],
        '--dry-run takes no value (see stowage import --help)',
        IMPORT_USAGE,
      ],
      [['import'], "import needs the registry's storage root (see stowage import --help)", IMPORT_USAGE],
      [
        ['import', 'a', 'b'],
        'import takes one registry root, not 2: "a" "b" (see stowage import --help)',
        IMPORT_USAGE,
      ],
      [
        ['import', '--step-one', '--step-two', 'x'],
        'choose at most one of the three steps (--step-one, --step-two, --step-three) (see stowage import --help)',
        IMPORT_USAGE,
      ],
      [
        ['import', '--pre-import-skip-recent', 'soon', 'x'],
        '--pre-import-skip-recent must be a number of hours, not "soon" (see stowage import --help)',
        IMPORT_USAGE,
      ],
      [
        ['db', 'status', '--dry-run'],
        '--dry-run is not an option of db status (see stowage db status --help)',
        'usage: stowage db status [--database-url <url> | --data-dir <dir>]',
      ],
      [
        ['db', 'migrate', 'extra'],
        'db migrate takes no arguments, not "extra" (see stowage db migrate --help)',
        'usage: stowage db migrate [--database-url <url> | --data-dir <dir>]',
      ],
      [
        ['db', 'status', '--database-url', 'postgres://h/d', '--data-dir', 'd'],
        'give --database-url or --data-dir, not both (see stowage db status --help)',
        'usage: stowage db status [--database-url <url> | --data-dir <dir>]',
      ],
    ];
    for (const [args, line, usage] of cases) {
      const run = await stowage(args, { cwd });
      expect(run.code, args.join(' ')).toBe(2);
      expect(run.lines[0], args.join(' ')).toBe(`stowage: ${line}`);
      expect(run.lines.slice(1, 3), args.join(' ')).toEqual(['', usage]);
      expect(run.err, args.join(' ')).not.toMatch(/\n\s+at /);
      expect(run.out, args.join(' ')).toBe('');
    }
    expect(await readdir(cwd)).toEqual([]);
  }, 60_000);

  it('accepts --tag-concurrency from 1 to 5 only', async () => {
    const cwd = await scratch('concurrency');
    for (const value of ['0', '6', 'abc', '2.5', '', '1e0']) {
      const refused = await stowage(['import', '/nowhere', `--tag-concurrency=${value}`], { cwd });
      expect(refused.code, value).toBe(2);
      expect(refused.lines[0], value).toBe(
        `stowage: --tag-concurrency must be a whole number from 1 to 5, not ${JSON.stringify(value)} (see stowage import --help)`,
      );
    }
    // a valid value gets past the flags, to the registry root
    const accepted = await stowage(['import', '/nowhere', '--tag-concurrency', '5'], { cwd });
    expect(accepted.lines).toEqual([`stowage: /nowhere does not exist: ${GIVE_ROOT}`]);
    expect(accepted.code).toBe(3);
  }, 60_000);

  it('prints its version, its help, and each command its own help with an example', async () => {
    const cwd = await scratch('help');
    const v = await stowage(['--version'], { cwd });
    expect([v.code, v.out, v.err]).toEqual([0, `stowage ${version}\n`, '']);
    expect((await stowage(['-v'], { cwd })).out).toBe(v.out);
    const top = await stowage(['--help'], { cwd });
    expect(top.code).toBe(0);
    expect(top.out).toMatch(
      /^stowage: the command line of the Stowage toolkit\.\n\nusage: stowage <command>/,
    );
    expect(top.out).toMatch(/exit codes:\n {2}0 {4}done\n {2}1 {4}any other failure/);
    expect(top.out).toMatch(/\n {2}4 {4}the database: an invalid URL, unreachable, missing, not migrated/);
    expect((await stowage(['-h'], { cwd })).out).toBe(top.out);
    const texts = new Map<string, string>();
    for (const [args, usage, example] of [
      [
        ['import', '--help'],
        IMPORT_USAGE,
        /\nexamples:\n {2}stowage db migrate .*\n {2}stowage import \/var\/lib/,
      ],
      [
        ['db', 'migrate', '--help'],
        'usage: stowage db migrate [--database-url <url> | --data-dir <dir>]',
        /\nexample:\n {2}stowage db migrate --database-url postgres:/,
      ],
      [
        ['db', 'status', '--help'],
        'usage: stowage db status [--database-url <url> | --data-dir <dir>]',
        /\nexample:\n {2}stowage db status --data-dir/,
      ],
    ] as const) {
      const help = await stowage([...args], { cwd });
      expect(help.code, args.join(' ')).toBe(0);
      expect(help.out.split('\n')[0], args.join(' ')).toBe(usage);
      expect(help.out, args.join(' ')).toMatch(example);
      texts.set(args.join(' '), help.out);
    }
    expect(new Set([top.out, ...texts.values()]).size).toBe(4);
    expect(texts.get('import --help')).toMatch(
      /--tag-concurrency <n> +tag links read at once, 1 to 5 \(default 1/,
    );
    // --help wins over a missing operand
    expect((await stowage(['import', '-h'], { cwd })).out).toBe(texts.get('import --help'));
    const db = await stowage(['db', '--help'], { cwd });
    expect(db.out).toMatch(/stowage db migrate \[options\].*\n {2}stowage db status \[options\]/);
    expect(await readdir(cwd)).toEqual([]);
  }, 60_000);

  it('refuses a path that is not a distribution tree with exit code 3, and writes nothing', async () => {
    const cwd = await scratch('not-a-tree');
    const cases = await scratch('cases');
    const file = join(cases, 'a-file');
    await writeFile(file, 'not a tree');
    const missing = join(cases, 'nonexistent');
    // an OCI image layout (as skopeo's oci: transport writes one)
    const layout = join(cases, 'layout');
    await mkdir(join(layout, 'blobs/sha256'), { recursive: true });
    await writeFile(join(layout, 'oci-layout'), '{"imageLayoutVersion":"1.0.0"}');
    await writeFile(join(layout, 'index.json'), '{"schemaVersion":2,"manifests":[]}');
    const bare = join(cases, 'bare');
    await mkdir(join(bare, 'docker/registry/v2'), { recursive: true });
    const before = await snapshotTree(cases);
    const expected: [string, string][] = [
      [file, `${file} is a file, not a directory: ${GIVE_ROOT}`],
      [missing, `${missing} does not exist: ${GIVE_ROOT}`],
      [
        layout,
        `${layout} is an OCI image layout, not a registry's storage tree (copy its images into a registry first, with skopeo copy): ${GIVE_ROOT}`,
      ],
      [
        cases,
        `${cases} holds no docker/registry/v2 directory, so it is not a registry's storage tree: ${GIVE_ROOT}`,
      ],
      [
        bare,
        `${bare}/docker/registry/v2 holds neither repositories/ nor blobs/, so it is not a registry's storage tree: ${GIVE_ROOT}`,
      ],
    ];
    for (const [path, line] of expected) {
      for (const extra of [[], ['--dry-run'], ['--step-three']]) {
        const run = await stowage(['import', path, ...extra], { cwd });
        expect(run.lines, `${path} ${extra}`).toEqual([`stowage: ${line}`]);
        expect(run.code, `${path} ${extra}`).toBe(3);
      }
    }
    // no lockfiles, no log file, no embedded database, no /nonexistent/docker/registry/lockfiles
    expect(await snapshotTree(cases)).toEqual(before);
    expect(await readdir(cwd)).toEqual([]);
  }, 60_000);

  it('creates no embedded database for a read-only command or a dry run', async () => {
    const cwd = await scratch('read-only');
    const tree = await scratch('tree');
    await populateTree(new DistributionTreeWriter(tree), { repositories: 2, tagsPerRepository: 1 });
    const treeBefore = await snapshotTree(tree);
    const dir = join(cwd, '.stowage-metadata');
    const none = (d: string) =>
      `stowage: no embedded database in ${d}: create it with stowage db migrate --data-dir ${d}, or give --database-url`;
    for (const args of [
      ['db', 'status'],
      ['import', tree, '--dry-run'],
      ['import', tree],
    ]) {
      const run = await stowage(args, { cwd });
      expect(run.lines, args.join(' ')).toEqual([none(dir)]);
      expect(run.code, args.join(' ')).toBe(4);
    }
    const named = join(cwd, 'named');
    const status = await stowage(['db', 'status', '--data-dir', named], { cwd });
    expect([status.code, status.lines]).toEqual([4, [none(named)]]);
    expect(await readdir(cwd)).toEqual([]);
    expect(await snapshotTree(tree)).toEqual(treeBefore);
    // db migrate is the one that creates it; then status reads it
    const migrated = await stowage(['db', 'migrate', '--data-dir', named], { cwd });
    expect([migrated.code, migrated.out], migrated.err).toEqual([
      0,
      'applied: 0001_initial, 0002_database_mode\n',
    ]);
    const after = await stowage(['db', 'status', '--data-dir', named], { cwd });
    expect([after.code, after.out]).toEqual([
      0,
      '{"applied":["0001_initial","0002_database_mode"],"pending":[]}\n',
    ]);
    // a log file that cannot be written is named, with what to do, before any lockfile is written
    await writeFile(join(cwd, 'a-file'), 'x');
    const log = join(cwd, 'a-file', 'import.log');
    const unwritable = await stowage(['import', tree, '--data-dir', named, '--log-file', log], { cwd });
    expect(unwritable.lines).toEqual([
      `stowage: cannot write the log file ${log} (ENOTDIR: not a directory, mkdir '${join(cwd, 'a-file')}'): give --log-file or --log-directory a writable place, or use --log-to-stdout`,
    ]);
    expect(unwritable.code).toBe(1);
    expect(await snapshotTree(tree)).toEqual(treeBefore);
    // a --data-dir that is a file is no database either
    const onFile = await stowage(['db', 'status', '--data-dir', 'a-file'], { cwd });
    expect(onFile.lines).toEqual([
      `stowage: ${join(cwd, 'a-file')} is a file, not a database directory: give --data-dir the directory of an embedded database, or give --database-url`,
    ]);
    expect(onFile.code).toBe(4);
  }, 90_000);

  it('refuses a database URL that is not one, naming where it came from, before any lookup', async () => {
    const cwd = await scratch('url');
    const invalid = (source: string, why: string) =>
      `stowage: ${source} is not a PostgreSQL URL (${why}): expected postgres://user@host:5432/database`;
    const cases: [string[], Record<string, string>, string][] = [
      [
        ['db', 'status', '--database-url', 'notaurl'],
        {},
        invalid('--database-url', 'it has no postgres:// scheme'),
      ],
      [
        ['db', 'migrate'],
        { STOWAGE_DATABASE_URL: 'notaurl' },
        invalid('STOWAGE_DATABASE_URL', 'it has no postgres:// scheme'),
      ],
      [
        ['db', 'status'],
        { DATABASE_URL: 'http://127.0.0.1/registry' },
        invalid('DATABASE_URL', 'its scheme is http:, not postgres:'),
      ],
      [['db', 'status', '--database-url', 'postgres://'], {}, invalid('--database-url', 'it names no host')],
    ];
    for (const [args, env, line] of cases) {
      const run = await stowage(args, { cwd, env });
      expect(run.lines, args.join(' ')).toEqual([line]);
      expect(run.code, args.join(' ')).toBe(4);
    }
    // a --data-dir given wins over a URL in the environment
    const dir = join(cwd, 'lite');
    const chosen = await stowage(['db', 'status', '--data-dir', dir], {
      cwd,
      env: { STOWAGE_DATABASE_URL: 'notaurl' },
    });
    expect(chosen.lines).toEqual([
      `stowage: no embedded database in ${dir}: create it with stowage db migrate --data-dir ${dir}, or give --database-url`,
    ]);
    expect(await readdir(cwd)).toEqual([]);
  });

  it('an unreachable database is one line and exit code 4; the stack trace only with --debug', async () => {
    const cwd = await scratch('unreachable');
    const url = 'postgres://stowage:s3cret@127.0.0.1:1/registry';
    const line =
      'stowage: cannot reach the database at postgres://stowage:***@127.0.0.1:1/registry (connect ECONNREFUSED 127.0.0.1:1): check --database-url and that PostgreSQL is running';
    const plain = await stowage(['db', 'status', '--database-url', url], { cwd });
    expect(plain.lines).toEqual([line]);
    expect(plain.code).toBe(4);
    const debug = await stowage(['db', 'status', '--database-url', url, '--debug'], { cwd });
    expect(debug.code).toBe(4);
    expect(debug.lines[0]).toBe(line);
    expect(debug.err).toMatch(/\n {4}at .*\n[\s\S]*code: 'UNAVAILABLE'/);
    expect(plain.err + debug.err).not.toContain('s3cret');
  });

  describe('against PostgreSQL', () => {
    if (!requirePeers(postgres)) return;
    let test: TestDatabase;
    let tree: string;
    let cwd: string;
    beforeAll(async () => {
      test = await createTestDatabase();
      tree = await scratch('tree');
      cwd = await scratch('pg');
      await populateTree(new DistributionTreeWriter(tree), { repositories: 60, tagsPerRepository: 40 });
    }, 60_000);
    afterAll(() => test?.drop());

    it('imports an image-store root over its own content store, copying nothing and changing nothing', async () => {
      const root = await scratch('store');
      const store = await createImageStore({ root });
      const images = [randomImage({ layers: 2 }), randomImage({ layers: 1 })];
      await pushImage(store, 'team/app', images[0]!, 'v1');
      await pushImage(store, 'team/app', images[1]!, 'v2');
      await pushImage(store, 'other', images[1]!, 'latest');
      await store.close();
      const fresh = await createTestDatabase();
      try {
        const url = ['--database-url', fresh.url];
        expect((await stowage(['db', 'migrate', ...url], { cwd })).code).toBe(0);
        const refused = await stowage(['import', root, '--dry-run', ...url], { cwd });
        expect([refused.code, refused.lines[0]]).toEqual([
          2,
          `stowage: --dry-run applies to a docker-registry tree; ${root} is an image-store root (see stowage import --help)`,
        ]);
        const before = await snapshotTree(root);
        const done = await stowage(['import', root, '--row-count', ...url], { cwd });
        expect(done.code, done.err).toBe(0);
        const summary = JSON.parse(done.out);
        expect(summary).toMatchObject({
          source: 'image-store',
          repositories: 2,
          tags: 3,
          manifests: 3,
          blobs: 7,
          blobsCopied: 0,
          rows: { repositories: 2, manifests: 3, tags: 3 },
        });
        expect(await snapshotTree(root)).toEqual(before);
        // run again: the same rows
        const again = await stowage(['import', root, '--row-count', ...url], { cwd });
        expect(JSON.parse(again.out).rows).toEqual(summary.rows);
      } finally {
        await fresh.drop();
      }
    });

    it('reads the status of a database never migrated without creating a table', async () => {
      const fresh = await createTestDatabase();
      try {
        const status = await stowage(['db', 'status', '--database-url', fresh.url], { cwd });
        expect([status.code, status.out], status.err).toEqual([
          0,
          '{"applied":[],"pending":["0001_initial","0002_database_mode"]}\n',
        ]);
        // an import on it is refused before any write: no lockfile, no log file
        const before = await snapshotTree(tree);
        const cwdBefore = await readdir(cwd);
        const refused = await stowage(['import', tree, '--database-url', fresh.url], { cwd });
        expect(refused.lines).toEqual([
          'stowage: pending migrations: 0001_initial, 0002_database_mode (run: stowage db migrate)',
        ]);
        expect(refused.code).toBe(4);
        expect(await snapshotTree(tree)).toEqual(before);
        expect(await readdir(cwd)).toEqual(cwdBefore);
        const db = createPostgresDatabase({ connectionString: fresh.url });
        try {
          const tables = await db.query("SELECT tablename FROM pg_tables WHERE schemaname = 'public'");
          expect(tables.rows).toEqual([]);
        } finally {
          await db.close();
        }
      } finally {
        await fresh.drop();
      }
    });

    it('migrates, imports with row counts and a log file, and an interrupted import resumes', async () => {
      const url = ['--database-url', test.url];
      const migrated = await stowage(['db', 'migrate', ...url], { cwd });
      expect(migrated.code, migrated.err).toBe(0);
      expect(migrated.out).toMatch(/applied: 0001_initial/);
      expect((await stowage(['db', 'migrate', ...url], { cwd })).out).toMatch(/current/);

      // SIGINT once a few repositories are in
      const logs = await scratch('logs');
      const interrupted = await stowage(
        ['import', tree, ...url, '--tag-concurrency', '2', '--log-directory', logs],
        {
          cwd,
          onStderr: (err, child) => {
            if (/import: [3-9]\d* repositories|import: \d{2,} repositories/.test(err) && !child.killed)
              child.kill('SIGINT');
          },
        },
      );
      expect(interrupted.code, interrupted.err).toBe(130);
      expect(interrupted.lines.at(-1)).toBe('stowage: stopped; run the same command again to continue');
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

      const log = join(logs, 'import.log');
      const done = await stowage(['import', tree, ...url, '--row-count', '--log-file', log], { cwd });
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
      const again = await stowage(['import', tree, ...url, '--log-directory', logs], { cwd });
      expect(again.code, again.err).toBe(0);
      const files = (await readdir(logs)).filter((f) =>
        /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ-registry-import\.log$/.test(f),
      );
      expect(files.length).toBeGreaterThanOrEqual(1);
      const newest = files.sort().at(-1) as string;
      expect(await readFile(join(logs, newest), 'utf8')).toMatch(/"msg":"import finished"/);
      expect(again.err).toContain(`stowage: detailed log in ${join(logs, newest)}`);

      // --log-to-stdout: the log lines on stdout, then the summary; no progress and no file
      const before = (await readdir(logs)).length;
      const plain = await stowage(['import', tree, ...url, '--log-to-stdout'], { cwd });
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

    it('a dry run touches no lockfile: after a completed import, and on a tree without them', async () => {
      const own = await createTestDatabase();
      try {
        const url = ['--database-url', own.url, '--log-to-stdout'];
        expect((await stowage(['db', 'migrate', '--database-url', own.url], { cwd })).code).toBe(0);
        const small = await scratch('small-tree');
        await populateTree(new DistributionTreeWriter(small), { repositories: 3, tagsPerRepository: 2 });
        // a tree never imported keeps having no lockfiles
        const before = await snapshotTree(small);
        for (const step of [[], ['--step-two']]) {
          const run = await stowage(['import', small, ...url, '--dry-run', ...step], { cwd });
          expect(run.code, run.err).toBe(0);
        }
        expect(await snapshotTree(small)).toEqual(before);
        // a completed import hands the registry to the database; a dry run after it runs and changes nothing
        const full = await stowage(['import', small, ...url], { cwd });
        expect(full.code, full.err).toBe(0);
        const lockfiles = join(small, 'docker/registry/lockfiles');
        expect(await readFile(join(lockfiles, 'database-in-use'), 'utf8')).toBe('{"version":1}');
        const imported = await snapshotTree(small);
        const dry = await stowage(['import', small, ...url, '--dry-run'], { cwd });
        expect(dry.code, dry.err).toBe(0);
        expect(JSON.parse(dry.out.trim().split('\n').at(-1) as string)).toMatchObject({
          dryRun: true,
          repositories: 3,
        });
        expect(await snapshotTree(small)).toEqual(imported);
      } finally {
        await own.drop();
      }
    }, 60_000);

    it('fails naming a --repository the tree does not hold, with exit code 3', async () => {
      const result = await stowage(
        [
          'import',
          tree,
          '--database-url',
          test.url,
          '--repository',
          'team0/app0',
          '--repository',
          'team0/no-such-app',
          '--log-to-stdout',
        ],
        { cwd },
      );
      expect(result.lines).toEqual([
        `stowage: repository not in the tree at ${tree}/docker/registry/v2: "team0/no-such-app": check the --repository names`,
      ]);
      expect(result.code).toBe(3);
    });
  });
});
