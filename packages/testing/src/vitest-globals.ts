import type * as Vitest from 'vitest';

type Globals = Pick<typeof Vitest, 'describe' | 'it' | 'expect' | 'beforeAll' | 'afterAll'>;

/**
 * vitest's test API, taken from the globals the runner installs (`globals: true`
 * in the root config) instead of importing 'vitest': importing it outside a
 * test run throws, and benchmarks use this package's launchers and builders.
 */
export function vitestGlobals(): Globals {
  const g = globalThis as unknown as Partial<Globals>;
  if (!g.describe || !g.it || !g.expect || !g.beforeAll || !g.afterAll) {
    throw new Error('the conformance suite and peer gates run inside vitest with globals: true');
  }
  return g as Globals;
}
