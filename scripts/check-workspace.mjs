// Workspace conventions that a test runner cannot see: every package and app
// has tests, a README, and exposes only its entry point; every package.json
// carries what npm users see (license file, repository, homepage, bugs,
// keywords, files), and the exports map loads with `import` and `require`.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

const problems = [];
const REPOSITORY_URL = 'git+https://github.com/stowage/stowage.git';
// the names users install (`npm i -g @stowage/cli`) and the commands they get
const PUBLISHED_APPS = {
  'apps/cli': { name: '@stowage/cli', bin: 'stowage' },
  'apps/server': { name: '@stowage/server', bin: 'stowage-server' },
};
const license = existsSync('LICENSE') ? readFileSync('LICENSE') : undefined;
if (!license?.includes('Apache License') || !license.includes('Version 2.0, January 2004')) {
  problems.push('LICENSE: the root needs the Apache License 2.0 text');
}
/** What every package.json under packages/ and apps/ must say about itself. */
function checkMetadata(dir, pkg) {
  if (pkg.license !== 'Apache-2.0') problems.push(`${dir}: "license" must be "Apache-2.0"`);
  if (!license || !existsSync(join(dir, 'LICENSE')) || !readFileSync(join(dir, 'LICENSE')).equals(license)) {
    problems.push(`${dir}: needs a copy of the root LICENSE (cp LICENSE ${dir}/LICENSE)`);
  }
  if (!pkg.files?.includes('LICENSE')) problems.push(`${dir}: "files" must list LICENSE`);
  const repository = pkg.repository ?? {};
  if (repository.type !== 'git' || repository.url !== REPOSITORY_URL || repository.directory !== dir) {
    problems.push(`${dir}: "repository" must be { type: git, url: ${REPOSITORY_URL}, directory: ${dir} }`);
  }
  if (typeof pkg.homepage !== 'string' || !pkg.homepage.includes(dir)) {
    problems.push(`${dir}: "homepage" must point at ${dir}`);
  }
  if (typeof pkg.bugs?.url !== 'string') problems.push(`${dir}: "bugs.url" missing`);
  if (!Array.isArray(pkg.keywords) || pkg.keywords.length === 0) problems.push(`${dir}: "keywords" missing`);
  if (typeof pkg.description !== 'string' || pkg.description === '') {
    problems.push(`${dir}: "description" missing`);
  }
  if (!pkg.private && pkg.publishConfig?.access !== 'public') {
    problems.push(`${dir}: a published scoped package needs "publishConfig": { "access": "public" }`);
  }
}
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
      // source first (tests and typecheck), then types, then import and a default that
      // require() takes on Node 20.19+ (without it: ERR_PACKAGE_PATH_NOT_EXPORTED)
      const dot = pkg.exports?.['.'] ?? {};
      if (Object.keys(dot).join() !== '@stowage/source,types,import,default' || dot.default !== dot.import) {
        problems.push(
          `${dir}: exports["."] must have exactly "@stowage/source", "types", "import" and "default" (= import), in that order`,
        );
      }
      if (!pkg.private && pkg.peerDependencies?.['@types/node'] === undefined) {
        problems.push(`${dir}: its .d.ts reference node's types: declare @types/node as an optional peer`);
      }
      if (!pkg.private && (!pkg.scripts?.publint || !pkg.scripts?.attw)) {
        problems.push(`${dir}: needs the "publint" and "attw" scripts`);
      }
    }
    if (group === 'apps') {
      // an app's tarball is its bundle, README and LICENSE: no sources, tests or build logs
      if (pkg.private) problems.push(`${dir}: apps are published; drop "private"`);
      if (!pkg.bin || Object.keys(pkg.bin).length === 0) problems.push(`${dir}: an app needs "bin"`);
      const promised = PUBLISHED_APPS[dir];
      if (promised && (pkg.name !== promised.name || !pkg.bin?.[promised.bin])) {
        problems.push(`${dir}: is published as ${promised.name} with bin ${promised.bin}`);
      }
      if ([...(pkg.files ?? [])].sort().join() !== 'LICENSE,dist') {
        problems.push(`${dir}: "files" must be exactly ["dist", "LICENSE"]`);
      }
    }
    checkMetadata(dir, pkg);
  }
}
// tests/: the private cross-package test package (never published)
if (existsSync(join('tests', 'package.json'))) {
  const pkg = JSON.parse(readFileSync(join('tests', 'package.json'), 'utf8'));
  if (pkg.private !== true) problems.push('tests: must be "private": true');
  if (!hasTest(join('tests', 'src'))) problems.push('tests: no *.test.ts');
  if (!existsSync(join('tests', 'README.md'))) problems.push('tests: no README.md');
}
if (problems.length) {
  console.error(problems.join('\n'));
  process.exit(1);
}
console.log('workspace conventions hold');
