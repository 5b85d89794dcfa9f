import { describe, expect, it } from 'vitest';
import { compareNames, formatAge, formatBytes, matchesFilter, platformLabel, shortDigest } from './format.js';

describe('format', () => {
  it('prints sizes in decimal units', () => {
    expect([0, 999, 1000, 12_345, 3_400_000, 1_500_000_000].map(formatBytes)).toEqual([
      '0 B',
      '999 B',
      '1.0 kB',
      '12 kB',
      '3.4 MB',
      '1.5 GB',
    ]);
    expect(formatBytes(undefined)).toBe('—');
  });

  it('prints ages relative to now', () => {
    const now = Date.parse('2026-12-04T12:00:00Z');
    expect(formatAge('2026-12-01T12:00:00Z', now)).toBe('3 days ago');
    expect(formatAge('2026-12-04T11:59:50Z', now)).toBe('this minute');
    expect(formatAge('2024-12-04T12:00:00Z', now)).toBe('2 years ago');
    expect(formatAge('not a date', now)).toBeUndefined();
    expect(formatAge(undefined, now)).toBeUndefined();
  });

  it('sorts tags naturally', () => {
    expect(['v1.10', 'v1.9', 'latest', 'v1.2', '3.10', '3.9'].sort(compareNames)).toEqual([
      '3.9',
      '3.10',
      'latest',
      'v1.2',
      'v1.9',
      'v1.10',
    ]);
  });

  it('filters by every word', () => {
    expect(matchesFilter('team/web-frontend', 'web')).toBe(true);
    expect(matchesFilter('team/web-frontend', 'TEAM front')).toBe(true);
    expect(matchesFilter('team/web-frontend', 'team back')).toBe(false);
    expect(matchesFilter('anything', '  ')).toBe(true);
  });

  it('names platforms and attestations', () => {
    const digest = `sha256:${'b'.repeat(64)}`;
    expect(platformLabel({ digest, platform: { os: 'linux', architecture: 'arm64', variant: 'v8' } })).toBe(
      'linux/arm64/v8',
    );
    expect(
      platformLabel({
        digest,
        platform: { os: 'windows', architecture: 'amd64', 'os.version': '10.0.17763.1' },
      }),
    ).toBe('windows/amd64 10.0.17763.1');
    expect(
      platformLabel({
        digest,
        platform: { os: 'unknown', architecture: 'unknown' },
        annotations: {
          'vnd.docker.reference.type': 'attestation-manifest',
          'vnd.docker.reference.digest': digest,
        },
      }),
    ).toBe(`attestation of ${shortDigest(digest)}`);
    expect(shortDigest(digest)).toBe(`sha256:${'b'.repeat(12)}`);
  });
});
