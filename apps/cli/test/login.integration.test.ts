// stowage login and logout against a docker-registry with htpasswd auth: the
// credentials are checked first, kept as docker keeps them, and skopeo and podman
// read the file; a wrong password changes nothing (exit code 7).
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { createRegistryClient } from '@stowage/registry-client';
import {
  type DockerRegistry,
  pushImage,
  randomImage,
  requirePeers,
  startDockerRegistry,
} from '@stowage/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureBinary, stowage } from './binary.js';

describe('stowage login and logout', () => {
  if (!requirePeers('docker-registry', 'skopeo', 'podman')) return;
  let work: string;
  let registry: DockerRegistry;
  /** No credentials but the ones the test writes: a home of its own, no auth file variables. */
  let env: Record<string, string>;

  beforeAll(async () => {
    await ensureBinary();
    work = await mkdtemp(join(tmpdir(), 'stowage-cli-login-'));
    registry = await startDockerRegistry({ htpasswd: [{ username: 'alice', password: 'wonderland' }] });
    const client = createRegistryClient({
      registry: registry.host,
      credentials: { username: 'alice', password: 'wonderland' },
      auth: { useConfigFiles: false },
    });
    await pushImage(client, 'app', randomImage({ seed: 5 }), 'v1');
    await client.close();
    env = {
      HOME: join(work, 'home'),
      DOCKER_CONFIG: '',
      XDG_RUNTIME_DIR: '',
      REGISTRY_AUTH_FILE: '',
      XDG_CONFIG_HOME: '',
    };
  }, 300_000);
  afterAll(async () => {
    await registry?.stop();
    if (work) await rm(work, { recursive: true, force: true });
  });

  it('checks the password, keeps it as docker does, and skopeo and podman use the file', async () => {
    const file = join(work, 'auth.json');
    await writeFile(file, JSON.stringify({ auths: { 'other.example': { auth: 'eDp5' } }, credHelpers: {} }));
    const before = await readFile(file, 'utf8');
    const wrong = await stowage(
      ['login', registry.host, '-u', 'alice', '--password-stdin', '--authfile', file],
      {
        cwd: work,
        env,
        input: 'not-it\n',
      },
    );
    expect(wrong.code).toBe(7);
    expect(wrong.lines).toEqual([expect.stringMatching(/^stowage: UNAUTHORIZED: .*: log in/)]);
    expect(await readFile(file, 'utf8')).toBe(before);

    const denied = await stowage(['ls', `${registry.host}/app`], { cwd: work, env });
    expect(denied.code).toBe(7);

    const login = await stowage(
      ['login', `https://${registry.host}/`, '-u', 'alice', '--password-stdin', '--authfile', file],
      {
        cwd: work,
        env,
        input: 'wonderland\n',
      },
    );
    expect([login.code, login.err]).toEqual([0, '']);
    expect(login.out).toBe(`Login Succeeded (${registry.host}, kept in ${file})\n`);
    expect(JSON.parse(await readFile(file, 'utf8'))).toEqual({
      auths: {
        'other.example': { auth: 'eDp5' },
        [registry.host]: { auth: Buffer.from('alice:wonderland').toString('base64') },
      },
      credHelpers: {},
    });
    expect((await stat(file)).mode & 0o777).toBe(0o600);

    const ls = await stowage(['ls', `${registry.host}/app`, '--authfile', file], { cwd: work, env });
    expect([ls.code, ls.out]).toEqual([0, 'v1\n']);
    // an --authfile that is not there is refused before any request, as skopeo does
    const missing = await stowage(['ls', `${registry.host}/app`, '--authfile', join(work, 'absent.json')], {
      cwd: work,
      env,
    });
    expect([missing.code, missing.lines[0]]).toEqual([
      2,
      expect.stringMatching(/^stowage: the credentials file .*absent\.json is not accessible \(ENOENT\)/),
    ]);
    // a login under a directory that refuses new entries (Node's own recursive mkdir loops there)
    const nowhere = await stowage(
      [
        'login',
        registry.host,
        '-u',
        'alice',
        '-p',
        'wonderland',
        '--authfile',
        '/proc/stowage-nowhere/auth.json',
      ],
      { cwd: work, env },
    );
    expect([nowhere.code, nowhere.lines]).toEqual([
      1,
      [expect.stringMatching(/^stowage: ENOENT: .*\/proc\/stowage-nowhere/)],
    ]);
    const skopeo = await promisify(execFile)('skopeo', [
      'list-tags',
      '--tls-verify=false',
      '--authfile',
      file,
      `docker://${registry.host}/app`,
    ]);
    expect(JSON.parse(skopeo.stdout).Tags).toEqual(['v1']);
    const podman = await promisify(execFile)('podman', [
      'login',
      '--get-login',
      '--authfile',
      file,
      registry.host,
    ]);
    expect(podman.stdout.trim()).toBe('alice');

    // the default file is docker's: $HOME/.docker/config.json
    const again = await stowage(['login', registry.host, '-u', 'alice', '-p', 'wonderland'], {
      cwd: work,
      env,
    });
    expect(again.code).toBe(0);
    const docker = join(env.HOME as string, '.docker', 'config.json');
    expect(Object.keys(JSON.parse(await readFile(docker, 'utf8')).auths)).toEqual([registry.host]);
    expect((await stowage(['ls', `${registry.host}/app`], { cwd: work, env })).out).toBe('v1\n');

    const logout = await stowage(['logout', registry.host, '--authfile', file], { cwd: work, env });
    expect([logout.code, logout.out]).toEqual([0, `Removed login credentials for ${registry.host}\n`]);
    expect(JSON.parse(await readFile(file, 'utf8')).auths).toEqual({ 'other.example': { auth: 'eDp5' } });
    const twice = await stowage(['logout', registry.host, '--authfile', file], { cwd: work, env });
    expect([twice.code, twice.out]).toEqual([0, `Not logged in to ${registry.host}\n`]);
  }, 120_000);

  it("copy's --src-authfile applies to the source only, --dest-authfile to the destination only", async () => {
    const file = join(work, 'sides.json');
    // a home without docker's default file (the test above logged in there)
    const home = { ...env, HOME: join(work, 'home-sides') };
    const login = await stowage(
      ['login', registry.host, '-u', 'alice', '-p', 'wonderland', '--authfile', file],
      {
        cwd: work,
        env: home,
      },
    );
    expect(login.code).toBe(0);
    const root = join(work, 'sides-store');
    const wrongSide = await stowage(
      ['copy', `${registry.host}/app:v1`, 'store:app:v1', '--root', root, '--dest-authfile', file],
      { cwd: work, env: home },
    );
    expect([wrongSide.code, wrongSide.lines.length]).toEqual([7, 1]);
    const right = await stowage(
      ['copy', `${registry.host}/app:v1`, 'store:app:v1', '--root', root, '--src-authfile', file, '--json'],
      { cwd: work, env: home },
    );
    expect([right.code, right.err]).toEqual([0, '']);
    const back = await stowage(
      ['copy', 'store:app:v1', `${registry.host}/back:v1`, '--root', root, '--dest-authfile', file, '--json'],
      { cwd: work, env: home },
    );
    expect([back.code, JSON.parse(back.out).digest]).toEqual([0, JSON.parse(right.out).digest]);
  }, 60_000);

  it('refuses a missing user or password and a broken file with one line and exit code 2', async () => {
    const broken = join(work, 'broken.json');
    await writeFile(broken, '{not json');
    const cases: [string[], RegExp][] = [
      [
        ['login', registry.host, '--password-stdin'],
        /^stowage: login needs --username \(see stowage login --help\)$/,
      ],
      [['login', registry.host, '-u', 'alice'], /^stowage: login needs the password: --password-stdin/],
      [
        ['login', registry.host, '-u', 'a', '-p', 'b', '--password-stdin'],
        /^stowage: give --password or --password-stdin, not both/,
      ],
      [['login', 'not a host', '-u', 'a', '-p', 'b'], /^stowage: "not a host" is not a registry host/],
      [
        ['login', registry.host, '-u', 'a', '-p', 'b', '--authfile', broken],
        /^stowage: .*broken\.json is not JSON/,
      ],
    ];
    for (const [args, line] of cases) {
      const run = await stowage(args, { cwd: work, env });
      expect(run.code, args.join(' ')).toBe(2);
      expect(run.lines[0], args.join(' ')).toMatch(line);
    }
    expect(await readFile(broken, 'utf8')).toBe('{not json');
  }, 60_000);
});
