import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isStowageError } from '@stowage/oci';
import { afterAll, describe, expect, it } from 'vitest';
import { applyEnvironment, type ConfigWarning, loadConfig, parseDuration, parseSize } from './config.js';

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

  it("reads Stowage's own keys without a warning", async () => {
    const warnings: ConfigWarning[] = [];
    const file = await configFile(`
version: 0.1
http:
  maxconnections: 50
limits:
  minbodyrate: 2KiB
  minbodyratewindow: 30s
gc:
  graceperiod: 10m
`);
    const config = await loadConfig({ configFile: file, onWarning: (w) => warnings.push(w) });
    expect(config.limits.maxConnections).toBe(50);
    expect(config.limits.minBodyRate).toEqual({ bytesPerSecond: 2048, windowMs: 30_000 });
    expect(config.gcGracePeriodMs).toBe(600_000);
    expect(warnings).toEqual([]);
  });
});

/** Loads a config file, returning its warnings or the refusal's message. */
async function outcome(text: string, env: NodeJS.ProcessEnv = {}) {
  const file = await configFile(text);
  const warnings: ConfigWarning[] = [];
  try {
    await loadConfig({ configFile: file, env, onWarning: (w) => warnings.push(w) });
    return { file, warnings, refused: undefined };
  } catch (error) {
    if (!isStowageError(error, 'CONFIG_INVALID')) throw error;
    return { file, warnings, refused: error.message };
  }
}

describe('database mode configuration', () => {
  it("is off without a database section, and its GC settings default to GitLab's", async () => {
    const config = await loadConfig();
    expect(config.database).toBeUndefined();
    expect(config.onlineGc).toEqual({
      enabled: true,
      reviewAfterMs: 86_400_000,
      intervalMs: 5000,
      deleteUntagged: false,
    });
  });

  it("takes a url, or GitLab's host, port, user, password, dbname and sslmode made into one", async () => {
    const byUrl = await loadConfig({
      configFile: await configFile(
        'database:\n  url: postgres://reg@db:5433/registry\n  pool:\n    maxopen: 25\n',
      ),
    });
    expect(byUrl.database).toEqual({
      url: 'postgres://reg@db:5433/registry',
      maxConnections: 25,
      connectTimeoutMs: 10_000,
    });
    const gitlab = await loadConfig({
      configFile: await configFile(`
database:
  enabled: true
  host: db.internal
  port: 5432
  user: registry
  password: "p@ss word"
  dbname: registry_production
  sslmode: disable
  connecttimeout: 5s
gc:
  reviewafter: 10m
  interval: 1s
  deleteuntagged: true
`),
    });
    expect(gitlab.database).toEqual({
      url: 'postgres://registry:p%40ss%20word@db.internal:5432/registry_production?sslmode=disable',
      maxConnections: 10,
      connectTimeoutMs: 5000,
    });
    expect(gitlab.onlineGc).toEqual({
      enabled: true,
      reviewAfterMs: 600_000,
      intervalMs: 1000,
      deleteUntagged: true,
    });
    const off = await loadConfig({
      configFile: await configFile(
        'database:\n  enabled: false\n  host: db\ngc:\n  disabled: true\n  reviewafter: -1\n',
      ),
    });
    expect(off.database).toBeUndefined();
    expect(off.onlineGc).toMatchObject({ enabled: false, reviewAfterMs: 0 });
  });

  it('refuses what cannot be a database, naming the key', async () => {
    const cases: [string, string][] = [
      [
        'database:\n  url: mysql://db/x\n',
        'database.url: not a PostgreSQL URL (its scheme is mysql:, not postgres:)',
      ],
      ['database:\n  url: postgres://db/x\n  host: db\n', 'database.url: give the url or host, not both'],
      ['database:\n  enabled: true\n', 'database: enabled, but neither url nor host is given'],
      ['database:\n  host: db\n  port: http\n', 'database.port: expected a positive integer'],
      [
        'database:\n  url: postgres://db/x\n  pool:\n    maxopen: 0\n',
        'database.pool.maxopen: expected a positive integer',
      ],
      ['database:\n  primary: db1\n', 'database.primary: a primary/replica split is not supported yet'],
      ['gc:\n  reviewafter: soon\n', 'gc.reviewafter: "soon" is not a duration'],
    ];
    for (const [text, message] of cases) {
      expect(await refusal(loadConfig({ configFile: await configFile(text) }))).toContain(message);
    }
  });
});

describe('configuration keys stowage-server does not read', () => {
  // distribution keys that change nothing here: accepted, one warning each
  const ignored: [string, string][] = [
    ['log:\n  fields:\n    service: registry\n', 'log.fields'],
    ['log:\n  formatter: text\n', 'log.formatter'],
    ['log:\n  accesslog:\n    disabled: true\n', 'log.accesslog'],
    ['log:\n  reportcaller: true\n', 'log.reportcaller'],
    ['storage:\n  cache:\n    blobdescriptor: inmemory\n', 'storage.cache'],
    ['storage:\n  redirect:\n    disable: true\n', 'storage.redirect'],
    ['storage:\n  filesystem:\n    maxthreads: 100\n', 'storage.filesystem.maxthreads'],
    ['http:\n  headers:\n    X-Content-Type-Options: [nosniff]\n', 'http.headers'],
    ['http:\n  secret: asecretforlocaldevelopment\n', 'http.secret'],
    ['http:\n  host: https://registry.example.com\n', 'http.host'],
    ['http:\n  relativeurls: true\n', 'http.relativeurls'],
    ['http:\n  http2:\n    disabled: true\n', 'http.http2'],
    ['health:\n  storagedriver:\n    enabled: true\n', 'health'],
    ['redis:\n  addr: localhost:6379\n', 'redis'],
  ];
  it.each(ignored)('accepts %j with one warning for %s', async (text, key) => {
    const { file, warnings, refused } = await outcome(text);
    expect(refused).toBeUndefined();
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatchObject({ key, origin: file });
    expect(warnings[0]?.message).toMatch(new RegExp(`^${file}: ${key.replace('.', '\\.')} is ignored: .+`));
  });

  // distribution keys that would change behaviour: refused, saying they are not supported
  const unsupported: [string, string][] = [
    ['notifications:\n  endpoints: []\n', 'notifications'],
    ['proxy:\n  remoteurl: https://r\n  exec:\n    command: h\n', 'proxy.exec'],
    ['middleware:\n  registry: []\n', 'middleware'],
    ['validation:\n  disabled: true\n', 'validation'],
    ['compatibility:\n  schema1:\n    enabled: true\n', 'compatibility'],
    ['reporting:\n  bugsnag:\n    apikey: x\n', 'reporting'],
    ['catalog:\n  maxentries: 10\n', 'catalog'],
    ['loglevel: debug\n', 'loglevel'],
    ['log:\n  hooks: []\n', 'log.hooks'],
    ['storage:\n  s3:\n    bucket: images\n', 'storage.s3'],
    ['storage:\n  azure: {}\n', 'storage.azure'],
    ['storage:\n  gcs: {}\n', 'storage.gcs'],
    ['storage:\n  swift: {}\n', 'storage.swift'],
    ['storage:\n  oss: {}\n', 'storage.oss'],
    ['storage:\n  inmemory:\n', 'storage.inmemory'],
    ['storage:\n  filesystem:\n    rootdirectory: /srv\n  s3:\n    bucket: b\n', 'storage.s3'],
    ['http:\n  debug:\n    addr: :5001\n', 'http.debug'],
    ['http:\n  prefix: /registry/\n', 'http.prefix'],
    ['http:\n  tls:\n    clientcas: [/ca.pem]\n', 'http.tls.clientcas'],
    ['http:\n  tls:\n    letsencrypt:\n      email: a@b\n', 'http.tls.letsencrypt'],
    ['http:\n  tls:\n    minimumtls: tls1.3\n', 'http.tls.minimumtls'],
    ['auth:\n  silly:\n    realm: r\n', 'auth.silly'],
    ['auth:\n  token:\n    jwks: /jwks.json\n', 'auth.token.jwks'],
    [
      'storage:\n  maintenance:\n    uploadpurging:\n      dryrun: true\n',
      'storage.maintenance.uploadpurging.dryrun',
    ],
    ['http:\n  net: unix\n', 'http.net'],
  ];
  it.each(unsupported)('refuses %j: %s is not supported', async (text, key) => {
    const { file, refused } = await outcome(text);
    expect(refused).toMatch(
      new RegExp(`^${file}: ${key.replaceAll('.', '\\.')}: .*(not supported|not read)`),
    );
  });

  // anything else: refused with its path, never started on defaults
  const unknown: [string, string][] = [
    ['http:\n  adr: 127.0.0.1:5001\n', 'http.adr: unknown configuration key; did you mean http.addr?'],
    [
      'storage:\n  filesytem:\n    rootdirectory: /srv\n',
      'storage.filesytem: unknown configuration key; did you mean storage.filesystem?',
    ],
    [
      'htpasswd:\n  path: /x\n',
      'htpasswd: unknown configuration key; the keys are listed in the stowage-server README',
    ],
    ['log:\n  levle: debug\n', 'log.levle: unknown configuration key; did you mean log.level?'],
    [
      'limits:\n  maxblobsize: 1GiB\n  maxmanifest: 1MiB\n',
      'limits.maxmanifest: unknown configuration key; the keys are listed in the stowage-server README',
    ],
    [
      'access:\n  - repository: a\n    anonymus: [pull]\n',
      'access[0].anonymus: unknown key; a rule has repository, anonymous, authenticated and users',
    ],
    ['http: :5000\n', 'http: expected a mapping'],
  ];
  it.each(unknown)('refuses %j with its path', async (text, message) => {
    const { file, refused } = await outcome(text);
    expect(refused).toBe(`${file}: ${message}`);
  });

  it('warns once per key and source', async () => {
    const { warnings } = await outcome('log:\n  fields: {a: 1}\n', {
      REGISTRY_LOG_FIELDS: 'a',
      STOWAGE_LOG_FIELDS: 'b',
    });
    expect(warnings.map((w) => w.message)).toEqual([
      expect.stringMatching(/: log\.fields is ignored: /),
      'REGISTRY_LOG_FIELDS (log.fields) is ignored: extra fields are not added to the log lines',
      'STOWAGE_LOG_FIELDS (log.fields) is ignored: extra fields are not added to the log lines',
    ]);
  });
});

describe('environment variables', () => {
  const read: [NodeJS.ProcessEnv, unknown][] = [
    [{ REGISTRY_HTTP_ADDR: ':6000' }, { http: { addr: ':6000' } }],
    [
      { STOWAGE_STORAGE_FILESYSTEM_ROOTDIRECTORY: '/srv/@store' },
      { storage: { filesystem: { rootdirectory: '/srv/@store' } } },
    ],
    [{ REGISTRY_HTTP_MAXCONNECTIONS: '50' }, { http: { maxconnections: 50 } }],
    [
      { STOWAGE_LIMITS_MINBODYRATE: '2KiB', STOWAGE_LIMITS_MINBODYRATEWINDOW: '30s' },
      { limits: { minbodyrate: '2KiB', minbodyratewindow: '30s' } },
    ],
    [
      { REGISTRY_AUTH_HTPASSWD_REALM: '@realm', REGISTRY_AUTH_HTPASSWD_PATH: '/etc/htpasswd' },
      { auth: { htpasswd: { realm: '@realm', path: '/etc/htpasswd' } } },
    ],
    [
      { STOWAGE_ACCESS: '[{repository: "public/**", anonymous: [pull]}]' },
      { access: [{ repository: 'public/**', anonymous: ['pull'] }] },
    ],
    [{ REGISTRY_HTTP_ADDR: ':6000', STOWAGE_HTTP_ADDR: ':7000' }, { http: { addr: ':7000' } }],
    // database mode's url is text, taken as it is
    [
      { STOWAGE_DATABASE_URL: 'postgres://x@db:5432/registry' },
      { database: { url: 'postgres://x@db:5432/registry' } },
    ],
    // not configuration keys: never read
    [
      {
        REGISTRY_PASSWORD: '@abc123',
        STOWAGE_HOME: '{ oops',
        STOWAGE_CACHE_DIR: 'postgres://x',
        HOME: '/root',
      },
      {},
    ],
  ];
  it.each(read)('reads %j as %j', (env, raw) => {
    expect(applyEnvironment({}, env)).toEqual(raw);
  });

  const refused: [NodeJS.ProcessEnv, string][] = [
    [
      { STOWAGE_LIMITS_MAXBLOBSIZE: '@abc' },
      'STOWAGE_LIMITS_MAXBLOBSIZE (limits.maxblobsize): "@abc" is not a YAML value (Plain value cannot start with reserved character @ at line 1, column 1)',
    ],
    [
      { STOWAGE_STORAGE_DELETE_ENABLED: 'yes' },
      'STOWAGE_STORAGE_DELETE_ENABLED (storage.delete.enabled): expected true or false',
    ],
    [
      { REGISTRY_HTTP_ADDR: 'nonsense' },
      'REGISTRY_HTTP_ADDR (http.addr): "nonsense" is not [host]:port (like :5000 or 127.0.0.1:5000)',
    ],
    [
      { REGISTRY_STORAGE_S3_BUCKET: 'images' },
      'REGISTRY_STORAGE_S3_BUCKET (storage.s3): the s3 storage driver is not supported yet (stowage-server stores in storage.filesystem only); unset it',
    ],
    [
      { REGISTRY_NOTIFICATIONS_ENDPOINTS: '[]' },
      'REGISTRY_NOTIFICATIONS_ENDPOINTS (notifications): notifications (webhooks on pushes and pulls) are not supported yet; unset it',
    ],
    [
      { REGISTRY_STORAGE: 's3: {bucket: b}' },
      'REGISTRY_STORAGE: storage.s3: the s3 storage driver is not supported yet (stowage-server stores in storage.filesystem only); remove it',
    ],
    [
      { STOWAGE_LOG_LEVEL: 'verbose' },
      'STOWAGE_LOG_LEVEL (log.level): "verbose" is not a log level; use one of trace, debug, info, warn, error, fatal, silent',
    ],
  ];
  it.each(refused)('refuses %j naming the variable', async (env, message) => {
    expect(await refusal(loadConfig({ env }))).toBe(message);
  });

  it('warns about a variable under a known section that names no key', async () => {
    const warnings: ConfigWarning[] = [];
    await loadConfig({ env: { REGISTRY_HTTP_ADR: ':6000' }, onWarning: (w) => warnings.push(w) });
    expect(warnings).toEqual([
      {
        key: 'http.adr',
        origin: 'REGISTRY_HTTP_ADR',
        message: 'REGISTRY_HTTP_ADR (http.adr) is not a configuration key; ignored',
      },
    ]);
  });
});
