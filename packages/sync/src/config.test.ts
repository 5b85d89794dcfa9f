import { isStowageError } from '@stowage/oci';
import { describe, expect, it } from 'vitest';
import {
  compileGoRegExp,
  type ParseSyncConfigOptions,
  parseSyncConfig,
  proxyToSyncConfig,
} from './config.js';

/** The error a bad section raises: its key and detail, checked to be CONFIG_INVALID. */
async function refusal(
  input: unknown,
  options: ParseSyncConfigOptions = {},
  parse = parseSyncConfig,
): Promise<{ key: string; detail: string; message: string }> {
  try {
    await parse(input, options);
  } catch (error) {
    if (!isStowageError(error, 'CONFIG_INVALID')) throw error;
    return { key: String(error.details.key), detail: String(error.details.detail), message: error.message };
  }
  throw new Error(`accepted: ${JSON.stringify(input)}`);
}

const registry = (extra: Record<string, unknown> = {}) => ({
  registries: [{ urls: ['https://registry.example.com'], ...extra }],
});

function files(map: Record<string, string>): (path: string) => Promise<string> {
  return async (path) => {
    const text = map[path];
    if (text === undefined) throw Object.assign(new Error(`ENOENT: ${path}`), { code: 'ENOENT' });
    return text;
  };
}

describe('parseSyncConfig', () => {
  it("reads zot's example section as it is", async () => {
    const config = await parseSyncConfig(
      {
        enable: true,
        credentialsFile: '/etc/zot/sync-auth.json',
        downloadDir: '/tmp/zot-sync',
        registries: [
          {
            urls: ['https://registry1:5000'],
            onDemand: false,
            pollInterval: '6h',
            tlsVerify: true,
            certDir: '/home/user/certs',
            maxRetries: 3,
            retryDelay: '5m',
            onlySigned: false,
            content: [
              { prefix: '/repo1/repo', tags: { regex: '4.*', semver: true } },
              { prefix: '/repo1/repo', destination: '/repo', stripPrefix: true },
              { prefix: '/repo2/repo*' },
              { prefix: '/repo3/**' },
              { prefix: '/repo4/**', tags: { excludeRegex: '.*-(amd64|arm64)$' } },
            ],
          },
          {
            urls: ['https://docker.io'],
            onDemand: true,
            tlsVerify: true,
            maxRetries: 6,
          },
        ],
      },
      {
        readFile: files({
          '/etc/zot/sync-auth.json': '{"registry1:5000": {"username": "u", "password": "p"}}',
        }),
      },
    );
    expect(config.enabled).toBe(true);
    expect(config.upstreams).toHaveLength(2);
    const [first, second] = config.upstreams;
    expect(first).toMatchObject({
      index: 0,
      urls: ['https://registry1:5000'],
      onDemand: false,
      pollIntervalMs: 6 * 3_600_000,
      tlsVerify: true,
      certDir: '/home/user/certs',
      maxRetries: 3,
      retryDelayMs: 300_000,
      referrers: true,
      concurrency: 4,
      checkIntervalMs: 300_000,
      credentials: { 'registry1:5000': { username: 'u', password: 'p' } },
    });
    expect(first?.content.map((rule) => rule.prefix)).toEqual([
      'repo1/repo',
      'repo1/repo',
      'repo2/repo*',
      'repo3/**',
      'repo4/**',
    ]);
    expect(first?.content[0]?.tags.regex?.source).toBe('4.*');
    expect(first?.content[0]?.tags.semver).toBe(true);
    expect(first?.content[1]).toMatchObject({ destination: 'repo', stripPrefix: true });
    expect(first?.content[4]?.tags.excludeRegex?.test('1.0-amd64')).toBe(true);
    expect(first?.content[4]?.tags.semver).toBe(false);
    expect(second).toMatchObject({
      index: 1,
      urls: ['https://docker.io'],
      onDemand: true,
      maxRetries: 6,
      credentials: {},
    });
    expect(second?.pollIntervalMs).toBeUndefined();
  });

  it('applies the defaults to a bare upstream', async () => {
    const config = await parseSyncConfig(registry());
    expect(config).toEqual({
      enabled: true,
      upstreams: [
        {
          index: 0,
          urls: ['https://registry.example.com'],
          onDemand: false,
          tlsVerify: true,
          maxRetries: 3,
          retryDelayMs: 1000,
          content: [],
          referrers: true,
          concurrency: 4,
          checkIntervalMs: 300_000,
          credentials: {},
        },
      ],
    });
    expect(await parseSyncConfig({})).toEqual({ enabled: true, upstreams: [] });
  });

  it('keeps enable: false, and still checks the section', async () => {
    expect((await parseSyncConfig({ enable: false, ...registry() })).enabled).toBe(false);
    expect((await refusal({ enable: false, ...registry({ urlz: [] }) })).key).toBe('registries[0].urlz');
    expect((await refusal({ enable: 'no' })).key).toBe('enable');
  });

  it('refuses unknown keys at every level, naming the key', async () => {
    expect(await refusal({ registry: [] })).toMatchObject({ key: 'registry' });
    expect((await refusal({ registry: [] })).detail).toMatch(
      /unknown key; known keys: enable, credentialsFile/,
    );
    expect((await refusal(registry({ tls_verify: false }))).detail).toMatch(/did you mean tlsVerify\?/);
    expect((await refusal(registry({ content: [{ prefix: 'a', tag: {} }] }))).key).toBe(
      'registries[0].content[0].tag',
    );
    const nested = await refusal(
      registry({
        content: [{ prefix: 'a' }, { prefix: 'b', tags: { regex: 'x', semVer: true, exclude: 'y' } }],
      }),
      { origin: '/etc/stowage/config.yml: sync' },
    );
    expect(nested.key).toBe('registries[0].content[1].tags.exclude');
    expect(nested.message).toMatch(
      /^\/etc\/stowage\/config\.yml: sync: registries\[0\]\.content\[1\]\.tags\.exclude: unknown key/,
    );
  });

  it("says which zot keys are not supported, rather than 'unknown'", async () => {
    expect(await refusal(registry({ maxRetryDelay: '10m' }))).toMatchObject({
      key: 'registries[0].maxRetryDelay',
      detail: expect.stringMatching(/zot's maxRetryDelay is not supported/),
    });
    expect((await refusal(registry({ credentialHelper: 'ecr' }))).detail).toMatch(
      /credentialHelper is not supported/,
    );
    // preserveDigest is what Stowage always does
    expect((await parseSyncConfig(registry({ preserveDigest: true }))).upstreams).toHaveLength(1);
  });

  it("matches keys case-insensitively, as zot's viper does, and refuses a key given twice", async () => {
    const config = await parseSyncConfig({
      Registries: [
        {
          URLs: ['https://r.example'],
          TLSVerify: false,
          pollinterval: '1h',
          Content: [{ Prefix: 'a/**', StripPrefix: true, Destination: '/m' }],
        },
      ],
    });
    expect(config.upstreams[0]).toMatchObject({ tlsVerify: false, pollIntervalMs: 3_600_000 });
    expect(config.upstreams[0]?.content[0]).toMatchObject({
      prefix: 'a/**',
      stripPrefix: true,
      destination: 'm',
    });
    expect(await refusal(registry({ onDemand: true, ondemand: false }))).toMatchObject({
      key: 'registries[0].onDemand',
      detail: expect.stringMatching(/given twice/),
    });
  });

  it('treats a null value (YAML `key:`) as absent', async () => {
    const config = await parseSyncConfig({
      credentialsFile: null,
      registries: [{ urls: ['https://r.example'], content: null, maxRetries: null }],
    });
    expect(config.upstreams[0]).toMatchObject({ content: [], maxRetries: 3 });
  });

  it('refuses a section that is not a mapping with an empty key (the caller names the section)', async () => {
    for (const input of [undefined, null, 'sync', ['a'], 3]) {
      const error = await refusal(input, { origin: 'config.yml: sync' });
      expect(error.key).toBe('');
      expect(error.message).toMatch(/^config\.yml: sync: expected a mapping/);
    }
  });

  it('normalises URLs to scheme://host[:port] and refuses the rest', async () => {
    const config = await parseSyncConfig(
      registry({
        urls: ['HTTPS://Registry.Example.com:443/', 'http://127.0.0.1:5000', 'https://mirror.example:8443'],
      }),
    );
    expect(config.upstreams[0]?.urls).toEqual([
      'https://registry.example.com',
      'http://127.0.0.1:5000',
      'https://mirror.example:8443',
    ]);
    const cases: [unknown, RegExp][] = [
      ['registry.example.com', /is not a URL/],
      ['ftp://registry.example.com', /only http:\/\/ and https:\/\//],
      ['https://registry.example.com/v2/library', /has no path \(got \/v2\/library\)/],
      ['https://user:secret@registry.example.com', /credentials do not belong in the URL/],
      ['https://registry.example.com/?x=1', /no query/],
      [5000, /expected a URL, got 5000/],
    ];
    for (const [url, detail] of cases) {
      const error = await refusal(registry({ urls: ['https://ok.example', url] }));
      expect(error.key).toBe('registries[0].urls[1]');
      expect(error.detail).toMatch(detail);
      expect(error.message).not.toMatch(/secret/);
    }
    expect((await refusal(registry({ urls: [] }))).key).toBe('registries[0].urls');
    expect((await refusal({ registries: [{}] })).key).toBe('registries[0].urls');
    expect(await refusal(registry({ urls: ['https://a.example', 'https://A.example/'] }))).toMatchObject({
      key: 'registries[0].urls[1]',
      detail: expect.stringMatching(/repeats urls\[0\]/),
    });
  });

  it('reads durations as Go durations or milliseconds', async () => {
    const config = await parseSyncConfig(
      registry({ pollInterval: '1h30m', retryDelay: '500ms', checkInterval: 2500 }),
    );
    expect(config.upstreams[0]).toMatchObject({
      pollIntervalMs: 5_400_000,
      retryDelayMs: 500,
      checkIntervalMs: 2500,
    });
    // 0 means no periodic sync, as absent
    expect(
      (await parseSyncConfig(registry({ pollInterval: '0s' }))).upstreams[0]?.pollIntervalMs,
    ).toBeUndefined();
    expect((await parseSyncConfig(registry({ checkInterval: '0' }))).upstreams[0]?.checkIntervalMs).toBe(0);
    for (const [key, value] of [
      ['pollInterval', '1d'],
      ['retryDelay', '-1s'],
      ['checkInterval', -5],
      ['pollInterval', '6 hours'],
      ['retryDelay', true],
    ] as const) {
      const error = await refusal(registry({ [key]: value }));
      expect(error.key).toBe(`registries[0].${key}`);
    }
    expect((await refusal(registry({ retryDelay: '-1s' }))).detail).toMatch(/negative/);
  });

  it('checks numbers and booleans', async () => {
    expect((await parseSyncConfig(registry({ maxRetries: 0 }))).upstreams[0]?.maxRetries).toBe(0);
    expect((await refusal(registry({ maxRetries: -1 }))).key).toBe('registries[0].maxRetries');
    expect((await refusal(registry({ maxRetries: 1.5 }))).key).toBe('registries[0].maxRetries');
    expect((await refusal(registry({ concurrency: 0 }))).key).toBe('registries[0].concurrency');
    expect((await refusal(registry({ onDemand: 'true' }))).key).toBe('registries[0].onDemand');
    expect((await refusal(registry({ tlsVerify: 1 }))).key).toBe('registries[0].tlsVerify');
    expect((await refusal(registry({ certDir: '' }))).key).toBe('registries[0].certDir');
  });

  it('refuses onlySigned: true (signature verification is not built), accepts false', async () => {
    expect(await refusal(registry({ onlySigned: true }))).toMatchObject({
      key: 'registries[0].onlySigned',
      detail: expect.stringMatching(/not built/),
    });
    expect((await parseSyncConfig(registry({ onlySigned: false }))).upstreams).toHaveLength(1);
  });

  it('parses platforms (registry and rule) with parsePlatform', async () => {
    const config = await parseSyncConfig(
      registry({
        platforms: ['linux/amd64', 'linux/arm64/v8', 'linux/arm'],
        content: [{ prefix: 'a', platforms: ['linux/ARM64'] }, { prefix: 'b' }],
      }),
    );
    const upstream = config.upstreams[0];
    expect(upstream?.platforms).toEqual([
      { os: 'linux', architecture: 'amd64' },
      { os: 'linux', architecture: 'arm64' },
      { os: 'linux', architecture: 'arm', variant: 'v7' },
    ]);
    expect(upstream?.content[0]?.platforms).toEqual([{ os: 'linux', architecture: 'arm64' }]);
    // a rule without platforms has none of its own (the upstream's apply)
    expect(upstream?.content[1]?.platforms).toBeUndefined();
    expect(await refusal(registry({ platforms: ['linux/amd64', 'linux'] }))).toMatchObject({
      key: 'registries[0].platforms[1]',
      detail: expect.stringMatching(/"linux" is not a platform/),
    });
    expect((await refusal(registry({ content: [{ prefix: 'a', platforms: ['a/b/c/d'] }] }))).key).toBe(
      'registries[0].content[0].platforms[0]',
    );
    expect((await refusal(registry({ platforms: 'linux/amd64' }))).detail).toMatch(/expected a list/);
  });

  it('gives each rule the upstream referrers unless it says otherwise', async () => {
    const config = await parseSyncConfig(
      registry({ referrers: false, content: [{ prefix: 'a' }, { prefix: 'b', referrers: true }] }),
    );
    expect(config.upstreams[0]?.referrers).toBe(false);
    expect(config.upstreams[0]?.content.map((rule) => rule.referrers)).toEqual([false, true]);
  });

  it('checks content prefixes', async () => {
    const config = await parseSyncConfig(
      registry({ content: [{ prefix: '/repo3/**' }, { prefix: 'repo2/repo*' }] }),
    );
    const [a, b] = config.upstreams[0]?.content ?? [];
    expect(a?.prefix).toBe('repo3/**');
    expect(a?.pattern.test('repo3/x/y')).toBe(true);
    expect(b?.pattern.test('repo2/repository')).toBe(true);
    expect(b?.pattern.test('repo2/repo/x')).toBe(false);
    const cases: [unknown, RegExp][] = [
      [undefined, /required/],
      ['', /empty/],
      ['repo/{a,b}', /glob character \{ is not supported/],
      ['repo/a?', /glob character \? is not supported/],
      ['repo/[ab]', /glob character \[ is not supported/],
      ['Repo/**', /can never match/],
      ['repo//x', /empty path segment/],
      ['repo/', /empty path segment/],
      [5, /expected a string/],
    ];
    for (const [prefix, detail] of cases) {
      const error = await refusal(
        registry({ content: [{ prefix: 'ok' }, prefix === undefined ? {} : { prefix }] }),
      );
      expect(error.key).toBe('registries[0].content[1].prefix');
      expect(error.detail).toMatch(detail);
    }
  });

  it('checks destination and stripPrefix', async () => {
    const config = await parseSyncConfig(
      registry({
        content: [
          { prefix: 'a/**', destination: '/mirror/' },
          { prefix: 'b/**', destination: '/' },
          { prefix: 'c/**', stripPrefix: true },
        ],
      }),
    );
    const rules = config.upstreams[0]?.content ?? [];
    expect(rules.map((rule) => rule.destination)).toEqual(['mirror', undefined, undefined]);
    expect(rules.map((rule) => rule.stripPrefix)).toEqual([false, false, true]);
    expect((await refusal(registry({ content: [{ prefix: 'a', destination: '/Mirror' }] }))).key).toBe(
      'registries[0].content[0].destination',
    );
    expect((await refusal(registry({ content: [{ prefix: 'a', destination: 5 }] }))).key).toBe(
      'registries[0].content[0].destination',
    );
    // stripping all of a literal prefix leaves nothing without a destination
    expect(
      await refusal(registry({ content: [{ prefix: '/repo1/repo', stripPrefix: true }] })),
    ).toMatchObject({
      key: 'registries[0].content[0].stripPrefix',
      detail: expect.stringMatching(/give a destination/),
    });
    expect((await refusal(registry({ content: [{ prefix: 'a', stripPrefix: 'yes' }] }))).key).toBe(
      'registries[0].content[0].stripPrefix',
    );
  });

  it('compiles tag expressions and names the one that does not', async () => {
    const rules = (
      await parseSyncConfig(
        registry({
          content: [{ prefix: 'a', tags: { regex: '(?i)^V[0-9]+$', excludeRegex: '(?P<arch>amd64)\\z' } }],
        }),
      )
    ).upstreams[0]?.content;
    expect(rules?.[0]?.tags.regex?.test('v12')).toBe(true);
    expect(rules?.[0]?.tags.regex?.test('x12')).toBe(false);
    expect(rules?.[0]?.tags.excludeRegex?.test('1.0-amd64')).toBe(true);
    expect(rules?.[0]?.tags.excludeRegex?.test('amd64-1.0')).toBe(false);
    const bad = await refusal(
      registry({ content: [{ prefix: 'a' }, { prefix: 'b', tags: { regex: '4.*(' } }] }),
    );
    expect(bad.key).toBe('registries[0].content[1].tags.regex');
    expect(bad.message).toMatch(/registries\[0\]\.content\[1\]\.tags\.regex: "4\.\*\(" does not compile/);
    expect((await refusal(registry({ content: [{ prefix: 'a', tags: { excludeRegex: '' } }] }))).key).toBe(
      'registries[0].content[0].tags.excludeRegex',
    );
    expect((await refusal(registry({ content: [{ prefix: 'a', tags: { semver: 'yes' } }] }))).key).toBe(
      'registries[0].content[0].tags.semver',
    );
    expect((await refusal(registry({ content: [{ prefix: 'a', tags: [] }] }))).key).toBe(
      'registries[0].content[0].tags',
    );
  });

  it('checks repositories (for upstreams without a catalog)', async () => {
    const config = await parseSyncConfig(registry({ repositories: ['library/alpine', '/library/nginx'] }));
    expect(config.upstreams[0]?.repositories).toEqual(['library/alpine', 'library/nginx']);
    expect((await refusal(registry({ repositories: ['ok', 'Not/OK'] }))).key).toBe(
      'registries[0].repositories[1]',
    );
  });

  describe('credentialsFile', () => {
    const section = (urls: string[]) => ({ credentialsFile: 'auth.json', registries: [{ urls }] });

    it('gives each upstream the entries for its hosts, keys as zot writes them (host:port)', async () => {
      const readFile = files({
        'auth.json': JSON.stringify({
          '127.0.0.1:5000': { username: 'alice', password: 'a' },
          'https://Mirror.Example:8443/': { Username: 'bob', Password: 'b' },
          'elsewhere.example': { username: 'carol', password: 'c' },
        }),
      });
      const config = await parseSyncConfig(
        section(['http://127.0.0.1:5000', 'https://mirror.example:8443']),
        { readFile },
      );
      expect(config.upstreams[0]?.credentials).toEqual({
        '127.0.0.1:5000': { username: 'alice', password: 'a' },
        'mirror.example:8443': { username: 'bob', password: 'b' },
      });
    });

    it("takes Docker Hub's names for each other", async () => {
      const readFile = files({ 'auth.json': '{"registry-1.docker.io": {"username": "d", "password": "h"}}' });
      const config = await parseSyncConfig(section(['https://docker.io']), { readFile });
      expect(config.upstreams[0]?.credentials).toEqual({ 'docker.io': { username: 'd', password: 'h' } });
    });

    it('is CONFIG_INVALID naming credentialsFile when missing or malformed, without quoting its content', async () => {
      const missing = await refusal(section(['https://r.example']), { readFile: files({}) });
      expect(missing).toMatchObject({ key: 'credentialsFile', detail: 'cannot read auth.json (ENOENT)' });
      const malformed = [
        ['{"r.example": {"username": "u", "password": "hunter2"', /not valid JSON/],
        ['["hunter2"]', /expected a mapping/],
        ['{"r.example": "hunter2"}', /expected \{ username, password \}/],
        ['{"r.example": {"username": "u"}}', /must both be strings/],
        ['{"r.example": {"username": "u", "password": "hunter2", "token": "x"}}', /unknown key "token"/],
        [
          '{"r.example": {"username": "u", "password": "p"}, "R.example": {"username": "u", "password": "p"}}',
          /twice/,
        ],
      ] as const;
      for (const [text, detail] of malformed) {
        const error = await refusal(section(['https://r.example']), {
          readFile: files({ 'auth.json': text }),
        });
        expect(error.key).toBe('credentialsFile');
        expect(error.detail).toMatch(detail);
        expect(error.message).not.toMatch(/hunter2/);
      }
    });

    it('reads the file from disk by default', async () => {
      const error = await refusal({ credentialsFile: '/nonexistent/stowage-sync-auth.json', registries: [] });
      expect(error).toMatchObject({ key: 'credentialsFile', detail: expect.stringMatching(/ENOENT/) });
    });
  });
});

describe('compileGoRegExp', () => {
  it('turns Go-only syntax into JavaScript', () => {
    expect(compileGoRegExp('(?i)abc').flags).toBe('i');
    expect(compileGoRegExp('(?is)a.c').test('A\nC')).toBe(true);
    expect(compileGoRegExp('(?P<major>\\d+)\\.').exec('12.3')?.groups?.major).toBe('12');
    expect(compileGoRegExp('\\Av1').test('xv1')).toBe(false);
    expect(compileGoRegExp('\\Av1').test('v1x')).toBe(true);
    expect(compileGoRegExp('x\\z').test('ax')).toBe(true);
    expect(compileGoRegExp('x\\z').test('xa')).toBe(false);
    // an escaped backslash before the construct is left alone
    expect(compileGoRegExp('\\\\A').test('\\A')).toBe(true);
    // unanchored, as Go's MatchString
    expect(compileGoRegExp('4.*').test('v4.1')).toBe(true);
  });

  it('refuses what it cannot read the same way', () => {
    expect(() => compileGoRegExp('(?U)a+')).toThrow(/flag U/);
    expect(() => compileGoRegExp('[[:alpha:]]+')).toThrow(/POSIX/);
    expect(() => compileGoRegExp('(?m)\\Aa')).toThrow(/m flag/);
    expect(() => compileGoRegExp('a(')).toThrow();
  });
});

describe('proxyToSyncConfig', () => {
  it("is one on-demand upstream with distribution's defaults", async () => {
    const config = await proxyToSyncConfig({ remoteurl: 'https://registry-1.docker.io' });
    expect(config).toEqual({
      enabled: true,
      upstreams: [
        {
          index: 0,
          urls: ['https://registry-1.docker.io'],
          onDemand: true,
          tlsVerify: true,
          maxRetries: 3,
          retryDelayMs: 1000,
          content: [],
          referrers: true,
          concurrency: 4,
          checkIntervalMs: 168 * 3_600_000,
          credentials: {},
        },
      ],
    });
    expect(config.upstreams[0]?.pollIntervalMs).toBeUndefined();
  });

  it('takes the credentials for that host and the ttl as checkInterval (0: for ever)', async () => {
    const config = await proxyToSyncConfig({
      remoteurl: 'https://Registry.Example.com:5000/',
      username: 'alice',
      password: 's3cret',
      ttl: '24h',
    });
    expect(config.upstreams[0]).toMatchObject({
      urls: ['https://registry.example.com:5000'],
      checkIntervalMs: 86_400_000,
      credentials: { 'registry.example.com:5000': { username: 'alice', password: 's3cret' } },
    });
    const forever = await proxyToSyncConfig({ remoteurl: 'https://r.example', ttl: 0 });
    expect(forever.upstreams[0]?.checkIntervalMs).toBe(Number.POSITIVE_INFINITY);
  });

  it('refuses what distribution would not take', async () => {
    const parse = (input: unknown) => proxyToSyncConfig(input);
    expect((await refusal({}, {}, parse)).key).toBe('remoteurl');
    expect((await refusal({ remoteurl: 'registry.example.com' }, {}, parse)).key).toBe('remoteurl');
    expect((await refusal({ remoteurl: 'https://r.example', username: 'u' }, {}, parse)).key).toBe(
      'password',
    );
    expect((await refusal({ remoteurl: 'https://r.example', password: 'p' }, {}, parse)).key).toBe(
      'username',
    );
    expect((await refusal({ remoteurl: 'https://r.example', ttl: '1w' }, {}, parse)).key).toBe('ttl');
    expect((await refusal({ remoteurl: 'https://r.example', exec: {} }, {}, parse)).key).toBe('exec');
    expect((await refusal('https://r.example', { origin: 'config.yml: proxy' }, parse)).key).toBe('');
  });
});
