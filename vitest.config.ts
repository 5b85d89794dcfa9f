// One root config that runs every package and app as its own vitest project.
// Projects inherit `resolve.conditions`, so sibling packages are read from
// source (the `@stowage/source` export condition) without a build.
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { defineConfig } from 'vitest/config';

const workspaces = [
  ...['packages', 'apps'].flatMap((group) =>
    existsSync(group)
      ? readdirSync(group, { withFileTypes: true })
          .filter((entry) => entry.isDirectory() && existsSync(join(group, entry.name, 'package.json')))
          .map((entry) => join(group, entry.name))
      : [],
  ),
  // the private cross-package tests (public entry points only)
  ...(existsSync(join('tests', 'package.json')) ? ['tests'] : []),
];

export default defineConfig({
  resolve: { conditions: ['@stowage/source'] },
  ssr: { resolve: { conditions: ['@stowage/source'] } },
  test: {
    projects: workspaces.map((dir) => ({
      extends: true,
      test: {
        name: dir.split('/')[1] ?? dir,
        root: dir,
        include: ['src/**/*.test.ts', 'test/**/*.test.ts', 'ui/src/**/*.test.ts'],
      },
    })),
    globals: true,
    testTimeout: 30_000,
    hookTimeout: 60_000,
  },
});
