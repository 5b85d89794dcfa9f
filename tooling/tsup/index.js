// The one tsup configuration every package builds with: ESM, declarations, a
// single entry (src/index.ts). Declarations are built against the siblings'
// published types (dist), never their sources, so the custom source condition
// is switched off for the declaration build.
//
// Every emitted .d.ts starts with `/// <reference types="node" />`: the types name
// node:stream, node:http and friends (directly or through @stowage/oci), and since
// TypeScript 6 a consumer's program no longer includes every @types package by
// default, so without the directive a plain `tsc` fails with "Cannot find module
// 'node:stream'" unless the consumer adds `types: ["node"]`. The directive resolves
// @types/node from the consumer's node_modules, which is why each published package
// declares @types/node as an optional peer (JavaScript users install nothing extra).
import { defineConfig } from 'tsup';

/** @param {import('tsup').Options} [overrides] */
export function packageConfig(overrides = {}) {
  return defineConfig({
    entry: ['src/index.ts'],
    format: ['esm'],
    target: 'node20',
    platform: 'node',
    dts: {
      compilerOptions: { customConditions: [], noEmit: false },
      banner: '/// <reference types="node" />',
    },
    // A sibling is always imported, never bundled: a bundled devDependency (say
    // @stowage/testing) would ship inside a package without anyone noticing, while an
    // import of one that is not a dependency fails scripts/pack-check.mjs.
    external: [/^@stowage\//],
    sourcemap: true,
    clean: true,
    treeshake: true,
    ...overrides,
  });
}
