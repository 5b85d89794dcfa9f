import { isStowageError } from '@stowage/oci';
import { describe, expect, it } from 'vitest';
import type { Credentials } from '../credentials.js';
import { RegistryResponseError } from '../errors.js';
import { Authenticator, type TokenExchange, type TokenExchangeResult } from './auth.js';
import { pullScope, pushScope } from './scope.js';
import { parseWwwAuthenticate } from './www-authenticate.js';

const bearer = parseWwwAuthenticate('Bearer realm="https://auth.example/token",service="registry.example"');

function setup(
  options: {
    credentials?: Credentials;
    oauth2Password?: boolean;
    answer?: (request: TokenExchange, count: number) => Partial<TokenExchangeResult> & { json?: unknown };
  } = {},
) {
  const requests: TokenExchange[] = [];
  let now = 1_000_000;
  const auth = new Authenticator({
    host: 'registry.example',
    loadCredentials: async () => options.credentials,
    exchange: async (request) => {
      requests.push(request);
      const answer = options.answer?.(request, requests.length) ?? {};
      const json = answer.json ?? { token: `t${requests.length}`, expires_in: 300 };
      return {
        status: answer.status ?? 200,
        headers: answer.headers ?? {},
        bytes: answer.bytes ?? new TextEncoder().encode(JSON.stringify(json)),
      };
    },
    allowHttp: (host) => host.startsWith('127.0.0.1'),
    clientId: 'stowage-test',
    oauth2Password: options.oauth2Password ?? false,
    logger: {},
    now: () => now,
  });
  return {
    auth,
    requests,
    advance: (ms: number) => {
      now += ms;
    },
    scopesOf: (request: TokenExchange | undefined) => request?.url.searchParams.getAll('scope'),
  };
}

describe('Authenticator', () => {
  it('sends nothing to an anonymous registry', async () => {
    const { auth, requests } = setup();
    auth.setChallenges([]);
    expect(auth.scheme).toBe('none');
    expect(await auth.authorization([pullScope('a')])).toBeUndefined();
    expect(requests).toHaveLength(0);
  });

  it('answers a basic challenge with the credentials, or nothing without them', async () => {
    const { auth } = setup({ credentials: { username: 'alice', password: 's3cret' } });
    auth.setChallenges(parseWwwAuthenticate('Basic realm="r"'));
    expect(await auth.authorization([pullScope('a')])).toBe(
      `Basic ${Buffer.from('alice:s3cret').toString('base64')}`,
    );
    const anonymous = setup();
    anonymous.auth.setChallenges(parseWwwAuthenticate('Basic realm="r"'));
    expect(await anonymous.auth.authorization([])).toBeUndefined();
  });

  it('asks the realm for a token with service, scopes, account and basic credentials', async () => {
    const { auth, requests, scopesOf } = setup({ credentials: { username: 'alice', password: 's3cret' } });
    auth.setChallenges(bearer);
    expect(await auth.authorization([pullScope('a/b')])).toBe('Bearer t1');
    const [request] = requests;
    expect(request?.method).toBe('GET');
    expect(`${request?.url.origin}${request?.url.pathname}`).toBe('https://auth.example/token');
    expect(request?.url.searchParams.get('service')).toBe('registry.example');
    expect(request?.url.searchParams.get('account')).toBe('alice');
    expect(request?.url.searchParams.get('client_id')).toBe('stowage-test');
    expect(scopesOf(request)).toEqual(['repository:a/b:pull']);
    expect(request?.headers.authorization).toBe(`Basic ${Buffer.from('alice:s3cret').toString('base64')}`);
  });

  it('caches tokens and accumulates scopes so one token serves later operations', async () => {
    const { auth, requests, scopesOf } = setup();
    auth.setChallenges(bearer);
    await auth.authorization([pullScope('a')]);
    await auth.authorization([pullScope('a')]);
    expect(requests).toHaveLength(1);
    await auth.authorization([pushScope('a')]);
    expect(requests).toHaveLength(2);
    expect(scopesOf(requests[1])).toEqual(['repository:a:pull,push']);
    // The wider token covers pulls now.
    expect(await auth.authorization([pullScope('a')])).toBe('Bearer t2');
    // A new repository joins the accumulated set: one token for both (what a cross-repo mount needs).
    await auth.authorization([pullScope('b')]);
    expect(scopesOf(requests[2])).toEqual(['repository:a:pull,push', 'repository:b:pull']);
    expect(await auth.authorization([pushScope('a'), pullScope('b')])).toBe('Bearer t3');
    expect(requests).toHaveLength(3);
  });

  it('shares one token request between concurrent operations', async () => {
    const { auth, requests } = setup();
    auth.setChallenges(bearer);
    const headers = await Promise.all(Array.from({ length: 10 }, () => auth.authorization([pullScope('a')])));
    expect(new Set(headers)).toEqual(new Set(['Bearer t1']));
    expect(requests).toHaveLength(1);
  });

  it('renews a token shortly before expires_in runs out (60 s when absent)', async () => {
    const { auth, requests, advance } = setup({
      answer: (_request, count) => ({
        json: count === 1 ? { token: 'short' } : { token: `t${count}`, expires_in: 120 },
      }),
    });
    auth.setChallenges(bearer);
    expect(await auth.authorization([pullScope('a')])).toBe('Bearer short');
    advance(50_000);
    expect(await auth.authorization([pullScope('a')])).toBe('Bearer short');
    advance(6_000); // 56 s: within the renewal margin of a 60 s token
    expect(await auth.authorization([pullScope('a')])).toBe('Bearer t2');
    expect(requests).toHaveLength(2);
  });

  it('counts lifetime from issued_at when the clocks agree, and ignores a skewed issued_at', async () => {
    const issued = new Date(1_000_000 - 50_000).toISOString();
    const { auth, requests, advance } = setup({
      answer: (_r, count) => ({
        json:
          count === 1
            ? { token: 'a', expires_in: 60, issued_at: issued }
            : { token: 'b', expires_in: 60, issued_at: '1999-01-01T00:00:00Z' },
      }),
    });
    auth.setChallenges(bearer);
    expect(await auth.authorization([pullScope('a')])).toBe('Bearer a');
    advance(6_000); // issued 56 s ago: renew
    expect(await auth.authorization([pullScope('a')])).toBe('Bearer b');
    advance(30_000); // skewed issued_at: lifetime counted from receipt, still valid
    expect(await auth.authorization([pullScope('a')])).toBe('Bearer b');
    expect(requests).toHaveLength(2);
  });

  it('on insufficient_scope, fetches a fresh token for the wider scope the challenge names', async () => {
    const { auth, requests, scopesOf } = setup();
    auth.setChallenges(bearer);
    const used = await auth.authorization([pullScope('a')]);
    const challenge = parseWwwAuthenticate(
      'Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a:pull,push repository:src:pull",error="insufficient_scope"',
    );
    expect(await auth.unauthorized(challenge, [pullScope('a')], used)).toBe(true);
    expect(scopesOf(requests[1])).toEqual(['repository:a:pull,push', 'repository:src:pull']);
    expect(await auth.authorization([pushScope('a')])).toBe('Bearer t2');
    expect(requests).toHaveLength(2);
  });

  it('on a 401 for a cached token (expired or revoked server-side), drops it and fetches a new one', async () => {
    const { auth, requests } = setup();
    auth.setChallenges(bearer);
    const used = await auth.authorization([pullScope('a')]);
    expect(await auth.unauthorized(bearer, [pullScope('a')], used)).toBe(true);
    expect(await auth.authorization([pullScope('a')])).toBe('Bearer t2');
    expect(requests).toHaveLength(2);
  });

  it('switches scheme when a registry that looked anonymous challenges later', async () => {
    const { auth } = setup({ credentials: { username: 'u', password: 'p' } });
    auth.setChallenges([]);
    expect(await auth.unauthorized(parseWwwAuthenticate('Basic realm="x"'), [], undefined)).toBe(true);
    expect(auth.scheme).toBe('basic');
    // Basic credentials that were refused cannot be fixed by retrying.
    expect(await auth.unauthorized(parseWwwAuthenticate('Basic realm="x"'), [], 'Basic dTpw')).toBe(false);
  });

  it('exchanges an identity token with an OAuth2 refresh_token POST', async () => {
    const { auth, requests } = setup({ credentials: { username: 'alice', identityToken: 'refresh-me' } });
    auth.setChallenges(bearer);
    await auth.authorization([pullScope('a'), pullScope('b')]);
    const [request] = requests;
    expect(request?.method).toBe('POST');
    expect(request?.headers['content-type']).toBe('application/x-www-form-urlencoded');
    const form = new URLSearchParams(request?.body);
    expect(Object.fromEntries(form)).toEqual({
      grant_type: 'refresh_token',
      refresh_token: 'refresh-me',
      service: 'registry.example',
      client_id: 'stowage-test',
      scope: 'repository:a:pull repository:b:pull',
    });
  });

  it('uses grant_type=password when asked, keeps the refresh token it returns, and falls back to GET on 404', async () => {
    const { auth, requests } = setup({
      credentials: { username: 'alice', password: 's3cret' },
      oauth2Password: true,
      answer: (request, count) =>
        count === 1
          ? { json: { access_token: 'oauth', refresh_token: 'r1', expires_in: 1 } }
          : request.method === 'POST'
            ? { status: 404, json: {} }
            : { json: { token: 'via-get' } },
    });
    auth.setChallenges(bearer);
    expect(await auth.authorization([pullScope('a')])).toBe('Bearer oauth');
    expect(new URLSearchParams(requests[0]?.body).get('grant_type')).toBe('password');
    expect(new URLSearchParams(requests[0]?.body).get('password')).toBe('s3cret');
    expect(await auth.authorization([pushScope('a')])).toBe('Bearer via-get');
    expect(new URLSearchParams(requests[1]?.body).get('grant_type')).toBe('refresh_token');
    expect(new URLSearchParams(requests[1]?.body).get('refresh_token')).toBe('r1');
    expect(requests[2]?.method).toBe('GET');
  });

  it('sends a registry token as-is, without asking a token server', async () => {
    const { auth, requests } = setup({ credentials: { registryToken: 'direct' } });
    auth.setChallenges(bearer);
    expect(await auth.authorization([pullScope('a')])).toBe('Bearer direct');
    expect(requests).toHaveLength(0);
  });

  it('reports a refusing token server without credentials in the error', async () => {
    const { auth } = setup({
      credentials: { username: 'alice', password: 'hunter2' },
      answer: () => ({ status: 401, json: { errors: [] } }),
    });
    auth.setChallenges(bearer);
    const error = await auth.authorization([pullScope('a')]).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RegistryResponseError);
    expect(isStowageError(error, 'UNAUTHORIZED')).toBe(true);
    expect(
      JSON.stringify({ m: (error as Error).message, d: (error as RegistryResponseError).details }),
    ).not.toMatch(/hunter2|alice:/);
  });

  it('refuses to send credentials over plain HTTP to a host not marked insecure', async () => {
    const { auth } = setup({ credentials: { username: 'u', password: 'p' } });
    auth.setChallenges(parseWwwAuthenticate('Bearer realm="http://evil.example/token"'));
    await expect(auth.authorization([pullScope('a')])).rejects.toMatchObject({ code: 'PROTOCOL_ERROR' });
    const local = setup({ credentials: { username: 'u', password: 'p' } });
    local.auth.setChallenges(parseWwwAuthenticate('Bearer realm="http://127.0.0.1:9/token"'));
    expect(await local.auth.authorization([pullScope('a')])).toBe('Bearer t1');
  });

  it('rejects token answers without a token', async () => {
    const { auth } = setup({ answer: () => ({ json: { expires_in: 60 } }) });
    auth.setChallenges(bearer);
    await expect(auth.authorization([pullScope('a')])).rejects.toMatchObject({ code: 'PROTOCOL_ERROR' });
  });
});
