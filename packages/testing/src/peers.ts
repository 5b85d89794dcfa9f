import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';
import { vitestGlobals } from './vitest-globals.js';

/** True when running under CI (`CI=true` or `CI=1`): a missing peer then fails instead of skipping. */
export const isCI = process.env.CI === 'true' || process.env.CI === '1';

const extraDirs = ['/usr/local/sbin', '/usr/local/bin', '/usr/sbin', '/usr/bin', '/sbin', '/bin'];

/** Absolute path of an executable on PATH (or the usual system dirs), if there is one. */
export function findExecutable(name: string): string | undefined {
  const dirs = [...(process.env.PATH ?? '').split(delimiter).filter(Boolean), ...extraDirs];
  for (const dir of dirs) {
    const candidate = join(dir, name);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not here; keep looking
    }
  }
  return undefined;
}

export interface PeerStatus {
  readonly name: string;
  readonly available: boolean;
  /** The executable, when the peer is a program. */
  readonly path?: string;
  /** Why the peer is not available. */
  readonly reason?: string;
}

/** Whether a peer program (`docker-registry`, `skopeo`, …) can be run here. */
export function peerStatus(name: string): PeerStatus {
  const path = findExecutable(name);
  return path
    ? { name, available: true, path }
    : { name, available: false, reason: `${name} is not installed (apt-get install ${name})` };
}

/**
 * Declares what a suite of integration tests needs. When every peer is there
 * it returns true and the suite runs. When one is missing it prints a loud
 * line and registers one test that says so: skipped locally, FAILING under CI,
 * so a missing peer is never reported as a pass.
 */
export function requirePeers(...peers: readonly (string | PeerStatus)[]): boolean {
  const missing = peers.map((p) => (typeof p === 'string' ? peerStatus(p) : p)).filter((p) => !p.available);
  if (missing.length === 0) return true;
  const { it } = vitestGlobals();
  const reasons = missing.map((p) => p.reason ?? `${p.name} is not available`).join('; ');
  if (isCI) {
    it(`requires peers: ${missing.map((p) => p.name).join(', ')}`, () => {
      throw new Error(`CI=true and a required peer is missing: ${reasons}`);
    });
  } else {
    console.warn(
      `\n!!! SKIPPING integration tests: ${reasons}. Run the README test command to install peers.\n`,
    );
    it.skipIf(true)(`[not available: ${reasons}]`, () => {});
  }
  return false;
}
