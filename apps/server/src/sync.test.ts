// The server's sync: and proxy: sections: read through loadConfig like every
// other key (relative paths against the file, errors naming the whole key and
// the file, exit code 3), and at start the periodic service under the storage
// root's .sync directory, stopped on close.
import { mkdtemp, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isStowageError } from '@stowage/oci';
import { freePort } from '@stowage/testing';
import { afterAll, describe, expect, it } from 'vitest';
import { loadConfig } from './config.js';
import { explainFailure } from './errors.js';
import { startServer } from './server.js';
import { syncStateDir } from './sync.js';

const dirs: string[] = [];
afterAll(async () => {
  for (const dir of dirs) await rm(dir, { recursive: true, force: true });
});

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'stowage-server-sync-'));
  dirs.push(dir);
  return dir;
}

async function configFile(text: string): Promise<string> {
  const file = join(await tempDir(), 'config.yml');
  await writeFile(file, text);
  return file;
}

async function refusal(promise: Promise<unknown>): Promise<{ message: string; exitCode: number }> {
  try {
    await promise;
  } catch (error) {
    if (isStowageError(error, 'CONFIG_INVALID')) {
      return { message: error.message, exitCode: explainFailure(error).exitCode };
    }
    throw error;
  }
  throw new Error('expected a CONFIG_INVALID error');
}

describe('the sync: and proxy: sections of the server config', () => {
  it('has no sync without either section', async () => {
    const config = await loadConfig({ configFile: await configFile('http:\n  addr: :5000\n') });
    expect(config.sync).toBeUndefined();
  });

  it("reads zot's sync shape: on-demand and periodic upstreams, credentials beside the file", async () => {
    const file = await configFile(`
sync:
  credentialsFile: ./credentials.json
  registries:
    - urls: [https://registry.example.com]
      onDemand: true
      checkInterval: 10m
    - urls: [http://127.0.0.1:5999/]
      pollInterval: 6h
      tlsVerify: false
      content:
        - prefix: library/**
          tags:
            semver: true
`);
    await writeFile(
      join(file, '..', 'credentials.json'),
      JSON.stringify({ 'registry.example.com': { username: 'ada', password: 'secret' } }),
    );
    const config = await loadConfig({ configFile: file });
    expect(config.sync?.section).toBe('sync');
    const [onDemand, periodic] = config.sync?.config.upstreams ?? [];
    expect(onDemand).toMatchObject({
      index: 0,
      urls: ['https://registry.example.com'],
      onDemand: true,
      checkIntervalMs: 600_000,
    });
    expect(onDemand?.pollIntervalMs).toBeUndefined();
    expect(onDemand?.credentials['registry.example.com']).toEqual({ username: 'ada', password: 'secret' });
    expect(periodic).toMatchObject({
      index: 1,
      urls: ['http://127.0.0.1:5999'],
      onDemand: false,
      pollIntervalMs: 6 * 3_600_000,
      tlsVerify: false,
    });
    expect(periodic?.content.map((rule) => rule.prefix)).toEqual(['library/**']);
  });

  it("reads distribution's proxy: as one on-demand upstream, its credentials and ttl", async () => {
    const file = await configFile(`
proxy:
  remoteurl: https://registry-1.docker.io
  username: ada
  password: secret
  ttl: 2h
`);
    const config = await loadConfig({ configFile: file });
    expect(config.sync?.section).toBe('proxy');
    const upstreams = config.sync?.config.upstreams ?? [];
    expect(upstreams).toHaveLength(1);
    expect(upstreams[0]).toMatchObject({
      urls: ['https://registry-1.docker.io'],
      onDemand: true,
      checkIntervalMs: 2 * 3_600_000,
    });
    expect(upstreams[0]?.pollIntervalMs).toBeUndefined();
    expect(upstreams[0]?.credentials['registry-1.docker.io']).toEqual({
      username: 'ada',
      password: 'secret',
    });
  });

  it('takes sync.enable: false as no sync', async () => {
    const file = await configFile(
      'sync:\n  enable: false\n  registries:\n    - urls: [https://r.example.com]\n      onDemand: true\n',
    );
    expect((await loadConfig({ configFile: file })).sync).toBeUndefined();
  });

  it('refuses a bad sync section naming the whole key and the file, with exit code 3', async () => {
    const cases: [string, string][] = [
      ['sync:\n  registries:\n    - urls: [ftp://r.example.com]\n', 'sync.registries[0].urls[0]'],
      [
        'sync:\n  registries:\n    - urls: [https://r.example.com]\n      pollInterval: often\n      content: [{prefix: a}]\n',
        'sync.registries[0].pollInterval',
      ],
      [
        'sync:\n  registries:\n    - urls: [https://r.example.com]\n      content:\n        - prefix: a\n          tags: {regex: "(["}\n',
        'sync.registries[0].content[0].tags.regex',
      ],
      [
        'sync:\n  registries:\n    - urls: [https://r.example.com]\n      colour: blue\n',
        'sync.registries[0].colour',
      ],
      ['proxy:\n  ttl: 1h\n', 'proxy.remoteurl'],
    ];
    for (const [text, key] of cases) {
      const file = await configFile(text);
      const { message, exitCode } = await refusal(loadConfig({ configFile: file }));
      expect(message, text).toMatch(new RegExp(`^${file}: ${key.replace(/[.[\]]/g, '\\$&')}: \\S`));
      expect(exitCode, text).toBe(3);
    }
  });

  it("refuses both sections at once, proxy keys it does not know, and a read-only server's mirroring", async () => {
    const both = await configFile(
      'proxy:\n  remoteurl: https://a.example.com\nsync:\n  registries:\n    - urls: [https://b.example.com]\n      onDemand: true\n',
    );
    expect((await refusal(loadConfig({ configFile: both }))).message).toBe(
      `${both}: proxy: choose one of sync and proxy (proxy is an on-demand sync of one upstream: sync.registries[].onDemand)`,
    );
    const unknown = await configFile('proxy:\n  remoteurl: https://a.example.com\n  remoteURL: x\n');
    expect((await refusal(loadConfig({ configFile: unknown }))).message).toMatch(
      new RegExp(
        `^${unknown}: proxy\\.remoteURL: unknown configuration key; did you mean proxy\\.remoteurl\\?`,
      ),
    );
    const exec = await configFile(
      'proxy:\n  remoteurl: https://a.example.com\n  exec:\n    command: helper\n',
    );
    expect((await refusal(loadConfig({ configFile: exec }))).message).toMatch(
      new RegExp(`^${exec}: proxy\\.exec: a credential helper is not supported yet`),
    );
    const readOnly = await configFile(
      'storage:\n  maintenance:\n    readonly:\n      enabled: true\nproxy:\n  remoteurl: https://a.example.com\n',
    );
    expect((await refusal(loadConfig({ configFile: readOnly }))).message).toBe(
      `${readOnly}: proxy: a read-only server cannot mirror (storage.maintenance.readonly); remove one of them`,
    );
  });

  it('runs the periodic sync under <root>/.sync, out of the catalog, and stops it on close', async () => {
    const root = await tempDir();
    // nothing listens there: every pass reports the upstream unreachable
    const dead = `http://127.0.0.1:${await freePort()}`;
    const file = await configFile(`
storage:
  filesystem:
    rootdirectory: ${root}
http:
  addr: 127.0.0.1:0
sync:
  registries:
    - urls: [${dead}]
      pollInterval: 24h
      maxRetries: 0
      retryDelay: 1ms
      content:
        - prefix: "**"
`);
    const running = await startServer(await loadConfig({ configFile: file }), {});
    try {
      expect(running.sync).toBeDefined();
      expect((await stat(syncStateDir(root))).isDirectory()).toBe(true);
      const [report] = (await running.sync?.runNow()) ?? [];
      expect(report?.errors.map((error) => error.upstream)).toEqual([dead]);
      expect(report?.images).toEqual([]);
      const catalog = await (await fetch(`${running.url}/v2/_catalog`)).json();
      expect(catalog).toEqual({ repositories: [] });
    } finally {
      await running.close();
    }
    expect(await readdir(root)).toContain('.sync');
  });

  it('serves the store itself when no upstream is on demand, and starts no service without a pollInterval', async () => {
    const root = await tempDir();
    const file = await configFile(`
storage:
  filesystem:
    rootdirectory: ${root}
http:
  addr: 127.0.0.1:0
sync:
  registries:
    - urls: [https://r.example.com]
      content:
        - prefix: "**"
`);
    const running = await startServer(await loadConfig({ configFile: file }), {});
    try {
      expect(running.sync).toBeUndefined();
      const put = await fetch(`${running.url}/v2/app/blobs/uploads/`, { method: 'POST' });
      expect(put.status).toBe(202);
    } finally {
      await running.close();
    }
  });
});
