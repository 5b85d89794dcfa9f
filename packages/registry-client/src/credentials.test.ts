import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { credentialConfigPaths, lookupCredentials, runCredentialHelper } from './credentials.js';
import { CredentialsError } from './errors.js';

const b64 = (text: string) => Buffer.from(text).toString('base64');

let dir: string;
let binDir: string;

async function writeJson(path: string, value: unknown): Promise<string> {
  await mkdir(join(path, '..'), { recursive: true });
  await writeFile(path, JSON.stringify(value));
  return path;
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'stowage-creds-'));
  binDir = join(dir, 'bin');
  await mkdir(binDir);
  // A credential helper in the docker-credential-helpers protocol: server on stdin, JSON on stdout.
  const helper = join(binDir, 'docker-credential-fake');
  await writeFile(
    helper,
    `#!/bin/sh
[ "$1" = get ] || exit 2
server=$(cat)
case "$server" in
  helper.example) printf '{"ServerURL":"%s","Username":"helper-user","Secret":"helper-pass"}' "$server" ;;
  token.example) printf '{"ServerURL":"%s","Username":"<token>","Secret":"identity-123"}' "$server" ;;
  https://index.docker.io/v1/) printf '{"ServerURL":"%s","Username":"hub","Secret":"hub-pass"}' "$server" ;;
  broken.example) echo "secret-ish diagnostics" >&2; exit 3 ;;
  *) echo "credentials not found in native keychain"; exit 1 ;;
esac
`,
  );
  await chmod(helper, 0o755);
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const env = () => ({ PATH: `${binDir}${delimiter}${process.env.PATH ?? ''}`, HOME: join(dir, 'home') });

describe('credentialConfigPaths', () => {
  it('lists containers auth files first, then the Docker config', () => {
    expect(credentialConfigPaths({ XDG_RUNTIME_DIR: '/run/user/1' }, '/home/u')).toEqual([
      '/run/user/1/containers/auth.json',
      '/home/u/.config/containers/auth.json',
      '/home/u/.docker/config.json',
    ]);
    expect(credentialConfigPaths({ REGISTRY_AUTH_FILE: '/a.json', DOCKER_CONFIG: '/d' }, '/home/u')).toEqual([
      '/a.json',
      '/home/u/.config/containers/auth.json',
      '/d/config.json',
    ]);
  });
});

describe('lookupCredentials', () => {
  it('decodes auths entries and matches hosts with scheme and path stripped', async () => {
    const path = await writeJson(join(dir, 'docker1', 'config.json'), {
      auths: {
        'https://registry.example:5000/v1/': { auth: b64('alice:pa:ss') },
        'plain.example': { username: 'bob', password: 'pw' },
        'quay.example/some-org': { auth: b64('namespaced:only') },
        'id.example': { username: 'carol', identitytoken: 'refresh' },
      },
    });
    const options = { configPaths: [path], env: env() };
    expect(await lookupCredentials('registry.example:5000', options)).toEqual({
      username: 'alice',
      password: 'pa:ss',
    });
    expect(await lookupCredentials('https://plain.example/', options)).toEqual({
      username: 'bob',
      password: 'pw',
    });
    expect(await lookupCredentials('id.example', options)).toEqual({
      username: 'carol',
      identityToken: 'refresh',
    });
    // A containers namespace key is not a login for the whole host.
    expect(await lookupCredentials('quay.example', options)).toBeUndefined();
    expect(await lookupCredentials('registry.example', options)).toBeUndefined();
  });

  it('treats docker.io, index.docker.io and registry-1.docker.io as one host', async () => {
    const path = await writeJson(join(dir, 'docker2', 'config.json'), {
      auths: { 'https://index.docker.io/v1/': { auth: b64('hubuser:hubpass') } },
    });
    for (const host of ['docker.io', 'index.docker.io', 'registry-1.docker.io']) {
      expect(await lookupCredentials(host, { configPaths: [path], env: env() })).toEqual({
        username: 'hubuser',
        password: 'hubpass',
      });
    }
  });

  it('runs credHelpers for their hosts and the credsStore for the rest', async () => {
    const path = await writeJson(join(dir, 'docker3', 'config.json'), {
      auths: { 'inline.example': { auth: b64('inline:pw') } },
      credHelpers: { 'helper.example': 'fake', 'token.example': 'fake' },
      credsStore: 'fake',
    });
    const options = { configPaths: [path], env: env() };
    expect(await lookupCredentials('helper.example', options)).toEqual({
      username: 'helper-user',
      password: 'helper-pass',
    });
    expect(await lookupCredentials('token.example', options)).toEqual({ identityToken: 'identity-123' });
    expect(await lookupCredentials('inline.example', options)).toEqual({
      username: 'inline',
      password: 'pw',
    });
    expect(await lookupCredentials('docker.io', options)).toEqual({ username: 'hub', password: 'hub-pass' });
    expect(await lookupCredentials('unknown.example', options)).toBeUndefined();
  });

  it('searches containers auth.json before the Docker config, honouring REGISTRY_AUTH_FILE and DOCKER_CONFIG', async () => {
    const home = join(dir, 'home');
    await writeJson(join(home, '.config', 'containers', 'auth.json'), {
      auths: { 'both.example': { auth: b64('from-containers:1') } },
    });
    await writeJson(join(home, '.docker', 'config.json'), {
      auths: { 'both.example': { auth: b64('from-docker:2') }, 'docker-only.example': { auth: b64('d:3') } },
    });
    const custom = await writeJson(join(dir, 'custom', 'auth.json'), {
      auths: { 'custom.example': { auth: b64('custom:4') } },
    });
    const dockerDir = join(dir, 'dockerdir');
    await writeJson(join(dockerDir, 'config.json'), { auths: { 'dc.example': { auth: b64('dc:5') } } });

    const base = { ...env(), HOME: home };
    expect(await lookupCredentials('both.example', { env: base, homeDir: home })).toEqual({
      username: 'from-containers',
      password: '1',
    });
    expect(await lookupCredentials('docker-only.example', { env: base, homeDir: home })).toEqual({
      username: 'd',
      password: '3',
    });
    expect(
      await lookupCredentials('custom.example', {
        env: { ...base, REGISTRY_AUTH_FILE: custom },
        homeDir: home,
      }),
    ).toEqual({ username: 'custom', password: '4' });
    expect(
      await lookupCredentials('dc.example', { env: { ...base, DOCKER_CONFIG: dockerDir }, homeDir: home }),
    ).toEqual({ username: 'dc', password: '5' });
  });

  it('skips missing files and refuses broken ones without quoting them', async () => {
    const broken = join(dir, 'broken.json');
    await writeFile(broken, '{"auths": {"x": {"auth": "c2VjcmV0OnBhc3N3b3Jk"}');
    expect(
      await lookupCredentials('x', { configPaths: [join(dir, 'missing.json')], env: env() }),
    ).toBeUndefined();
    const error = await lookupCredentials('x', { configPaths: [broken], env: env() }).catch(
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(CredentialsError);
    expect((error as Error).message).not.toContain('c2VjcmV0');
  });
});

describe('runCredentialHelper', () => {
  it('reports a failing helper without its output, and a missing one as no credentials', async () => {
    const error = await runCredentialHelper('fake', 'broken.example', { env: env() }).catch(
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(CredentialsError);
    expect((error as Error).message).toContain('exited with code 3');
    expect((error as Error).message).not.toContain('secret-ish');
    const warnings: string[] = [];
    expect(
      await runCredentialHelper('not-installed', 'x', {
        env: env(),
        logger: { warn: (_fields, message) => warnings.push(message ?? '') },
      }),
    ).toBeUndefined();
    expect(warnings[0]).toContain('docker-credential-not-installed');
    await expect(runCredentialHelper('../evil', 'x')).rejects.toBeInstanceOf(CredentialsError);
  });
});
