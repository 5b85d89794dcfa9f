// The one tsup configuration every package builds with: ESM, declarations, a
// single entry (src/index.ts). Declarations are built against the siblings'
// published types (dist), never their sources, so the custom source condition
// is switched off for the declaration build.
import { defineConfig } from 'tsup';

/** @param {import('tsup').Options} [overrides] */
export function packageConfig(overrides = {}) {
  return defineConfig({
    entry: ['src/index.ts'],
    format: ['esm'],
    target: 'node20',
    platform: 'node',
    dts: { compilerOptions: { customConditions: [], noEmit: false } },
    sourcemap: true,
    clean: true,
    treeshake: true,
    ...overrides,
  });
}
