// `pnpm bench <name> [args]` runs bench/<name>/run.ts from source (no build):
// tsx for TypeScript, the @stowage/source condition for sibling packages.
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';

const [name, ...args] = process.argv.slice(2);
const available = readdirSync(new URL('../bench', import.meta.url), { withFileTypes: true })
  .filter((e) => e.isDirectory() && existsSync(new URL(`../bench/${e.name}/run.ts`, import.meta.url)))
  .map((e) => e.name);
if (!name || !available.includes(name)) {
  console.error(`usage: pnpm bench <${available.join('|')}> [args]`);
  process.exit(2);
}
const result = spawnSync(
  process.execPath,
  ['--conditions=@stowage/source', '--import', 'tsx', `bench/${name}/run.ts`, ...args],
  { stdio: 'inherit' },
);
process.exit(result.status ?? 1);
