// Workspace conventions that a test runner cannot see: every package and app
// has tests, a README, and exposes only its entry point.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

const problems = [];
const hasTest = (dir) =>
  existsSync(dir) &&
  readdirSync(dir, { recursive: true }).some((f) => typeof f === 'string' && f.endsWith('.test.ts'));
for (const group of ['packages', 'apps']) {
  if (!existsSync(group)) continue;
  for (const name of readdirSync(group)) {
    const dir = join(group, name);
    if (!existsSync(join(dir, 'package.json'))) continue;
    const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'));
    if (!hasTest(join(dir, 'src')) && !hasTest(join(dir, 'test'))) problems.push(`${dir}: no *.test.ts`);
    if (!existsSync(join(dir, 'README.md'))) problems.push(`${dir}: no README.md`);
    if (group === 'packages') {
      const keys = Object.keys(pkg.exports ?? {});
      if (keys.join() !== '.,./package.json')
        problems.push(`${dir}: exports must be exactly "." and "./package.json"`);
      if (pkg.exports?.['.']?.['@stowage/source'] !== './src/index.ts') {
        problems.push(
          `${dir}: exports["."] needs the "@stowage/source" condition pointing at ./src/index.ts`,
        );
      }
    }
  }
}
if (problems.length) {
  console.error(problems.join('\n'));
  process.exit(1);
}
console.log('workspace conventions hold');
