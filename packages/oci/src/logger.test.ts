import { describe, expect, it } from 'vitest';
import { resolveLogger } from './logger.js';

describe('resolveLogger', () => {
  it('keeps the levels a logger has, bound to it, and silences the rest', () => {
    const seen: unknown[] = [];
    const pinoLike = {
      prefix: 'p',
      info(this: { prefix: string }, fields: object, message?: string) {
        seen.push([this.prefix, fields, message]);
      },
    };
    const log = resolveLogger(pinoLike);
    log.info({ a: 1 }, 'hello');
    log.debug({ b: 2 }, 'dropped');
    expect(seen).toEqual([['p', { a: 1 }, 'hello']]);
    expect(() => resolveLogger().error({}, 'nothing')).not.toThrow();
  });
});
