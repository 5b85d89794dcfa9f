import { describe, expect, it } from 'vitest';
import {
  catalogScope,
  deleteScope,
  formatScope,
  parseScope,
  parseScopes,
  pullScope,
  pushScope,
  ScopeSet,
} from './scope.js';

describe('scopes', () => {
  it('formats and parses the distribution scope grammar', () => {
    expect(formatScope(pushScope('library/alpine'))).toBe('repository:library/alpine:pull,push');
    expect(formatScope(catalogScope)).toBe('registry:catalog:*');
    expect(parseScope('repository:a/b:push,pull')).toEqual({
      type: 'repository',
      name: 'a/b',
      actions: ['pull', 'push'],
    });
    expect(parseScope('repository:localhost:5000/a:pull')).toEqual({
      type: 'repository',
      name: 'localhost:5000/a',
      actions: ['pull'],
    });
    expect(parseScope('nonsense')).toBeUndefined();
    expect(parseScope('repository:a:')).toBeUndefined();
    expect(parseScopes('repository:a:pull  registry:catalog:* bad')).toHaveLength(2);
  });

  it('accumulates actions per resource', () => {
    const set = new ScopeSet([pullScope('a')]);
    set.add(pushScope('a')).add(pullScope('b')).add(deleteScope('a'));
    expect(set.toStrings()).toEqual(['repository:a:delete,pull,push', 'repository:b:pull']);
    expect(set.size).toBe(2);
    expect(set.key()).toBe('repository:a:delete,pull,push repository:b:pull');
  });

  it('knows what it covers', () => {
    const set = new ScopeSet([pushScope('a')]);
    expect(set.covers([pullScope('a')])).toBe(true);
    expect(set.covers([pullScope('a'), pushScope('a')])).toBe(true);
    expect(set.covers([deleteScope('a')])).toBe(false);
    expect(set.covers([pullScope('b')])).toBe(false);
    expect(set.covers([])).toBe(true);
    expect(new ScopeSet([{ type: 'repository', name: 'a', actions: ['*'] }]).covers([deleteScope('a')])).toBe(
      true,
    );
  });

  it('unions without changing the original', () => {
    const base = new ScopeSet([pullScope('a')]);
    const wider = base.union([pushScope('b')]);
    expect(base.toStrings()).toEqual(['repository:a:pull']);
    expect(wider.toStrings()).toEqual(['repository:a:pull', 'repository:b:pull,push']);
    expect(wider.names('repository')).toEqual(['a', 'b']);
  });

  it('gives the same key whatever the insertion order', () => {
    const one = new ScopeSet([pullScope('b'), pushScope('a')]);
    const two = new ScopeSet([
      pullScope('a'),
      pullScope('b'),
      { type: 'repository', name: 'a', actions: ['push'] },
    ]);
    expect(one.key()).toBe(two.key());
  });
});
