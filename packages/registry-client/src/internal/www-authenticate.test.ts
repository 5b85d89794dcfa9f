import { describe, expect, it } from 'vitest';
import { parseWwwAuthenticate, preferredChallenge } from './www-authenticate.js';

describe('parseWwwAuthenticate', () => {
  it('parses a Docker Hub bearer challenge', () => {
    expect(
      parseWwwAuthenticate(
        'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/alpine:pull"',
      ),
    ).toEqual([
      {
        scheme: 'bearer',
        params: {
          realm: 'https://auth.docker.io/token',
          service: 'registry.docker.io',
          scope: 'repository:library/alpine:pull',
        },
      },
    ]);
  });

  it('keeps commas, spaces and escaped quotes inside quoted values', () => {
    const [challenge] = parseWwwAuthenticate(
      'Bearer realm="https://a.example/token?x=1,2", scope="repository:a:pull,push repository:b:pull", error="insufficient_scope", error_description="say \\"hi\\""',
    );
    expect(challenge?.params).toEqual({
      realm: 'https://a.example/token?x=1,2',
      scope: 'repository:a:pull,push repository:b:pull',
      error: 'insufficient_scope',
      error_description: 'say "hi"',
    });
  });

  it('splits several challenges in one header and across header values', () => {
    const challenges = parseWwwAuthenticate([
      'Basic realm="registry", Bearer realm="https://t.example/token",service="svc"',
      'Negotiate',
    ]);
    expect(challenges.map((c) => c.scheme)).toEqual(['basic', 'bearer', 'negotiate']);
    expect(challenges[1]?.params).toEqual({ realm: 'https://t.example/token', service: 'svc' });
    expect(preferredChallenge(challenges)?.scheme).toBe('bearer');
  });

  it('is case-insensitive for schemes and parameter names, and accepts unquoted values', () => {
    expect(parseWwwAuthenticate('BASIC Realm=registry')).toEqual([
      { scheme: 'basic', params: { realm: 'registry' } },
    ]);
  });

  it('reads token68 credentials', () => {
    expect(parseWwwAuthenticate('Custom abc123==, Basic realm="x"')).toEqual([
      { scheme: 'custom', params: {}, token68: 'abc123==' },
      { scheme: 'basic', params: { realm: 'x' } },
    ]);
  });

  it('tolerates junk: empty parameters, stray commas, unterminated quotes', () => {
    expect(parseWwwAuthenticate('')).toEqual([]);
    expect(parseWwwAuthenticate(undefined)).toEqual([]);
    expect(parseWwwAuthenticate(',, Bearer ,, realm="r",,service=s ,')).toEqual([
      { scheme: 'bearer', params: { realm: 'r', service: 's' } },
    ]);
    expect(parseWwwAuthenticate('Bearer realm="unterminated')).toEqual([
      { scheme: 'bearer', params: { realm: 'unterminated' } },
    ]);
    expect(parseWwwAuthenticate('=== "x" Bearer realm="r"')[0]?.scheme).toBeDefined();
  });

  it('prefers bearer, then basic', () => {
    expect(preferredChallenge(parseWwwAuthenticate('Basic realm="a"'))?.scheme).toBe('basic');
    expect(preferredChallenge([])).toBeUndefined();
  });
});
