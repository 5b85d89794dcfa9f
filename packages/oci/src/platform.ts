import { PlatformParseError } from './errors.js';
import type { Descriptor, ImageIndex, Platform } from './types.js';

const partPattern = /^[A-Za-z0-9_.-]+$/;

const archAliases: Readonly<Record<string, { architecture: string; variant?: string }>> = {
  x86_64: { architecture: 'amd64' },
  'x86-64': { architecture: 'amd64' },
  aarch64: { architecture: 'arm64' },
  i386: { architecture: '386' },
  i686: { architecture: '386' },
  armhf: { architecture: 'arm', variant: 'v7' },
  armel: { architecture: 'arm', variant: 'v6' },
};

const osAliases: Readonly<Record<string, string>> = { macos: 'darwin' };

/** Variants implied when none is given: arm64 is v8, arm is v7. */
const defaultVariants: Readonly<Record<string, string>> = { arm64: 'v8', arm: 'v7' };

/**
 * Normalizes a platform the way containerd does: lower-case os and
 * architecture, architecture aliases (`x86_64` → `amd64`, `aarch64` → `arm64`,
 * `armhf` → `arm/v7`), `macos` → `darwin`, and numeric variants for arm
 * (`8` → `v8`). The default variant of `arm64` (`v8`) is dropped, so
 * `linux/arm64` and `linux/arm64/v8` normalize to the same value; `arm`
 * keeps an explicit variant and gets `v7` when it has none.
 */
export function normalizePlatform(platform: Platform): Platform {
  let os = platform.os.toLowerCase();
  os = osAliases[os] ?? os;
  let architecture = platform.architecture.toLowerCase();
  let variant = platform.variant?.toLowerCase();
  const alias = archAliases[architecture];
  if (alias) {
    architecture = alias.architecture;
    variant = variant ?? alias.variant;
  }
  if (
    variant !== undefined &&
    /^[0-9]+$/.test(variant) &&
    (architecture === 'arm' || architecture === 'arm64')
  ) {
    variant = `v${variant}`;
  }
  if (architecture === 'arm64' && variant === 'v8') variant = undefined;
  if (architecture === 'arm' && variant === undefined) variant = 'v7';
  if (variant === '') variant = undefined;
  const { variant: _ignored, ...rest } = platform;
  return { ...rest, os, architecture, ...(variant === undefined ? {} : { variant }) };
}

/** Parses `os/arch[/variant]` into a normalized platform; raises `PlatformParseError`. */
export function parsePlatform(input: string): Platform {
  if (typeof input !== 'string') throw new PlatformParseError(String(input), 'not a string');
  const parts = input.split('/');
  if (parts.length < 2 || parts.length > 3) throw new PlatformParseError(input, 'expected os/arch[/variant]');
  for (const part of parts) {
    if (!partPattern.test(part)) throw new PlatformParseError(input, 'each part must be [A-Za-z0-9_.-]+');
  }
  const [os, architecture, variant] = parts as [string, string, string | undefined];
  return normalizePlatform({ os, architecture, ...(variant === undefined ? {} : { variant }) });
}

/** `os/arch[/variant]` of a platform, as written (normalize first for a canonical string). */
export function formatPlatform(platform: Platform): string {
  return `${platform.os}/${platform.architecture}${platform.variant ? `/${platform.variant}` : ''}`;
}

function effectiveVariant(platform: Platform): string | undefined {
  return platform.variant ?? defaultVariants[platform.architecture];
}

/**
 * Whether `candidate` serves a request for `wanted`: same os and
 * architecture after normalization; when `wanted` names a variant (or has a
 * default one) it must be equal, taking defaults into account; `os.version`
 * is compared only when both sides give one.
 */
export function platformMatches(wanted: Platform | string, candidate: Platform): boolean {
  const want = typeof wanted === 'string' ? parsePlatform(wanted) : normalizePlatform(wanted);
  const have = normalizePlatform(candidate);
  if (want.os !== have.os || want.architecture !== have.architecture) return false;
  const wantVariant = effectiveVariant(want);
  if (wantVariant !== undefined && wantVariant !== effectiveVariant(have)) return false;
  const wantVersion = want['os.version'];
  const haveVersion = have['os.version'];
  return wantVersion === undefined || haveVersion === undefined || wantVersion === haveVersion;
}

/**
 * The manifest of an index for a platform: descriptors without a platform and
 * attestations (`unknown/unknown`) are skipped; an exact variant match wins
 * over a match through defaults; otherwise the first match in index order.
 */
export function selectManifest(index: ImageIndex, wanted: Platform | string): Descriptor | undefined {
  const want = typeof wanted === 'string' ? parsePlatform(wanted) : normalizePlatform(wanted);
  let fallback: Descriptor | undefined;
  for (const descriptor of index.manifests) {
    const platform = descriptor.platform;
    if (!platform || platform.os === 'unknown' || platform.architecture === 'unknown') continue;
    if (!platformMatches(want, platform)) continue;
    if (normalizePlatform(platform).variant === want.variant) return descriptor;
    fallback ??= descriptor;
  }
  return fallback;
}

const nodeArch: Readonly<Record<string, { architecture: string; variant?: string }>> = {
  x64: { architecture: 'amd64' },
  arm64: { architecture: 'arm64' },
  arm: { architecture: 'arm', variant: 'v7' },
  ia32: { architecture: '386' },
  ppc64: { architecture: 'ppc64le' },
  s390x: { architecture: 's390x' },
  riscv64: { architecture: 'riscv64' },
  loong64: { architecture: 'loong64' },
  mips: { architecture: 'mips' },
  mipsel: { architecture: 'mipsle' },
};

/** The platform of the running Node process (`linux/amd64` on a typical server). */
export function defaultPlatform(): Platform {
  const arch = nodeArch[process.arch] ?? { architecture: process.arch };
  const os = process.platform === 'win32' ? 'windows' : process.platform;
  return normalizePlatform({ os, ...arch });
}
