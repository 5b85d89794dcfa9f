import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const root = join(import.meta.dirname, '../../..');
const packages = readdirSync(join(root, 'packages'));

describe('workspace boundaries', () => {
  it('resolves sibling packages through their entry point', async () => {
    const oci = await import('@stowage/oci');
    expect(typeof oci.parseDigest).toBe('function');
  });

  it.each(['@stowage/oci/src/digest.ts', '@stowage/oci/src/digest', '@stowage/oci/dist/index.js'])(
    'refuses the deep import %s',
    async (specifier) => {
      await expect(import(/* @vite-ignore */ specifier)).rejects.toThrow();
    },
  );

  it.each(packages)('packages/%s exposes only its entry point', (name) => {
    const pkg = JSON.parse(readFileSync(join(root, 'packages', name, 'package.json'), 'utf8'));
    expect(Object.keys(pkg.exports)).toEqual(['.', './package.json']);
    expect(pkg.exports['.']['@stowage/source']).toBe('./src/index.ts');
    expect(pkg.type).toBe('module');
  });
});
