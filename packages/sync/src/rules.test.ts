import { describe, expect, it } from 'vitest';
import { type ContentRuleInput, parseSyncConfig, type UpstreamConfig } from './config.js';
import { filterTags, isSemverTag, matchLocalRepository, matchUpstreamRepository } from './rules.js';

async function upstreamWith(
  content: readonly ContentRuleInput[] | undefined,
  extra: Record<string, unknown> = {},
): Promise<UpstreamConfig> {
  const config = await parseSyncConfig({
    registries: [{ urls: ['https://upstream.example'], ...(content ? { content } : {}), ...extra }],
  });
  const upstream = config.upstreams[0];
  if (!upstream) throw new Error('no upstream');
  return upstream;
}

/** Local name of each remote (undefined: not mirrored). */
function locals(upstream: UpstreamConfig, remotes: readonly string[]): Record<string, string | undefined> {
  return Object.fromEntries(
    remotes.map((remote) => [remote, matchUpstreamRepository(upstream, remote)?.local]),
  );
}

/** Remote name of each local (undefined: no rule maps anything to it). */
function remotes(upstream: UpstreamConfig, names: readonly string[]): Record<string, string | undefined> {
  return Object.fromEntries(names.map((local) => [local, matchLocalRepository(upstream, local)?.remote]));
}

describe('matchUpstreamRepository', () => {
  it('a literal prefix matches that repository only', async () => {
    const upstream = await upstreamWith([{ prefix: '/repo1/repo' }]);
    expect(locals(upstream, ['repo1/repo', 'repo1/repo2', 'repo1', 'repo1/repo/x', 'x/repo1/repo'])).toEqual({
      'repo1/repo': 'repo1/repo',
      'repo1/repo2': undefined,
      repo1: undefined,
      'repo1/repo/x': undefined,
      'x/repo1/repo': undefined,
    });
  });

  it('`*` matches within one segment', async () => {
    const upstream = await upstreamWith([{ prefix: '/repo2/repo*' }]);
    expect(
      locals(upstream, ['repo2/repo', 'repo2/repository', 'repo2/repo/x', 'repo2', 'repo2/other']),
    ).toEqual({
      'repo2/repo': 'repo2/repo',
      'repo2/repository': 'repo2/repository',
      'repo2/repo/x': undefined,
      repo2: undefined,
      'repo2/other': undefined,
    });
  });

  it('`**` matches any depth, the bare prefix included', async () => {
    const upstream = await upstreamWith([{ prefix: '/repo3/**' }]);
    expect(locals(upstream, ['repo3', 'repo3/a', 'repo3/a/b/c', 'repo30', 'x/repo3/a'])).toEqual({
      repo3: 'repo3',
      'repo3/a': 'repo3/a',
      'repo3/a/b/c': 'repo3/a/b/c',
      repo30: undefined,
      'x/repo3/a': undefined,
    });
  });

  it('the first matching rule wins', async () => {
    const upstream = await upstreamWith([
      { prefix: 'team/web', destination: 'first' },
      { prefix: 'team/**', destination: 'second' },
    ]);
    expect(matchUpstreamRepository(upstream, 'team/web')).toMatchObject({
      rule: { destination: 'first' },
      remote: 'team/web',
      local: 'first/team/web',
    });
    expect(matchUpstreamRepository(upstream, 'team/api')?.local).toBe('second/team/api');
  });

  it('destination without stripPrefix puts the whole upstream name under it', async () => {
    const upstream = await upstreamWith([{ prefix: '/repo3/**', destination: '/mirror' }]);
    expect(locals(upstream, ['repo3', 'repo3/a/b', 'other'])).toEqual({
      repo3: 'mirror/repo3',
      'repo3/a/b': 'mirror/repo3/a/b',
      other: undefined,
    });
  });

  it('stripPrefix drops the literal segments of the prefix before joining the destination', async () => {
    const upstream = await upstreamWith([
      { prefix: '/repo1/repo', destination: '/repo', stripPrefix: true },
      { prefix: '/repo3/**', destination: '/mirror', stripPrefix: true },
      { prefix: 'library/**', stripPrefix: true },
      { prefix: 'repo2/repo*', destination: 'm', stripPrefix: true },
      { prefix: 'a/*/c', destination: 'abc', stripPrefix: true },
    ]);
    expect(
      locals(upstream, [
        'repo1/repo',
        'repo3',
        'repo3/a/b',
        'library/nginx',
        'library',
        'repo2/repository',
        'a/b/c',
      ]),
    ).toEqual({
      'repo1/repo': 'repo',
      repo3: 'mirror',
      'repo3/a/b': 'mirror/a/b',
      'library/nginx': 'nginx',
      // stripping all of it without a destination leaves no name
      library: undefined,
      // whole segments only (zot would cut the string `repo2/repo` and leave `sitory`)
      'repo2/repository': 'm/repository',
      'a/b/c': 'abc/b/c',
    });
  });

  it('carries the rule: its platforms and tags, the upstream referrers unless the rule says', async () => {
    const upstream = await upstreamWith(
      [
        { prefix: 'arm/**', platforms: ['linux/arm64'], referrers: true },
        { prefix: '**', tags: { semver: true } },
      ],
      { platforms: ['linux/amd64'], referrers: false },
    );
    const arm = matchUpstreamRepository(upstream, 'arm/app');
    expect(arm?.rule.platforms).toEqual([{ os: 'linux', architecture: 'arm64' }]);
    expect(arm?.rule.referrers).toBe(true);
    const other = matchUpstreamRepository(upstream, 'x/app');
    // no platforms of its own: the upstream's (linux/amd64) apply
    expect(other?.rule.platforms).toBeUndefined();
    expect(other?.rule.referrers).toBe(false);
    expect(other?.rule.tags.semver).toBe(true);
  });

  it('an upstream without content rules mirrors everything under its own name', async () => {
    const upstream = await upstreamWith(undefined, { referrers: false });
    const match = matchUpstreamRepository(upstream, 'library/alpine');
    expect(match).toMatchObject({ remote: 'library/alpine', local: 'library/alpine' });
    expect(match?.rule.referrers).toBe(false);
    expect(match?.rule.platforms).toBeUndefined();
    expect(filterTags(match!.rule, ['latest', 'v1', 'sha256-abc.sig'])).toEqual([
      'latest',
      'v1',
      'sha256-abc.sig',
    ]);
    expect(matchUpstreamRepository(upstream, 'a/b/c')?.local).toBe('a/b/c');
  });
});

describe('matchLocalRepository', () => {
  it('finds the upstream name a local name comes from', async () => {
    const upstream = await upstreamWith([
      { prefix: '/repo1/repo', destination: '/repo', stripPrefix: true },
      { prefix: '/repo3/**', destination: '/mirror', stripPrefix: true },
      { prefix: 'team/**', destination: 'vendor' },
      { prefix: 'library/**', stripPrefix: true },
      { prefix: 'plain/*' },
    ]);
    expect(
      remotes(upstream, [
        'repo',
        'mirror',
        'mirror/a/b',
        'vendor/team/web',
        'nginx',
        'plain/x',
        'vendor/other/web',
        'vendor',
      ]),
    ).toEqual({
      repo: 'repo1/repo',
      mirror: 'repo3',
      'mirror/a/b': 'repo3/a/b',
      'vendor/team/web': 'team/web',
      // the first rule that maps some upstream name to it: stripped `library/**`
      nginx: 'library/nginx',
      // `library/**` stripped maps library/plain/x here first
      'plain/x': 'library/plain/x',
      'vendor/other/web': 'library/vendor/other/web',
      vendor: 'library/vendor',
    });
  });

  it('refuses names no rule maps to', async () => {
    const upstream = await upstreamWith([
      { prefix: '/repo3/**', destination: '/mirror', stripPrefix: true },
      { prefix: 'team/**', destination: 'vendor' },
      { prefix: 'repo2/repo*' },
    ]);
    expect(
      remotes(upstream, [
        'other',
        'vendor',
        'vendor/x/web',
        'mirrorx/a',
        'repo2/other',
        'repo2/repo/x',
        'repo2/repox',
      ]),
    ).toEqual({
      other: undefined,
      // `vendor` alone would come from `team`, which `team/**` does not map to `vendor`
      vendor: undefined,
      'vendor/x/web': undefined,
      'mirrorx/a': undefined,
      'repo2/other': undefined,
      'repo2/repo/x': undefined,
      'repo2/repox': 'repo2/repox',
    });
  });

  it('is the inverse of matchUpstreamRepository for every name a rule covers', async () => {
    const upstream = await upstreamWith([
      { prefix: '/repo1/repo', destination: '/repo', stripPrefix: true },
      { prefix: '/repo3/**', destination: '/mirror', stripPrefix: true },
      { prefix: 'team/**', destination: 'vendor' },
      { prefix: 'library/*', stripPrefix: true },
    ]);
    for (const remote of [
      'repo1/repo',
      'repo3',
      'repo3/a',
      'repo3/a/b',
      'team/web',
      'team',
      'library/nginx',
    ]) {
      const forward = matchUpstreamRepository(upstream, remote);
      expect(forward, remote).toBeDefined();
      const back = matchLocalRepository(upstream, forward!.local);
      expect(back?.remote, remote).toBe(remote);
      expect(back?.rule, remote).toBe(forward?.rule);
    }
  });

  it('an upstream without content rules takes every name as it is', async () => {
    const upstream = await upstreamWith(undefined);
    expect(matchLocalRepository(upstream, 'library/alpine')).toMatchObject({
      remote: 'library/alpine',
      local: 'library/alpine',
      rule: { prefix: '**', stripPrefix: false },
    });
  });
});

describe('filterTags', () => {
  const tags = [
    'latest',
    '3.0',
    '4.0',
    '4.1-amd64',
    'v4.2',
    'x4y',
    '4.3-arm64',
    '5.0.0-rc.1',
    'sha256-abc.sig',
  ];

  async function rule(tagRules: NonNullable<ContentRuleInput['tags']>) {
    const upstream = await upstreamWith([{ prefix: '**', tags: tagRules }]);
    return upstream.content[0]!;
  }

  it('regex keeps matching tags, unanchored as Go matches', async () => {
    expect(filterTags(await rule({ regex: '4.*' }), tags)).toEqual([
      '4.0',
      '4.1-amd64',
      'v4.2',
      'x4y',
      '4.3-arm64',
    ]);
    expect(filterTags(await rule({ regex: '^4\\.' }), tags)).toEqual(['4.0', '4.1-amd64', '4.3-arm64']);
  });

  it('excludeRegex drops matching tags', async () => {
    expect(filterTags(await rule({ excludeRegex: '.*-(amd64|arm64)$' }), tags)).toEqual([
      'latest',
      '3.0',
      '4.0',
      'v4.2',
      'x4y',
      '5.0.0-rc.1',
      'sha256-abc.sig',
    ]);
  });

  it('semver keeps versions only', async () => {
    expect(filterTags(await rule({ semver: true }), tags)).toEqual([
      '3.0',
      '4.0',
      '4.1-amd64',
      'v4.2',
      '4.3-arm64',
      '5.0.0-rc.1',
    ]);
  });

  it('applies regex, then excludeRegex, then semver, keeping the order given', async () => {
    const all = await rule({ regex: '4', excludeRegex: 'arm64', semver: true });
    expect(filterTags(all, tags)).toEqual(['4.0', '4.1-amd64', 'v4.2']);
    expect(filterTags(all, ['v4.2', '4.0'])).toEqual(['v4.2', '4.0']);
    expect(filterTags(all, [])).toEqual([]);
  });

  it('keeps every tag without tag rules', async () => {
    const upstream = await upstreamWith([{ prefix: '**' }]);
    expect(filterTags(upstream.content[0]!, tags)).toEqual(tags);
  });
});

describe('isSemverTag (Masterminds semver v1 NewVersion, as zot uses)', () => {
  it('accepts one to three numbers, a v, a pre-release and build metadata', () => {
    for (const tag of [
      '1',
      '1.2',
      '1.2.3',
      'v1',
      'v1.2',
      'v1.2.3',
      'v1.2.3-rc.1',
      '1.2-rc1',
      '1.0.0-alpha-beta.2',
      '1.0.0+build.5',
      '1.0.0-alpha+001',
      '01.02.03',
      '9223372036854775807',
    ]) {
      expect(isSemverTag(tag), tag).toBe(true);
    }
  });

  it('refuses the rest', () => {
    for (const tag of [
      'latest',
      'v',
      'V1.2.3',
      'vv1',
      '1.2.3.4',
      '1.',
      '.1',
      '1.2.3-',
      '1.2.3-rc..1',
      '1.2.3_rc',
      '1.2.3+',
      '-1.2.3',
      'sha256-abc.sig',
      ' 1.2.3',
      '9223372036854775808',
      '1.9223372036854775808',
    ]) {
      expect(isSemverTag(tag), tag).toBe(false);
    }
  });
});
