// stowage sync, run as the built binary the way a user runs it: its usage and
// config mistakes (one line, exit code 2 or 3, nothing written), then against a
// real docker-registry filled through the registry client: a first pass copies
// what the rules keep, a second skips it all, --json prints the report, an
// image with a corrupt blob fails alone (exit code 5) and --upstream leaves an
// unreachable upstream out.
import { execFile } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { createImageStore } from '@stowage/image-store';
import { type Digest, digestHex } from '@stowage/oci';
import { createRegistryClient } from '@stowage/registry-client';
import type { SyncReport } from '@stowage/sync';
import {
  type DockerRegistry,
  freePort,
  pushImage,
  randomImage,
  requirePeers,
  startDockerRegistry,
} from '@stowage/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bin, ensureBinary, stowage as run } from '../test/binary.js';

const dirs: string[] = [];
afterAll(async () => {
  for (const dir of dirs) await rm(dir, { recursive: true, force: true });
});

beforeAll(ensureBinary, 300_000);

async function scratch(prefix: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), `stowage-cli-sync-${prefix}-`));
  dirs.push(dir);
  return dir;
}

const stowage = (args: string[], cwd: string) => run(args, { cwd });

const SYNC_USAGE = 'usage: stowage sync --config <file> --root <dir> [--json] [--upstream <n>]...';

describe('stowage sync, its mistakes', () => {
  it('answers a usage mistake with one line, the usage and exit code 2, writing nothing', async () => {
    const cwd = await scratch('usage');
    await writeFile(
      join(cwd, 'sync.yml'),
      'registries:\n  - urls: [http://127.0.0.1:1]\n    content: [{prefix: a}]\n',
    );
    const cases: [string[], string][] = [
      [['sync'], 'sync needs --config <file> (a zot or stowage-server config)'],
      [['sync', '--config', 'sync.yml'], 'sync needs --root <dir>, the store to mirror into'],
      [['sync', 'sync.yml'], 'sync takes no arguments, not "sync.yml": give the file with --config'],
      [['sync', '--json=yes', '--config', 'sync.yml', '--root', 'r'], '--json takes no value'],
      [['sync', '--root'], '--root needs a value'],
      [['sync', '--dry-run', '--config', 'sync.yml', '--root', 'r'], '--dry-run is not an option of sync'],
      [
        ['sync', '--config', 'sync.yml', '--root', 'r', '--upstream', 'first'],
        '--upstream takes the position of an upstream in registries (0, 1, ...), not "first"',
      ],
      [
        ['sync', '--config', 'sync.yml', '--root', 'r', '--upstream', '0', '--upstream', '1'],
        '--upstream 1: the config has 1 upstream (registries[0])',
      ],
    ];
    for (const [args, line] of cases) {
      const run = await stowage(args, cwd);
      expect(run.code, args.join(' ')).toBe(2);
      expect(run.lines[0], args.join(' ')).toBe(`stowage: ${line} (see stowage sync --help)`);
      expect(run.lines.slice(1, 3), args.join(' ')).toEqual(['', SYNC_USAGE]);
      expect(run.out, args.join(' ')).toBe('');
    }
    expect(await readdir(cwd)).toEqual(['sync.yml']);
  }, 60_000);

  it('answers a config file it cannot use with one line naming it and exit code 3, writing nothing', async () => {
    const cwd = await scratch('config');
    const file = (name: string) => join(cwd, name);
    await writeFile(file('broken.yml'), 'registries: [\n');
    await writeFile(file('server.yml'), 'http:\n  addr: :5000\n');
    await writeFile(
      file('zot.json'),
      JSON.stringify({ extensions: { sync: { registries: [{ urls: ['ftp://r.example.com'] }] } } }),
    );
    await writeFile(file('off.yml'), 'sync:\n  enable: false\n  registries: []\n');
    const cases: [string, RegExp][] = [
      ['missing.yml', /^stowage: \S+missing\.yml: does not exist; check --config$/],
      ['broken.yml', /^stowage: \S+broken\.yml: not valid YAML or JSON: /],
      [
        'server.yml',
        /^stowage: \S+server\.yml: no sync configuration: expected zot's extensions\.sync, a stowage-server sync: section/,
      ],
      ['zot.json', /^stowage: \S+zot\.json: extensions\.sync\.registries\[0\]\.urls\[0\]: \S/],
      ['off.yml', /^stowage: \S+off\.yml: sync\.enable is false: there is nothing to sync$/],
    ];
    for (const [name, line] of cases) {
      const run = await stowage(['sync', '--config', name, '--root', 'store'], cwd);
      expect(run.code, name).toBe(3);
      expect(run.lines, name).toHaveLength(1);
      expect(run.lines[0], name).toMatch(line);
      expect(run.out, name).toBe('');
    }
    // no store was made for a config that cannot run
    expect((await readdir(cwd)).sort()).toEqual(['broken.yml', 'off.yml', 'server.yml', 'zot.json']);
  }, 60_000);

  it('has its own help, with examples and exit codes', async () => {
    const cwd = await scratch('help');
    const help = await stowage(['sync', '--help'], cwd);
    expect(help.code).toBe(0);
    expect(help.out.split('\n')[0]).toBe(SYNC_USAGE);
    expect(help.out).toMatch(/\nexamples:\n {2}stowage sync --config /);
    expect(help.out).toMatch(/5 some image failed/);
    const top = await stowage(['--help'], cwd);
    expect(top.out).toMatch(/\n {2}stowage sync --config <file> --root <dir> +mirror/);
    expect(top.out).toMatch(/\n {2}5 {4}sync: some image/);
  }, 60_000);
});

describe('stowage sync against docker-registry', () => {
  if (!requirePeers('docker-registry')) return;

  let upstream: DockerRegistry;
  const pushed = new Map<string, Digest>();
  let corrupt: Digest;

  beforeAll(async () => {
    upstream = await startDockerRegistry();
    const client = createRegistryClient({ registry: upstream.host, auth: { useConfigFiles: false } });
    try {
      const shared = randomImage({ layers: 2, layerSize: 64 * 1024 });
      const images: [string, string, ReturnType<typeof randomImage>][] = [
        ['app/one', 'v1', shared],
        ['app/one', 'v2', randomImage({ layers: 1, layerSize: 300 * 1024 })],
        ['app/two', 'latest', randomImage({ format: 'docker' })],
        ['other/three', 'v1', randomImage()],
      ];
      for (const [repository, tag, image] of images) {
        pushed.set(`${repository}:${tag}`, await pushImage(client, repository, image, tag));
      }
      const bad = randomImage({ layers: 1, layerSize: 4096 });
      pushed.set('bad/one:v1', await pushImage(client, 'bad/one', bad, 'v1'));
      corrupt = bad.layers[0]?.descriptor.digest as Digest;
    } finally {
      await client.close?.();
    }
    // same size, other bytes: the registry serves it, and it no longer matches its digest
    const hex = digestHex(corrupt);
    const data = join(upstream.dataDir, 'docker/registry/v2/blobs/sha256', hex.slice(0, 2), hex, 'data');
    const bytes = await readFile(data);
    await writeFile(
      data,
      bytes.map((b) => b ^ 0xff),
    );
  }, 120_000);

  afterAll(async () => {
    await upstream?.stop();
  });

  function zotConfig(registries: unknown[]): string {
    return JSON.stringify({ distSpecVersion: '1.1.0', extensions: { sync: { enable: true, registries } } });
  }

  it('mirrors what the rules keep, skips it the second time, and prints the report as JSON', async () => {
    const cwd = await scratch('mirror');
    await writeFile(
      join(cwd, 'zot.json'),
      zotConfig([{ urls: [upstream.url], tlsVerify: false, content: [{ prefix: 'app/**' }] }]),
    );
    const first = await stowage(['sync', '--config', 'zot.json', '--root', 'mirror'], cwd);
    expect(first.err).toBe('');
    expect(first.code).toBe(0);
    expect(first.out).toMatch(/^synced 3, skipped 0, failed 0 \(0\.[0-9] MiB in [0-9]+\.[0-9] s\)\n$/);
    const store = await createImageStore({ root: join(cwd, 'mirror') });
    try {
      for (const name of ['app/one:v1', 'app/one:v2', 'app/two:latest']) {
        const [repository, tag] = name.split(':') as [string, string];
        expect((await store.getManifest(repository, tag)).digest, name).toBe(pushed.get(name));
      }
      expect((await store.listRepositories()).items).toEqual(['app/one', 'app/two']);
    } finally {
      await store.close();
    }

    const second = await stowage(['sync', '--config', 'zot.json', '--root', 'mirror', '--json'], cwd);
    expect(second.code).toBe(0);
    const report = JSON.parse(second.out) as SyncReport;
    expect([report.synced, report.skipped, report.failed, report.bytesCopied]).toEqual([0, 3, 0, 0]);
    expect(report.images.map((image) => `${image.repository}:${image.reference}`).sort()).toEqual([
      'app/one:v1',
      'app/one:v2',
      'app/two:latest',
    ]);
    expect(report.errors).toEqual([]);
  }, 120_000);

  it('draws its progress line on a terminal (a pty) and never into a pipe', async () => {
    const cwd = await scratch('pty');
    await writeFile(
      join(cwd, 'zot.json'),
      zotConfig([{ urls: [upstream.url], tlsVerify: false, content: [{ prefix: 'app/**' }] }]),
    );
    // util-linux script(1) gives the command a pty for stdin, stdout and stderr
    const command = [process.execPath, bin, 'sync', '--config', 'zot.json', '--root', 'drawn']
      .map((w) => `'${w}'`)
      .join(' ');
    const { stdout } = await promisify(execFile)('script', ['-qec', command, '/dev/null'], { cwd });
    // redrawn in place (carriage return, erase to the end of the line); the plan is the three tags
    expect(stdout).toContain('\r\u001b[Ksync: ');
    expect(stdout).toMatch(/sync: 3\/3 images, /);
    expect(stdout).toMatch(/synced 3, skipped 0, failed 0/);
    const piped = await stowage(['sync', '--config', 'zot.json', '--root', 'piped'], cwd);
    expect([piped.code, piped.err]).toEqual([0, '']);
    expect(piped.out).not.toContain('\u001b');
  }, 120_000);

  it('reports an image that fails on its own line with exit code 5, and commits nothing of it', async () => {
    const cwd = await scratch('failed');
    await writeFile(
      join(cwd, 'sync.yml'),
      `registries:\n  - urls: [${upstream.url}]\n    maxRetries: 0\n    retryDelay: 1ms\n    content:\n      - prefix: bad/**\n      - prefix: other/**\n`,
    );
    const run = await stowage(['sync', '--config', 'sync.yml', '--root', 'mirror'], cwd);
    expect(run.code).toBe(5);
    const lines = run.out.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^synced 1, skipped 0, failed 1 \(/);
    expect(lines.slice(1)).toHaveLength(1);
    expect(lines[1]).toMatch(
      new RegExp(`^failed: bad/one:v1 from ${upstream.url}/bad/one: .+ \\([A-Z_]+\\)$`),
    );
    const store = await createImageStore({ root: join(cwd, 'mirror') });
    try {
      expect((await store.getManifest('other/three', 'v1')).digest).toBe(pushed.get('other/three:v1'));
      await expect(store.getManifest('bad/one', 'v1')).rejects.toThrow();
      expect(await store.headBlob('bad/one', corrupt)).toBeFalsy();
    } finally {
      await store.close();
    }
  }, 120_000);

  it('fails for an unreachable upstream, unless --upstream leaves it out', async () => {
    const cwd = await scratch('upstreams');
    const dead = `http://127.0.0.1:${await freePort()}`;
    await writeFile(
      join(cwd, 'sync.yml'),
      `sync:\n  registries:\n    - urls: [${upstream.url}]\n      content: [{prefix: app/two}]\n    - urls: [${dead}]\n      maxRetries: 0\n      retryDelay: 1ms\n      content: [{prefix: "**"}]\n`,
    );
    const both = await stowage(['sync', '--config', 'sync.yml', '--root', 'mirror'], cwd);
    expect(both.code).toBe(5);
    const lines = both.out.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^synced 1, skipped 0, failed 0 \(/);
    expect(lines.slice(1)).toEqual([
      expect.stringMatching(new RegExp(`^failed: ${dead}: .+ \\([A-Z_]+\\)$`)),
    ]);
    const one = await stowage(['sync', '--config', 'sync.yml', '--root', 'mirror', '--upstream', '0'], cwd);
    expect(one.code).toBe(0);
    expect(one.out).toMatch(/^synced 0, skipped 1, failed 0 \(/);
  }, 120_000);
});
