// `pnpm release`: a release in one command, from a clean checkout of main with npm
// credentials (`npm login` or NPM_TOKEN in ~/.npmrc).
//
//   1. `changeset version`: applies the pending changesets (versions, CHANGELOG.md files);
//   2. build, publint, attw and the pack check, so what is published is what CI checked;
//   3. commits the version bump ("Release: <name>@<version> ...");
//   4. `pnpm publish -r`: publishes every public package whose version is not on the registry
//      yet (pnpm turns `workspace:*` into the real versions);
//   5. `changeset tag`: a git tag per published version. Push with `git push --follow-tags`.
//
// `pnpm release:check` is the dry run of step 4 (CI runs it; it needs no credentials).
import { spawnSync } from 'node:child_process';

function run(command, args, options = {}) {
  console.log(`==> ${command} ${args.join(' ')}`);
  const result = spawnSync(command, args, { stdio: 'inherit', ...options });
  if (result.status !== 0) {
    console.error(`release stopped: ${command} ${args.join(' ')} exited ${result.status ?? result.signal}`);
    process.exit(1);
  }
}

function output(command, args) {
  const result = spawnSync(command, args, { encoding: 'utf8' });
  if (result.status !== 0) throw new Error(`${command} ${args.join(' ')}: ${result.stderr}`);
  return result.stdout.trim();
}

if (output('git', ['status', '--porcelain']) !== '') {
  console.error('release: the working tree has changes; commit or remove them first');
  process.exit(1);
}
const branch = output('git', ['rev-parse', '--abbrev-ref', 'HEAD']);
if (branch !== 'main') {
  console.error(`release: releases are made from main, not ${branch}`);
  process.exit(1);
}

run('pnpm', ['changeset', 'version']);
const changed = output('git', ['status', '--porcelain']);
if (changed === '') {
  console.log('release: no pending changesets, nothing to release');
  process.exit(0);
}
run('pnpm', ['install', '--lockfile-only']);
run('pnpm', ['turbo', 'run', 'build', 'publint', 'attw', '--output-logs=errors-only']);
run('node', ['scripts/pack-check.mjs']);

// The tree was clean before `changeset version`, so every change is the version bump.
const versions = output('pnpm', ['-r', 'ls', '--depth', '-1', '--json']);
const released = JSON.parse(versions)
  .filter((pkg) => pkg.name?.startsWith('@stowage/') && !pkg.private)
  .map((pkg) => `${pkg.name}@${pkg.version}`);
run('git', ['add', '--all']);
run('git', ['commit', '--quiet', '-m', `Release: ${released.join(' ')}`]);
run('pnpm', ['publish', '-r']);
run('pnpm', ['changeset', 'tag']);
console.log('release: published and tagged; push with git push --follow-tags');
