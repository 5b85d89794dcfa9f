import { type ChildProcess, type SpawnOptions, spawn } from 'node:child_process';
import { join } from 'node:path';

/** The repository's root, where tsx and the workspace packages resolve from (from src/ or dist/ alike). */
export const REPO_ROOT = join(import.meta.dirname, '../../..');

/** Node's flags that run a TypeScript file of this repository from source: tsx, and the `@stowage/source` condition. */
export const SOURCE_NODE_FLAGS: readonly string[] = ['--conditions=@stowage/source', '--import', 'tsx'];

/**
 * Starts `node <script> ...args` from source in a child process at the
 * repository root: the helper processes of crash, lock and multi-process
 * tests (a writer to SIGKILL, a second lock holder, a server to restart).
 */
export function spawnSource(
  script: string,
  args: readonly string[],
  options: Omit<SpawnOptions, 'cwd'> = {},
): ChildProcess {
  return spawn(process.execPath, [...SOURCE_NODE_FLAGS, script, ...args], { cwd: REPO_ROOT, ...options });
}
