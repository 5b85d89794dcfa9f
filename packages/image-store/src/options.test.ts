import { isStowageError } from '@stowage/oci';
import { describe, expect, it } from 'vitest';
import { resolveOptions } from './options.js';

describe('image store options', () => {
  it('fills in the defaults', () => {
    const resolved = resolveOptions({ root: '/srv/images' });
    expect(resolved).toMatchObject({
      root: '/srv/images',
      readOnly: false,
      maxManifestSize: undefined,
      uploadTtlMs: 24 * 60 * 60 * 1000,
      indexFlushDelayMs: 200,
      staleLockMs: 10_000,
    });
    // a logger with every level, silent by default
    expect(() => resolved.logger.info({ any: 'thing' })).not.toThrow();
  });

  it('refuses a missing root and values out of range with OPTIONS_INVALID', () => {
    for (const options of [
      { root: '' },
      {} as { root: string },
      { root: '/r', uploadTtlMs: -1 },
      { root: '/r', indexFlushDelayMs: Number.NaN },
      { root: '/r', staleLockMs: '5' as unknown as number },
      { root: '/r', maxManifestSize: 0 },
    ]) {
      let caught: unknown;
      try {
        resolveOptions(options);
      } catch (error) {
        caught = error;
      }
      expect(isStowageError(caught, 'OPTIONS_INVALID'), JSON.stringify(options)).toBe(true);
    }
  });
});
