// How numbers, dates, digests, platforms and names are shown, and how lists are sorted and filtered.
import type { Descriptor } from './api.js';

const UNITS = ['B', 'kB', 'MB', 'GB', 'TB'];

/** `1234567` → `1.2 MB` (decimal units, as docker and podman print sizes). */
export function formatBytes(bytes: number | undefined): string {
  if (bytes === undefined || !Number.isFinite(bytes) || bytes < 0) return '—';
  let value = bytes;
  let unit = 0;
  while (value >= 1000 && unit < UNITS.length - 1) {
    value /= 1000;
    unit++;
  }
  return unit === 0 ? `${value} B` : `${value < 10 ? value.toFixed(1) : Math.round(value)} ${UNITS[unit]}`;
}

const STEPS: readonly [Intl.RelativeTimeFormatUnit, number][] = [
  ['year', 365 * 24 * 3600],
  ['month', 30 * 24 * 3600],
  ['week', 7 * 24 * 3600],
  ['day', 24 * 3600],
  ['hour', 3600],
  ['minute', 60],
];

/** `2026-12-01T10:00:00Z` → `3 days ago`; undefined for a missing or unparsable date. */
export function formatAge(iso: string | undefined, now = Date.now()): string | undefined {
  if (!iso) return undefined;
  const time = Date.parse(iso);
  if (Number.isNaN(time)) return undefined;
  const seconds = Math.round((time - now) / 1000);
  const relative = new Intl.RelativeTimeFormat('en', { numeric: 'auto' });
  for (const [unit, length] of STEPS) {
    if (Math.abs(seconds) >= length) return relative.format(Math.trunc(seconds / length), unit);
  }
  return relative.format(0, 'minute');
}

/** `sha256:0123456789abcdef…` → `sha256:0123456789ab`. */
export function shortDigest(digest: string): string {
  const colon = digest.indexOf(':');
  return colon === -1 ? digest.slice(0, 12) : digest.slice(0, colon + 13);
}

/** `linux/arm64/v8`, `windows/amd64 10.0.17763.1`; an attestation (docker buildx) says whose it is. */
export function platformLabel(descriptor: Descriptor): string {
  const annotations = descriptor.annotations ?? {};
  if (annotations['vnd.docker.reference.type'] === 'attestation-manifest') {
    const of = annotations['vnd.docker.reference.digest'];
    return of ? `attestation of ${shortDigest(of)}` : 'attestation';
  }
  const platform = descriptor.platform;
  if (!platform) return 'unknown';
  const parts = [platform.os ?? '?', platform.architecture ?? '?'];
  if (platform.variant) parts.push(platform.variant);
  const version = platform['os.version'];
  return version ? `${parts.join('/')} ${version}` : parts.join('/');
}

const collator = new Intl.Collator('en', { numeric: true });

/** Natural order: `v1.2` before `v1.10`, `3.9` before `3.10`. */
export function compareNames(a: string, b: string): number {
  return collator.compare(a, b) || (a < b ? -1 : a > b ? 1 : 0);
}

/** Every word of the filter (split at spaces, case ignored) appears in the name. */
export function matchesFilter(name: string, filter: string): boolean {
  const lower = name.toLowerCase();
  return filter
    .toLowerCase()
    .split(/\s+/)
    .every((word) => word === '' || lower.includes(word));
}

export function formatCount(n: number): string {
  return n.toLocaleString('en');
}
