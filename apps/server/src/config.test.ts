import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isStowageError } from '@stowage/oci';
import { afterAll, describe, expect, it } from 'vitest';
import { applyEnvironment, loadConfig, parseDuration, parseSize } from './config.js';

const dirs: string[] = [];
afterAll(async () => {
  for (const dir of dirs) await rm(dir, { recursive: true, force: true });
});

async function configFile(text: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'stowage-config-'));
  dirs.push(dir);
  const file = join(dir, 'config.yml');
  await writeFile(file, text);
  return file;
}

async function refusal(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (error) {
    if (isStowageError(error, 'CONFIG_INVALID')) return error.message;
    throw error;
  }
  throw new Error('expected a CONFIG_INVALID error');
}

describe('server configuration', () => {
  it('starts from defaults: ./data, :5000, anonymous, deletes on, purging on', async () => {
    const config = await loadConfig();
    expect(config.root).toBe(join(process.cwd(), 'data'));
    expect(config.host).toBe('0.0.0.0');
    expect(config.port).toBe(5000);
    expect(config.readOnly).toBe(false);
    expect(config.deleteEnabled).toBe(true);
    expect(config.auth).toEqual({});
    expect(config.uploadPurging).toEqual({
      enabled: true,
      ageMs: 168 * 3_600_000,
      intervalMs: 24 * 3_600_000,
    });
    expect(config.limits.maxManifestSize).toBe(4 * 1024 * 1024);
  });

  it("reads distribution's config.yml shape, resolving paths against the file", async () => {
    const file = await configFile(`
version: 0.1
log:
  level: debug
storage:
  filesystem:
    rootdirectory: ./store
  delete:
    enabled: false
  maintenance:
    uploadpurging:
      enabled: true
      age: 2h
      interval: 10m
    readonly:
      enabled: true
http:
  addr: 127.0.0.1:5001
  draintimeout: 5s
auth:
  htpasswd:
    realm: basic-realm
    path: ./htpasswd
access:
  - repository: public/**
    anonymous: [pull]
limits:
  maxblobsize: 1GiB
`);
    const config = await loadConfig({ configFile: file });
    const dir = join(file, '..');
    expect(config.root).toBe(join(dir, 'store'));
    expect(config.logLevel).toBe('debug');
    expect(config.deleteEnabled).toBe(false);
    expect(config.readOnly).toBe(true);
    expect(config.uploadPurging).toEqual({ enabled: true, ageMs: 7_200_000, intervalMs: 600_000 });
    expect({ host: config.host, port: config.port }).toEqual({ host: '127.0.0.1', port: 5001 });
    expect(config.drainTimeoutMs).toBe(5000);
    expect(config.auth.htpasswd).toEqual({ realm: 'basic-realm', path: join(dir, 'htpasswd') });
    expect(config.access).toEqual([{ repository: 'public/**', anonymous: ['pull'] }]);
    expect(config.limits.maxBlobSize).toBe(1024 ** 3);
  });

  it('lets the environment override the file and flags override both', async () => {
    const file = await configFile('http:\n  addr: :5001\nstorage:\n  delete:\n    enabled: true\n');
    const config = await loadConfig({
      configFile: file,
      env: { REGISTRY_HTTP_ADDR: ':6000', STOWAGE_STORAGE_DELETE_ENABLED: 'false', HOME: '/x' },
      overrides: { 'http.addr': '[::1]:7000', 'log.level': undefined },
    });
    expect({ host: config.host, port: config.port }).toEqual({ host: '::1', port: 7000 });
    expect(config.deleteEnabled).toBe(false);
    expect(applyEnvironment({}, { STOWAGE_LIMITS_MAXBLOBSIZE: '100' })).toEqual({
      limits: { maxblobsize: 100 },
    });
  });

  it('refuses what it cannot use, naming the setting', async () => {
    expect(await refusal(loadConfig({ overrides: { 'http.addr': 'nonsense' } }))).toMatch(/http\.addr/);
    expect(await refusal(loadConfig({ overrides: { 'http.draintimeout': '5 minutes' } }))).toMatch(
      /draintimeout/,
    );
    expect(await refusal(loadConfig({ overrides: { 'storage.delete.enabled': 'yes' } }))).toMatch(/delete/);
    expect(
      await refusal(loadConfig({ overrides: { access: [{ repository: 'a', anonymous: ['fly'] }] } })),
    ).toMatch(/access\[0\]/);
    expect(await refusal(loadConfig({ configFile: await configFile('- just\n- a list\n') }))).toMatch(
      /mapping/,
    );
    expect(await refusal(loadConfig({ configFile: await configFile('a: [unclosed\n') }))).toMatch(
      /config\.yml/,
    );
    expect(
      await refusal(
        loadConfig({
          overrides: {
            'auth.htpasswd': { path: '/x' },
            'auth.token': { realm: 'r', service: 's', issuer: 'i', rootcertbundle: '/c' },
          },
        }),
      ),
    ).toMatch(/one of/);
  });

  it('parses Go durations and sizes', () => {
    expect(parseDuration('1h30m', 'x')).toBe(5_400_000);
    expect(parseDuration('500ms', 'x')).toBe(500);
    expect(parseDuration(250, 'x')).toBe(250);
    expect(() => parseDuration('1d', 'x')).toThrow(/duration/);
    expect(parseSize('4MiB', 'x')).toBe(4 * 1024 * 1024);
    expect(parseSize('10GB', 'x')).toBe(10e9);
    expect(parseSize('512k', 'x')).toBe(512_000);
    expect(parseSize(42, 'x')).toBe(42);
    expect(() => parseSize('lots', 'x')).toThrow(/size/);
  });
});
