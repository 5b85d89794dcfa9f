// stowage-server as a user meets it: the BUILT binary (apps/server/dist/cli.js)
// run with ordinary mistakes, checking the exact line on stderr and the exit
// code of each; --version and each command's --help; a positional config file;
// the environment and unknown configuration keys; gc --dry-run writing nothing;
// and scripts/start.sh, whose PID is the server's.
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createFileBlobStore } from '@stowage/blob-store';
import { createDatabaseRegistry } from '@stowage/database-store';
import { createImageStore } from '@stowage/image-store';
import { createPostgresDatabase, migrate } from '@stowage/metadata-db';
import {
  createTestDatabase,
  postgresPeer,
  pushImage,
  randomBlob,
  randomImage,
  requirePeers,
  selfSignedCertificate,
  snapshotTree,
} from '@stowage/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bin, ensureBinary, type Run, run, serving, stopServers } from '../test/binary.js';

const appDir = join(import.meta.dirname, '..');
const repoRoot = join(appDir, '../..');
const version = (JSON.parse(readFileSync(join(appDir, 'package.json'), 'utf8')) as { version: string })
  .version;

const dirs: string[] = [];
afterAll(async () => {
  await stopServers();
  for (const dir of dirs) await rm(dir, { recursive: true, force: true });
});

beforeAll(ensureBinary, 300_000);

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'stowage-server-cli-'));
  dirs.push(dir);
  return dir;
}

/** Exactly one line on stderr, no stack trace. */
function expectOneLine(result: Run, code: number, line: string): void {
  expect({ code: result.code, stderr: result.stderr }).toEqual({ code, stderr: `stowage-server: ${line}\n` });
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** True when something accepts connections on the port. */
function answers(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = new Socket();
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
    socket.connect(port, '127.0.0.1');
  });
}

describe('stowage-server: the command line', () => {
  it('prints its version and a help text per command, each with an example', () => {
    expect(run(['--version'])).toEqual({ code: 0, stdout: `stowage-server ${version}\n`, stderr: '' });
    expect(run(['-v']).stdout).toBe(`stowage-server ${version}\n`);
    const main = run(['--help']);
    const serve = run(['serve', '--help']);
    const gc = run(['gc', '--help']);
    for (const help of [main, serve, gc])
      expect({ code: help.code, stderr: help.stderr }).toEqual({ code: 0, stderr: '' });
    expect(main.stdout).toMatch(
      /^stowage-server: an OCI registry over a local directory \(or PostgreSQL and a directory\)\n/,
    );
    expect(serve.stdout).toMatch(/^usage: stowage-server serve \[options\] \[config\.yml\]\n/);
    expect(serve.stdout).toMatch(/examples:\n {2}stowage-server serve --root/);
    expect(serve.stdout).not.toMatch(/--dry-run/);
    expect(gc.stdout).toMatch(/^usage: stowage-server gc \[options\] \[config\.yml\]\n/);
    expect(gc.stdout).toMatch(/example:\n {2}stowage-server gc --root \S+ --dry-run/);
    expect(gc.stdout).not.toMatch(/--addr/);
    expect(run(['help', 'gc']).stdout).toBe(gc.stdout);
  });

  const usageErrors: { args: string[]; line: string; usage: string }[] = [
    { args: ['--bogus'], line: 'unknown option --bogus', usage: 'usage: stowage-server serve' },
    { args: ['--root'], line: '--root needs a value: --root <dir>', usage: 'usage: stowage-server serve' },
    {
      args: ['serve', '--root', '--addr', ':5000'],
      line: '--root needs a value: --root <dir>',
      usage: 'usage: stowage-server serve',
    },
    { args: ['gc', '--bogus'], line: 'unknown option --bogus', usage: 'usage: stowage-server gc' },
    { args: ['--read-only=yes'], line: '--read-only takes no value', usage: 'usage: stowage-server serve' },
    {
      args: ['frobnicate'],
      line: 'unknown command "frobnicate"; the commands are serve and gc',
      usage: 'stowage-server: an OCI registry',
    },
    {
      args: ['config.yml'],
      line: 'unknown command "config.yml"; the commands are serve and gc (to serve with this config file: stowage-server serve config.yml)',
      usage: 'stowage-server: an OCI registry',
    },
    {
      args: ['serve', 'a.yml', 'b.yml'],
      line: 'unexpected argument "b.yml"; serve takes at most one config file',
      usage: 'usage: stowage-server serve',
    },
    {
      args: ['serve', 'a.yml', '--config', 'b.yml'],
      line: 'give the config file once: --config b.yml or a.yml, not both',
      usage: 'usage: stowage-server serve',
    },
    {
      args: ['gc', '--addr', ':5000'],
      line: '--addr is an option of stowage-server serve, not of gc',
      usage: 'usage: stowage-server gc',
    },
    {
      args: ['--dry-run'],
      line: '--dry-run is an option of stowage-server gc, not of serve',
      usage: 'usage: stowage-server serve',
    },
  ];

  it.each(usageErrors)(
    'refuses $args with exit code 2: what was wrong, then the usage',
    async ({ args, line, usage }) => {
      const cwd = await tempDir();
      const result = run(args, { cwd });
      expect(result.code).toBe(2);
      const [first, blank, third] = result.stderr.split('\n');
      expect({ first, blank }).toEqual({ first: `stowage-server: ${line}`, blank: '' });
      expect(third?.startsWith(usage)).toBe(true);
      expect(result.stderr).not.toMatch(/^\s+at /m);
      expect(await readdir(cwd)).toEqual([]);
    },
  );

  it('refuses a bad flag value with exit code 2 and one line naming the flag', async () => {
    const cwd = await tempDir();
    expectOneLine(
      run(['--log-level', 'verbose'], { cwd }),
      2,
      '--log-level: "verbose" is not a log level; use one of trace, debug, info, warn, error, fatal, silent',
    );
    expectOneLine(
      run(['--addr', 'nonsense'], { cwd }),
      2,
      '--addr: "nonsense" is not [host]:port (like :5000 or 127.0.0.1:5000)',
    );
    expectOneLine(
      run(['gc', '--grace-period', 'a while'], { cwd }),
      2,
      '--grace-period: "a while" is not a duration (like 30s, 1h30m, 500ms)',
    );
    expectOneLine(
      run(['--tls-cert', '/x.pem'], { cwd }),
      2,
      '--tls-cert: give both the certificate and the key (--tls-cert and --tls-key)',
    );
    expect(await readdir(cwd)).toEqual([]);
  });

  it('prints the stack trace only with --debug', async () => {
    const missing = join(await tempDir(), 'missing');
    const plain = run(['--htpasswd', missing, '--root', await tempDir()]);
    const debug = run(['--debug', '--htpasswd', missing, '--root', await tempDir()]);
    expect(plain.stderr.split('\n')).toHaveLength(2);
    expect(debug.stderr.split('\n')[0]).toBe(plain.stderr.split('\n')[0]);
    expect(debug.stderr).toMatch(/\n {4}at /);
    expect(debug.code).toBe(plain.code);
  });
});

describe('stowage-server: runtime mistakes are one line and an exit code', () => {
  it('a storage root that is a file, or under one (exit 4)', async () => {
    const dir = await tempDir();
    const file = join(dir, 'file');
    await writeFile(file, 'x');
    expectOneLine(
      run(['--root', file]),
      4,
      `the storage root ${file} is not a directory; choose a directory with --root (storage.filesystem.rootdirectory)`,
    );
    expectOneLine(
      run(['--root', join(file, 'store')]),
      4,
      `the storage root ${file}/store is not a directory (or a part of its path is a file); choose a directory with --root (storage.filesystem.rootdirectory)`,
    );
    expectOneLine(
      run(['--read-only', '--root', join(dir, 'nope')]),
      4,
      `the storage root ${dir}/nope does not exist; a read-only server creates nothing: check --root (storage.filesystem.rootdirectory)`,
    );
  });

  it('a port in use, naming the address and suggesting --addr (exit 4)', async () => {
    const taken: Server = createServer();
    await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
    const { port } = taken.address() as { port: number };
    try {
      expectOneLine(
        run(['--root', await tempDir(), '--addr', `127.0.0.1:${port}`]),
        4,
        `cannot listen on 127.0.0.1:${port}: the address is already in use; stop what listens there, or choose another address with --addr (http.addr)`,
      );
    } finally {
      await new Promise((resolve) => taken.close(resolve));
    }
  });

  it('an htpasswd file that is missing, a directory or not bcrypt (exit 3)', async () => {
    const dir = await tempDir();
    const root = join(dir, 'root');
    const missing = join(dir, 'missing');
    expectOneLine(
      run(['--root', root, '--htpasswd', missing]),
      3,
      `the htpasswd file ${missing} does not exist; create it with htpasswd -B -c ${missing} <user>, or fix auth.htpasswd.path (--htpasswd)`,
    );
    expectOneLine(
      run(['--root', root, '--htpasswd', dir]),
      3,
      `the htpasswd file ${dir} is a directory, not a file; point auth.htpasswd.path (--htpasswd) at a file made with htpasswd -B -c <file> <user>`,
    );
    const md5 = join(dir, 'md5');
    await writeFile(md5, 'alice:$apr1$abcdefgh$0123456789abcdefghijkl\n');
    const refused = run(['--root', root, '--htpasswd', md5]);
    expect(refused.code).toBe(3);
    expect(refused.stderr).toMatch(
      new RegExp(`^stowage-server: ${md5}: htpasswd line 1 .*; make its lines with htpasswd -B\\n$`),
    );
    expect(existsSync(root)).toBe(false);
  });

  it('a TLS certificate or key that cannot be used (exit 3)', async () => {
    if (!requirePeers('openssl')) return;
    const dir = await tempDir();
    const [cert, key, otherKey, garbage] = ['cert.pem', 'key.pem', 'other.pem', 'garbage.pem'].map((name) =>
      join(dir, name),
    );
    await selfSignedCertificate({ dir, commonName: 'localhost' });
    execFileSync(
      'openssl',
      ['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', otherKey as string],
      { stdio: 'ignore' },
    );
    await writeFile(garbage as string, 'not a certificate\n');
    const root = join(dir, 'root');
    const serve = (c: string, k: string) => run(['--root', root, '--tls-cert', c, '--tls-key', k]);
    expectOneLine(
      serve(garbage as string, key as string),
      3,
      `the TLS certificate ${garbage} cannot be used by OpenSSL (no start line); give a PEM certificate with --tls-cert (http.tls.certificate)`,
    );
    expectOneLine(
      serve(cert as string, otherKey as string),
      3,
      `the TLS key ${otherKey} does not belong to the certificate; give the certificate's own key with --tls-key (http.tls.key)`,
    );
    expectOneLine(
      serve(join(dir, 'nope.pem'), key as string),
      3,
      `the TLS certificate ${dir}/nope.pem does not exist; check --tls-cert (http.tls.certificate)`,
    );
    const https = await serving(process.execPath, [
      bin,
      '--root',
      root,
      '--addr',
      '127.0.0.1:0',
      '--tls-cert',
      cert as string,
      '--tls-key',
      key as string,
    ]);
    expect(https.url).toMatch(/^https:/);
    expect(await https.stop()).toBe(0);
  });

  it('a config file that does not exist (exit 3)', async () => {
    const dir = await tempDir();
    expectOneLine(
      run(['serve', join(dir, 'nope.yml')]),
      3,
      `the config file ${dir}/nope.yml does not exist; check the path given to --config (or after serve)`,
    );
  });

  it("Debian's stock /etc/docker/registry/config.yml: its htpasswd path is a directory, said so; fixed, it starts with one warning per ignored key", async () => {
    if (!requirePeers('docker-registry')) return;
    const stock = '/etc/docker/registry/config.yml';
    const text = readFileSync(stock, 'utf8');
    const dir = await tempDir();
    const root = join(dir, 'root');
    const htpasswdPath = /path:\s*(\S+)/.exec(text.slice(text.indexOf('htpasswd:')))?.[1] as string;
    if (statSync(htpasswdPath, { throwIfNoEntry: false })?.isDirectory()) {
      const refused = run(['serve', stock, '--root', root, '--addr', '127.0.0.1:0']);
      expect(refused.code).toBe(3);
      expect(refused.stderr).toBe(
        `stowage-server: the htpasswd file ${htpasswdPath} is a directory, not a file; point auth.htpasswd.path (--htpasswd) at a file made with htpasswd -B -c <file> <user>\n`,
      );
    }
    const fixed = join(dir, 'config.yml');
    await writeFile(join(dir, 'htpasswd'), '');
    await writeFile(fixed, text.replace(htpasswdPath, join(dir, 'htpasswd')));
    const server = await serving(process.execPath, [
      bin,
      'serve',
      fixed,
      '--root',
      root,
      '--addr',
      '127.0.0.1:0',
    ]);
    try {
      expect((await fetch(`${server.url}/healthz`)).status).toBe(200);
      expect((await fetch(`${server.url}/v2/`)).status).toBe(401);
      const warnings = server.logs.filter((entry) => entry.level === 40).map((entry) => entry.key);
      expect(warnings).toEqual(['log.fields', 'storage.cache', 'http.headers', 'health']);
      expect(server.logs.find((entry) => entry.key === 'storage.cache')?.msg).toBe(
        `${fixed}: storage.cache is ignored: there is no blob descriptor cache to configure`,
      );
    } finally {
      expect(await server.stop()).toBe(0);
    }
  });
});

describe('stowage-server: configuration sources', () => {
  it('serves with a positional config file, as distribution does (serve config.yml)', async () => {
    const dir = await tempDir();
    const file = join(dir, 'config.yml');
    await writeFile(
      file,
      'http:\n  addr: 127.0.0.1:0\nstorage:\n  filesystem:\n    rootdirectory: ./store\n',
    );
    for (const args of [
      ['serve', file],
      ['--config', file],
      ['garbage-collect', '--dry-run', file],
    ]) {
      if (args[0] === 'garbage-collect') {
        const gc = run(args);
        expect({ code: gc.code, stderr: gc.stderr }).toEqual({ code: 0, stderr: '' });
        continue;
      }
      const server = await serving(process.execPath, [bin, ...args]);
      expect(server.logs.find((entry) => entry.msg === 'listening')?.root).toBe(join(dir, 'store'));
      expect(await server.stop()).toBe(0);
    }
  });

  it('reads only the variables that name a configuration key, and names the variable whose value is wrong', async () => {
    const root = await tempDir();
    // not configuration keys: left alone, whatever they hold
    const server = await serving(process.execPath, [bin, '--root', root], {
      env: {
        REGISTRY_PASSWORD: '@abc123',
        STOWAGE_HOME: '{ not: yaml',
        STOWAGE_CACHE_DIR: 'postgres://x',
        REGISTRY_HTTP_ADDR: '127.0.0.1:0',
        REGISTRY_HTTP_SECRET: 'secret',
      },
    });
    expect(new URL(server.url).hostname).toBe('127.0.0.1');
    expect(server.logs.filter((entry) => entry.level === 40).map((entry) => entry.msg)).toEqual([
      'REGISTRY_HTTP_SECRET (http.secret) is ignored: upload state is kept on disk, not signed into URLs',
    ]);
    expect(await server.stop()).toBe(0);
    expectOneLine(
      run(['--root', root], { env: { STOWAGE_LIMITS_MAXBLOBSIZE: '@abc' } }),
      3,
      'STOWAGE_LIMITS_MAXBLOBSIZE (limits.maxblobsize): "@abc" is not a YAML value (Plain value cannot start with reserved character @ at line 1, column 1)',
    );
    expectOneLine(
      run(['--root', root], { env: { STOWAGE_STORAGE_DELETE_ENABLED: 'yes' } }),
      3,
      'STOWAGE_STORAGE_DELETE_ENABLED (storage.delete.enabled): expected true or false',
    );
    expectOneLine(
      run(['--root', root], { env: { REGISTRY_STORAGE_S3_BUCKET: 'images' } }),
      3,
      'REGISTRY_STORAGE_S3_BUCKET (storage.s3): the s3 storage driver is not supported yet (stowage-server stores in storage.filesystem only); unset it',
    );
  });

  it('refuses unknown and unsupported keys in a config file, never serving on defaults', async () => {
    const cwd = await tempDir();
    const cases: [string, string][] = [
      ['http:\n  adr: 127.0.0.1:5001\n', 'http.adr: unknown configuration key; did you mean http.addr?'],
      [
        'storage:\n  s3:\n    bucket: images\n',
        'storage.s3: the s3 storage driver is not supported yet (stowage-server stores in storage.filesystem only); remove it',
      ],
      [
        'notifications:\n  endpoints: []\n',
        'notifications: notifications (webhooks on pushes and pulls) are not supported yet; remove it',
      ],
      [
        'http:\n  debug:\n    addr: :5001\n',
        'http.debug: the debug server is not supported yet (metrics are at /metrics on http.addr); remove it',
      ],
      [
        'log:\n  level: verbose\n',
        'log.level: "verbose" is not a log level; use one of trace, debug, info, warn, error, fatal, silent',
      ],
    ];
    for (const [i, [text, line]] of cases.entries()) {
      const file = join(cwd, `config-${i}.yml`);
      await writeFile(file, text);
      expectOneLine(run(['serve', file], { cwd }), 3, `${file}: ${line}`);
    }
    expect((await readdir(cwd)).sort()).toEqual(cases.map((_, i) => `config-${i}.yml`).sort());
  });
});

describe('stowage-server gc', () => {
  it('a dry run (or a run) on a missing root says so and creates nothing', async () => {
    const cwd = await tempDir();
    for (const args of [
      ['gc', '--dry-run', '--root', 'nope'],
      ['gc', '--root', 'nope'],
    ]) {
      expectOneLine(
        run(args, { cwd }),
        4,
        `the storage root ${cwd}/nope does not exist; nothing to collect: check --root (storage.filesystem.rootdirectory)`,
      );
      expect(await readdir(cwd)).toEqual([]);
    }
  });

  it('a dry run on an existing store writes nothing, and reports what a run removes', async () => {
    const root = await tempDir();
    const store = await createImageStore({ root });
    await pushImage(store, 'app', randomImage({ seed: 11 }), 'v1');
    const orphan = randomBlob(512, { seed: 12 });
    await pushImage(store, 'app', randomImage({ seed: 13 }), 'v2');
    await store.putBlob('app', orphan.bytes, {
      digest: orphan.descriptor.digest,
      size: orphan.descriptor.size,
    });
    await store.deleteTag('app', 'v2');
    await store.close();
    // a store copied without its empty working directories: opening it for writing would make them
    for (const name of ['tmp', 'uploads'])
      await rm(join(root, '.stowage', name), { recursive: true, force: true });
    const before = await snapshotTree(root, { directoryTimes: false });
    const dry = run(['gc', '--dry-run', '--delete-untagged', '--grace-period', '0s', '--root', root]);
    expect({ code: dry.code, stderr: dry.stderr }).toEqual({ code: 0, stderr: '' });
    const report = JSON.parse(dry.stdout) as { dryRun: boolean; blobs: string[]; manifestsRemoved: number };
    expect(report.dryRun).toBe(true);
    expect(report.blobs).toContain(orphan.descriptor.digest);
    expect(report.manifestsRemoved).toBe(1);
    expect(await snapshotTree(root, { directoryTimes: false })).toEqual(before);
    const real = run(['gc', '--delete-untagged', '--grace-period', '0s', '--root', root]);
    expect(real.code).toBe(0);
    const removed = JSON.parse(real.stdout) as { dryRun: boolean; blobs: string[] };
    expect(removed.dryRun).toBe(false);
    expect(removed.blobs.sort()).toEqual(report.blobs.sort());
  });
});

const postgres = await postgresPeer();

describe('stowage-server in database mode', () => {
  it('refuses a database URL that is not one, or a database it cannot reach, in one line', async () => {
    const root = await tempDir();
    const bad = run(['--root', root, '--database-url', 'mysql://db/registry']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(
      /^stowage-server: --database-url: .*not a PostgreSQL URL \(its scheme is mysql:, not postgres:\).*\n$/,
    );
    expect(bad.stderr.trim().split('\n')).toHaveLength(1);
    const unreachable = run([
      '--root',
      root,
      '--addr',
      '127.0.0.1:0',
      '--database-url',
      'postgres://stowage:secret@127.0.0.1:1/registry',
    ]);
    expect(unreachable.code).toBe(4);
    expect(unreachable.stderr).toMatch(
      /^stowage-server: cannot use the database postgres:\/\/stowage:\*+@127\.0\.0\.1:1\/registry: .*ECONNREFUSED.*; check --database-url \(database\.url\)\n$/,
    );
    expect(unreachable.stderr).not.toContain('secret');
  });

  describe('on the PostgreSQL server', () => {
    if (!requirePeers(postgres)) return;

    it('refuses a database that is not migrated, naming the command to run', async () => {
      const root = await tempDir();
      const fresh = await createTestDatabase('stowage_server_cli');
      try {
        expectOneLine(
          run(['--root', root, '--addr', '127.0.0.1:0', '--database-url', fresh.url]),
          4,
          `the database ${fresh.url} is not migrated: pending 0001_initial, 0002_database_mode (run: stowage db migrate)`,
        );
      } finally {
        await fresh.drop();
      }
    });

    it('gc --database-url collects unreferenced blobs now: a dry run reports them, a run removes them', async () => {
      const root = await tempDir();
      const fresh = await createTestDatabase('stowage_server_gc');
      try {
        const db = createPostgresDatabase({ connectionString: fresh.url });
        await migrate(db);
        // what a database-mode server over a new root stores: distribution's layout under the root
        const registry = await createDatabaseRegistry({
          database: db,
          blobs: createFileBlobStore({ root, layout: 'distribution' }),
          closeDatabase: true,
        });
        const image = randomImage({ seed: 21 });
        const orphan = randomBlob(700, { seed: 22 });
        await pushImage(registry, 'app', image, 'v1');
        await registry.putBlob('app', orphan.bytes, { digest: orphan.descriptor.digest });
        await registry.close();
        const args = ['gc', '--root', root, '--database-url', fresh.url, '--grace-period', '0s'];
        expect(run([...args, '--delete-untagged']).code).toBe(2);
        const dry = run([...args, '--dry-run']);
        expect({ code: dry.code, stderr: dry.stderr }).toEqual({ code: 0, stderr: '' });
        expect(JSON.parse(dry.stdout)).toMatchObject({
          dryRun: true,
          blobsRemoved: 1,
          blobs: [orphan.descriptor.digest],
        });
        const real = run(args);
        expect({ code: real.code, stderr: real.stderr }).toEqual({ code: 0, stderr: '' });
        expect(JSON.parse(real.stdout)).toMatchObject({
          dryRun: false,
          blobs: [orphan.descriptor.digest],
          bytesFreed: 700,
        });
        expect(JSON.parse(run([...args, '--dry-run']).stdout)).toMatchObject({ blobsRemoved: 0 });
      } finally {
        await fresh.drop();
      }
    });
  });
});

describe('stowage-server gc on a read-only mount', () => {
  if (
    !requirePeers({
      name: 'root (for a read-only bind mount)',
      available: process.getuid?.() === 0,
      reason: 'mounting needs root',
    })
  )
    return;

  it('a dry run works on a store mounted read-only (it needs no write at all)', async () => {
    const work = await tempDir();
    const source = join(work, 'source');
    const mounted = join(work, 'mounted');
    const store = await createImageStore({ root: source });
    await pushImage(store, 'app', randomImage({ seed: 21 }), 'v1');
    await store.close();
    await rm(join(source, '.stowage', 'tmp'), { recursive: true, force: true });
    await mkdir(mounted);
    execFileSync('mount', ['--bind', source, mounted]);
    try {
      execFileSync('mount', ['-o', 'remount,bind,ro', mounted]);
      const dry = run(['gc', '--dry-run', '--root', mounted]);
      expect({ code: dry.code, stderr: dry.stderr }).toEqual({ code: 0, stderr: '' });
      expect(JSON.parse(dry.stdout)).toMatchObject({ dryRun: true, blobsRemoved: 0 });
    } finally {
      execFileSync('umount', [mounted]);
    }
  });
});

describe('scripts/start.sh and pnpm start', () => {
  it('bash scripts/start.sh: the PID started is the server, so SIGTERM to it stops the server', async () => {
    const root = join(await tempDir(), 'data');
    const port = await freePort();
    const server = await serving(
      'bash',
      [join(repoRoot, 'scripts/start.sh'), '--root', root, '--addr', `127.0.0.1:${port}`],
      {
        cwd: repoRoot,
      },
    );
    expect((await fetch(`http://127.0.0.1:${port}/healthz`)).status).toBe(200);
    expect(server.logs.find((entry) => entry.msg === 'listening')?.pid).toBe(server.child.pid);
    expect(await server.stop()).toBe(0);
    expect(await answers(port)).toBe(false);
  }, 120_000);

  it('scripts/start.mjs (pnpm start) forwards SIGTERM and exits with the server', async () => {
    const root = join(await tempDir(), 'data');
    const port = await freePort();
    const server = await serving(
      process.execPath,
      [join(repoRoot, 'scripts/start.mjs'), '--root', root, '--addr', `127.0.0.1:${port}`],
      {
        cwd: repoRoot,
      },
    );
    expect((await fetch(`http://127.0.0.1:${port}/healthz`)).status).toBe(200);
    expect(await server.stop()).toBe(0);
    expect(await answers(port)).toBe(false);
  }, 60_000);
});
