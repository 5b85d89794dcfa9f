import type { Logger } from '@stowage/oci';
import type { Credentials } from '../credentials.js';
import { RegistryProtocolError, responseError } from '../errors.js';
import { redactUrl } from './redact.js';
import { parseScopes, type Scope, ScopeSet } from './scope.js';
import { type AuthChallenge, preferredChallenge } from './www-authenticate.js';

/** A token endpoint exchange, made by the transport without registry auth. */
export interface TokenExchange {
  readonly method: 'GET' | 'POST';
  readonly url: URL;
  readonly headers: Readonly<Record<string, string>>;
  readonly body?: string;
  readonly signal?: AbortSignal;
}

export interface TokenExchangeResult {
  readonly status: number;
  readonly headers: Readonly<Record<string, string | string[] | undefined>>;
  readonly bytes: Uint8Array;
}

export interface AuthenticatorOptions {
  /** The registry host this authenticator answers challenges for. */
  readonly host: string;
  readonly loadCredentials: () => Promise<Credentials | undefined>;
  readonly exchange: (request: TokenExchange) => Promise<TokenExchangeResult>;
  /** Whether plain HTTP may carry credentials to this token host. */
  readonly allowHttp: (host: string) => boolean;
  readonly clientId: string;
  readonly oauth2Password: boolean;
  readonly logger: Logger;
  readonly now?: () => number;
  /** Repository scopes kept in the accumulated set before it is reset. Default 16. */
  readonly maxAccumulatedRepositories?: number;
}

interface CachedToken {
  readonly token: string;
  readonly scopes: ScopeSet;
  readonly expiresAt: number;
}

/** Tokens are renewed this long before they expire. */
const EXPIRY_MARGIN_MS = 5_000;
const DEFAULT_TOKEN_LIFETIME_S = 60;
const MAX_CACHED_TOKENS = 32;

/** The token server's answer, as the distribution token spec and OAuth2 define it. */
interface TokenResponseBody {
  readonly token?: unknown;
  readonly access_token?: unknown;
  readonly expires_in?: unknown;
  readonly issued_at?: unknown;
  readonly refresh_token?: unknown;
}

/**
 * Answers one registry host's auth challenges: nothing for an anonymous
 * registry, basic credentials, or bearer tokens from the challenge's realm.
 *
 * Bearer scopes accumulate: each token is asked for everything this host was
 * asked for before plus what the operation needs, so one token soon serves a
 * whole copy (a mount needs pull on the source and push on the target in the
 * same token). Tokens are cached by scope set until shortly before they expire.
 * On a 401 (expired or revoked token, or `insufficient_scope`), the transport
 * calls `unauthorized` once, which fetches a fresh token for the wider scope.
 */
export class Authenticator {
  readonly #options: AuthenticatorOptions;
  readonly #now: () => number;
  #challenge: AuthChallenge | undefined;
  #credentials: Promise<Credentials | undefined> | undefined;
  #accumulated = new ScopeSet();
  readonly #tokens = new Map<string, CachedToken>();
  readonly #pending = new Map<string, Promise<CachedToken>>();
  /** A refresh token handed out by an OAuth2 password grant, reused for later grants. */
  #refreshToken: string | undefined;
  /** Token requests made, for diagnostics. */
  tokenRequests = 0;

  constructor(options: AuthenticatorOptions) {
    this.#options = options;
    this.#now = options.now ?? Date.now;
  }

  /** `none`, `basic`, `bearer`, or another scheme the client cannot answer. */
  get scheme(): string {
    return this.#challenge?.scheme ?? 'none';
  }

  /** Records what the registry's `/v2/` answered: no challenge means anonymous. */
  setChallenges(challenges: readonly AuthChallenge[]): void {
    const next = preferredChallenge(challenges);
    if (!sameChallenge(next, this.#challenge)) this.#tokens.clear();
    this.#challenge = next;
  }

  credentials(): Promise<Credentials | undefined> {
    this.#credentials ??= this.#options.loadCredentials().catch((error: unknown) => {
      this.#credentials = undefined;
      throw error;
    });
    return this.#credentials;
  }

  /** The `Authorization` header value for a request that needs `scopes`, if any. */
  async authorization(scopes: readonly Scope[], signal?: AbortSignal): Promise<string | undefined> {
    const challenge = this.#challenge;
    if (challenge === undefined) return undefined;
    if (challenge.scheme === 'basic') {
      const credentials = await this.credentials();
      return basicHeader(credentials);
    }
    if (challenge.scheme !== 'bearer') return undefined;
    const credentials = await this.credentials();
    if (credentials?.registryToken) return `Bearer ${credentials.registryToken}`;
    const token = await this.#token(challenge, scopes, false, signal);
    return `Bearer ${token.token}`;
  }

  /**
   * Handles a 401. Returns true when repeating the request with a new
   * `authorization()` may succeed: the registry changed its challenge, or a
   * fresh bearer token (for the scopes the challenge names, added to the
   * accumulated ones) was obtained.
   */
  async unauthorized(
    challenges: readonly AuthChallenge[],
    scopes: readonly Scope[],
    used: string | undefined,
    signal?: AbortSignal,
  ): Promise<boolean> {
    const challenge = preferredChallenge(challenges);
    if (challenge === undefined) return false;
    if (!sameChallenge(challenge, this.#challenge)) {
      this.#options.logger.debug?.(
        { host: this.#options.host, scheme: challenge.scheme },
        'registry auth challenge changed',
      );
      this.setChallenges([challenge]);
      return challenge.scheme === 'basic' || challenge.scheme === 'bearer';
    }
    if (challenge.scheme !== 'bearer') return false;
    const credentials = await this.credentials();
    if (credentials?.registryToken) return false;
    for (const [key, cached] of this.#tokens) {
      if (used === `Bearer ${cached.token}`) this.#tokens.delete(key);
    }
    const wanted = [...scopes, ...parseScopes(challenge.params.scope)];
    await this.#token(challenge, wanted, true, signal);
    return true;
  }

  async #token(challenge: AuthChallenge, scopes: readonly Scope[], force: boolean, signal?: AbortSignal) {
    const now = this.#now();
    if (!force) {
      // Most recent first: the widest token is usually the newest.
      for (const cached of [...this.#tokens.values()].reverse()) {
        if (cached.expiresAt - EXPIRY_MARGIN_MS > now && cached.scopes.covers(scopes)) return cached;
      }
    }
    let wanted = this.#accumulated.union(scopes);
    if (wanted.names('repository').length > (this.#options.maxAccumulatedRepositories ?? 16)) {
      wanted = new ScopeSet(scopes);
    }
    this.#accumulated = wanted;
    const key = wanted.key();
    let pending = this.#pending.get(key);
    if (pending === undefined || force) {
      pending = this.#fetchToken(challenge, wanted, signal).finally(() => {
        if (this.#pending.get(key) === pending) this.#pending.delete(key);
      });
      this.#pending.set(key, pending);
    }
    const token = await pending;
    this.#tokens.delete(key);
    this.#tokens.set(key, token);
    this.#prune();
    return token;
  }

  #prune(): void {
    const now = this.#now();
    for (const [key, cached] of this.#tokens) if (cached.expiresAt <= now) this.#tokens.delete(key);
    while (this.#tokens.size > MAX_CACHED_TOKENS) {
      const oldest = this.#tokens.keys().next().value;
      if (oldest === undefined) break;
      this.#tokens.delete(oldest);
    }
  }

  async #fetchToken(challenge: AuthChallenge, scopes: ScopeSet, signal?: AbortSignal): Promise<CachedToken> {
    const realm = challenge.params.realm;
    if (!realm)
      throw new RegistryProtocolError('bearer challenge without a realm', { host: this.#options.host });
    let url: URL;
    try {
      url = new URL(realm);
    } catch (cause) {
      throw new RegistryProtocolError(
        'bearer challenge realm is not a URL',
        { host: this.#options.host },
        cause,
      );
    }
    if (url.protocol !== 'https:' && url.protocol !== 'http:') {
      throw new RegistryProtocolError('bearer realm must be http(s)', { realm: redactUrl(url) });
    }
    const credentials = await this.credentials();
    const sendsSecrets =
      credentials !== undefined &&
      (credentials.password !== undefined || credentials.identityToken !== undefined);
    if (url.protocol === 'http:' && sendsSecrets && !this.#options.allowHttp(url.host)) {
      throw new RegistryProtocolError(
        `refusing to send credentials over plain HTTP to ${url.host}; list the host in the "insecure" option to allow it`,
        { realm: redactUrl(url) },
      );
    }
    const service = challenge.params.service;
    const scopeList = scopes.toStrings();
    this.tokenRequests++;
    const refreshToken = credentials?.identityToken ?? this.#refreshToken;
    const canPassword = this.#options.oauth2Password && credentials?.username && credentials.password;
    let result: TokenExchangeResult | undefined;
    if (refreshToken || canPassword) {
      const form = new URLSearchParams();
      if (refreshToken) {
        form.set('grant_type', 'refresh_token');
        form.set('refresh_token', refreshToken);
      } else {
        form.set('grant_type', 'password');
        form.set('username', credentials?.username ?? '');
        form.set('password', credentials?.password ?? '');
        form.set('access_type', 'offline');
      }
      if (service) form.set('service', service);
      form.set('client_id', this.#options.clientId);
      if (scopeList.length > 0) form.set('scope', scopeList.join(' '));
      result = await this.#options.exchange({
        method: 'POST',
        url,
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: form.toString(),
        ...(signal ? { signal } : {}),
      });
      // Token servers without OAuth2 support answer 404/405: fall back to the GET form.
      if (result.status === 404 || result.status === 405) result = undefined;
    }
    if (result === undefined) {
      const target = new URL(url);
      if (service) target.searchParams.set('service', service);
      for (const scope of scopeList) target.searchParams.append('scope', scope);
      if (credentials?.username) target.searchParams.set('account', credentials.username);
      target.searchParams.set('client_id', this.#options.clientId);
      const basic = basicHeader(credentials);
      result = await this.#options.exchange({
        method: 'GET',
        url: target,
        headers: basic ? { authorization: basic } : {},
        ...(signal ? { signal } : {}),
      });
    }
    if (result.status !== 200) {
      throw responseError({
        status: result.status,
        method: 'GET',
        url: url.toString(),
        endpoint: 'token',
        code: result.status === 403 ? 'DENIED' : result.status < 500 ? 'UNAUTHORIZED' : undefined,
        message: `token server ${url.host} answered ${result.status} for ${scopeList.join(' ') || 'no scope'}`,
      });
    }
    let body: TokenResponseBody;
    try {
      body = JSON.parse(Buffer.from(result.bytes).toString('utf8')) as TokenResponseBody;
    } catch {
      throw new RegistryProtocolError(`token server ${url.host} sent a body that is not JSON`, {
        realm: redactUrl(url),
      });
    }
    const token =
      typeof body.token === 'string' && body.token !== ''
        ? body.token
        : typeof body.access_token === 'string' && body.access_token !== ''
          ? body.access_token
          : undefined;
    if (token === undefined) {
      throw new RegistryProtocolError(`token server ${url.host} sent no token`, { realm: redactUrl(url) });
    }
    if (typeof body.refresh_token === 'string' && body.refresh_token !== '' && !credentials?.identityToken) {
      this.#refreshToken = body.refresh_token;
    }
    const now = this.#now();
    const lifetime =
      typeof body.expires_in === 'number' && Number.isFinite(body.expires_in) && body.expires_in > 0
        ? body.expires_in
        : DEFAULT_TOKEN_LIFETIME_S;
    const issued = typeof body.issued_at === 'string' ? Date.parse(body.issued_at) : Number.NaN;
    // Trust issued_at only when the clocks roughly agree; a skewed server clock must not expire every token at once.
    const base = Number.isFinite(issued) && Math.abs(now - issued) < 5 * 60_000 ? Math.min(issued, now) : now;
    return { token, scopes, expiresAt: base + lifetime * 1000 };
  }
}

function sameChallenge(a: AuthChallenge | undefined, b: AuthChallenge | undefined): boolean {
  if (a === undefined || b === undefined) return a === b;
  return a.scheme === b.scheme && a.params.realm === b.params.realm && a.params.service === b.params.service;
}

function basicHeader(credentials: Credentials | undefined): string | undefined {
  if (credentials?.username === undefined || credentials.password === undefined) return undefined;
  return `Basic ${Buffer.from(`${credentials.username}:${credentials.password}`).toString('base64')}`;
}
