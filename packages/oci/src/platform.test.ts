import { describe, expect, it } from 'vitest';
import { isStowageError } from './errors.js';
import { MediaType } from './media-types.js';
import {
  defaultPlatform,
  formatPlatform,
  normalizePlatform,
  parsePlatform,
  platformMatches,
  selectManifest,
} from './platform.js';
import type { Descriptor, ImageIndex, Platform } from './types.js';

describe('parsePlatform and normalizePlatform', () => {
  it.each<[string, Platform]>([
    ['linux/amd64', { os: 'linux', architecture: 'amd64' }],
    ['linux/x86_64', { os: 'linux', architecture: 'amd64' }],
    ['Linux/X86-64', { os: 'linux', architecture: 'amd64' }],
    ['linux/aarch64', { os: 'linux', architecture: 'arm64' }],
    ['linux/arm64/v8', { os: 'linux', architecture: 'arm64' }],
    ['linux/arm64/8', { os: 'linux', architecture: 'arm64' }],
    ['linux/arm', { os: 'linux', architecture: 'arm', variant: 'v7' }],
    ['linux/arm/v6', { os: 'linux', architecture: 'arm', variant: 'v6' }],
    ['linux/armhf', { os: 'linux', architecture: 'arm', variant: 'v7' }],
    ['linux/armel', { os: 'linux', architecture: 'arm', variant: 'v6' }],
    ['linux/i386', { os: 'linux', architecture: '386' }],
    ['linux/amd64/v3', { os: 'linux', architecture: 'amd64', variant: 'v3' }],
    ['macos/arm64', { os: 'darwin', architecture: 'arm64' }],
    ['windows/amd64', { os: 'windows', architecture: 'amd64' }],
  ])('%s', (input, expected) => {
    expect(parsePlatform(input)).toEqual(expected);
  });

  it.each([
    '',
    'linux',
    'linux/',
    '/amd64',
    'linux/amd64/v8/x',
    'linux/am d64',
    'linux//amd64',
    'linux/amd64\n',
  ])('refuses %j', (input) => {
    try {
      parsePlatform(input);
      expect.unreachable();
    } catch (error) {
      expect(isStowageError(error, 'PLATFORM_INVALID')).toBe(true);
    }
  });

  it('keeps other fields', () => {
    expect(normalizePlatform({ os: 'windows', architecture: 'AMD64', 'os.version': '10.0.17763.1' })).toEqual(
      {
        os: 'windows',
        architecture: 'amd64',
        'os.version': '10.0.17763.1',
      },
    );
  });

  it('formats', () => {
    expect(formatPlatform(parsePlatform('linux/arm/v6'))).toBe('linux/arm/v6');
    expect(formatPlatform({ os: 'linux', architecture: 'amd64' })).toBe('linux/amd64');
  });
});

describe('platformMatches', () => {
  it.each<[string, Platform, boolean]>([
    ['linux/amd64', { os: 'linux', architecture: 'amd64' }, true],
    ['linux/amd64', { os: 'linux', architecture: 'arm64' }, false],
    ['linux/amd64', { os: 'windows', architecture: 'amd64' }, false],
    ['linux/arm64', { os: 'linux', architecture: 'arm64', variant: 'v8' }, true],
    ['linux/arm64/v8', { os: 'linux', architecture: 'arm64' }, true],
    ['linux/arm/v7', { os: 'linux', architecture: 'arm', variant: 'v6' }, false],
    ['linux/arm', { os: 'linux', architecture: 'arm', variant: 'v7' }, true],
    ['linux/arm', { os: 'linux', architecture: 'arm' }, true],
    ['linux/amd64', { os: 'linux', architecture: 'amd64', variant: 'v2' }, true],
    ['linux/amd64/v3', { os: 'linux', architecture: 'amd64' }, false],
    ['linux/x86_64', { os: 'linux', architecture: 'amd64' }, true],
  ])('%s ~ %j is %s', (wanted, candidate, expected) => {
    expect(platformMatches(wanted, candidate)).toBe(expected);
  });

  it('compares os.version only when both have it', () => {
    const win = { os: 'windows', architecture: 'amd64' };
    expect(platformMatches({ ...win, 'os.version': '1' }, { ...win, 'os.version': '2' })).toBe(false);
    expect(platformMatches({ ...win, 'os.version': '1' }, win)).toBe(true);
  });
});

describe('selectManifest', () => {
  const desc = (n: number, platform?: Platform): Descriptor => ({
    mediaType: MediaType.OciManifest,
    digest: `sha256:${String(n).repeat(64).slice(0, 64)}`,
    size: n,
    ...(platform ? { platform } : {}),
  });
  const index: ImageIndex = {
    schemaVersion: 2,
    manifests: [
      desc(1),
      desc(2, { os: 'unknown', architecture: 'unknown' }),
      desc(3, { os: 'linux', architecture: 'arm', variant: 'v6' }),
      desc(4, { os: 'linux', architecture: 'arm' }),
      desc(5, { os: 'linux', architecture: 'arm', variant: 'v7' }),
      desc(6, { os: 'linux', architecture: 'amd64' }),
      desc(7, { os: 'linux', architecture: 'arm64', variant: 'v8' }),
    ],
  };

  it('picks the matching child, preferring an exact variant', () => {
    expect(selectManifest(index, 'linux/amd64')?.size).toBe(6);
    expect(selectManifest(index, 'linux/arm/v6')?.size).toBe(3);
    expect(selectManifest(index, 'linux/arm64')?.size).toBe(7);
    expect(selectManifest(index, { os: 'linux', architecture: 'arm', variant: 'v7' })?.size).toBe(4);
    expect(selectManifest(index, 'windows/amd64')).toBeUndefined();
  });
});

describe('defaultPlatform', () => {
  it('describes this process', () => {
    const platform = defaultPlatform();
    expect(platform.os).toBe(process.platform === 'win32' ? 'windows' : process.platform);
    expect(platform.architecture).not.toBe('x64');
  });
});
