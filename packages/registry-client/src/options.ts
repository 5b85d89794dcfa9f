import {
  type Clock,
  type Logger,
  type RegistryCapabilities,
  type ResolvedLogger,
  resolveLogger,
  systemClock,
} from '@stowage/oci';
import type { Dispatcher } from 'undici';
import type { Credentials } from './credentials.js';
import { RegistryClientOptionsError } from './errors.js';
import { hostnameOf, isLoopback, registryApiHost, stripRegistry } from './internal/hosts.js';
import type { RetryPolicy } from './internal/retry.js';

/** The pino-shaped, object-first logger of every Stowage package (`logger.debug({ mirror }, 'mirror failed')`). */
export type { Logger } from '@stowage/oci';

/** TLS settings for one host. */
export interface HostTlsOptions {
  /** PEM CA bundle to trust (replaces the system roots for this host). */
  readonly ca?: string | Buffer | readonly (string | Buffer)[];
  /** PEM client certificate, for registries that want mutual TLS. */
  readonly cert?: string | Buffer;
  /** PEM private key of the client certificate. */
  readonly key?: string | Buffer;
  /** `false` accepts any server certificate. Default `true`. */
  readonly rejectUnauthorized?: boolean;
}

/** Credentials given directly: one set, or a function of the registry host (for the registry and each mirror). */
export type CredentialsOption =
  | Credentials
  | ((host: string) => Credentials | undefined | Promise<Credentials | undefined>);

export interface AuthOptions {
  /**
   * Whether to read Docker `config.json` / containers `auth.json` files and run
   * `docker-credential-*` helpers when `credentials` gives nothing for a host.
   * Default `true`.
   */
  readonly useConfigFiles?: boolean;
  /** Config files to search instead of the default list (see `credentialConfigPaths`). */
  readonly configPaths?: readonly string[];
  /** Environment used to locate files and run helpers (`PATH`, `DOCKER_CONFIG`…). Default `process.env`. */
  readonly env?: Readonly<Record<string, string | undefined>>;
  readonly homeDir?: string;
  /** Time allowed to a credential helper. Default 30 s. */
  readonly helperTimeoutMs?: number;
  /**
   * Ask the token server with an OAuth2 `grant_type=password` POST when a
   * username and password are known (some token servers only speak OAuth2).
   * Default `false`: a GET with basic credentials, as Docker does.
   */
  readonly oauth2Password?: boolean;
  /** The `client_id` sent to token servers. Default `stowage`. */
  readonly clientId?: string;
}

export interface RetryOptions {
  /** Retries after the first attempt. Default 4. */
  readonly retries?: number;
  /** Base delay of the exponential backoff. Default 200 ms. */
  readonly minDelayMs?: number;
  /** Ceiling of one backoff delay. Default 10 s. */
  readonly maxDelayMs?: number;
  /** A `Retry-After` longer than this fails at once instead of waiting. Default 60 s. */
  readonly maxRetryAfterMs?: number;
  /**
   * What the retry loops wait with (`sleep`) and read the time from (`now`, for
   * `Retry-After` dates). Default the system clock; tests pass a fake one or use fake timers.
   */
  readonly clock?: Clock;
}

export interface TimeoutOptions {
  /** TCP + TLS connect. Default 10 s. */
  readonly connectMs?: number;
  /** From sending a request to receiving the response headers. Default 120 s. */
  readonly headersMs?: number;
  /** Longest pause between two chunks of a response body. Default 120 s. */
  readonly bodyIdleMs?: number;
}

export interface RegistryClientOptions {
  /** The registry host, `host[:port]` (`ghcr.io`, `127.0.0.1:5000`; `docker.io` means Docker Hub). A scheme is allowed: `http://` marks the host insecure. */
  readonly registry: string;
  readonly credentials?: CredentialsOption;
  readonly auth?: AuthOptions;
  /** Hosts spoken to over plain HTTP (`true`: the registry and its mirrors). Loopback hosts are, unless `tls` names them. */
  readonly insecure?: boolean | readonly string[];
  /** TLS settings by host (`host[:port]`, or the hostname alone). */
  readonly tls?: Readonly<Record<string, HostTlsOptions>>;
  /** Registry hosts with the same repositories, tried before the registry for pulls by digest (manifests by digest, blobs). */
  readonly mirrors?: readonly string[];
  /** Default `stowage-registry-client`. */
  readonly userAgent?: string;
  readonly retry?: RetryOptions;
  readonly timeouts?: TimeoutOptions;
  /** Requests in flight per host (a streamed body holds its slot until consumed). Default 16. */
  readonly maxConcurrentRequestsPerHost?: number;
  /** Pace request starts per host; unlimited when absent. */
  readonly requestsPerSecond?: number;
  /** Size of the chunks of a chunked upload, and the most an upload buffers to resume. Default 8 MiB. */
  readonly chunkSize?: number;
  /**
   * Largest blob pushed in one request; larger ones (and streams of unknown size) go in chunks.
   * A re-openable factory body of known size always goes in one request (a failure restarts it). Default 32 MiB.
   */
  readonly monolithicMaxBytes?: number;
  /** Largest blob sent in a single `POST ?digest=` when the registry accepts it (a streamed one is read whole first). Default 4 MiB; 0 disables. */
  readonly singleRequestMaxBytes?: number;
  /**
   * Keep the referrers tag schema (`<alg>-<hex>` index tags) up to date when
   * the registry has no referrers API, on push and delete of manifests with a
   * `subject`. Default `true`.
   */
  readonly referrersTagFallback?: boolean;
  /** Page size asked for when a listing is followed to the end. Default 1000. */
  readonly pageSize?: number;
  /**
   * Validate manifests (`parseManifest`) before pushing them, so an invalid one is refused with
   * `MANIFEST_INVALID` whatever the registry would answer. Default `true`.
   */
  readonly validateManifests?: boolean;
  /** A pino-compatible logger (object first); silent without one. Never given credentials. */
  readonly logger?: Logger;
  /**
   * Overrides what `capabilities()` reports, over what the registry declares
   * in its `Stowage-Capabilities` header (or, without it, the distribution 2.8
   * profile): for a registry known to do more or less than it says.
   */
  readonly capabilities?: Partial<RegistryCapabilities>;
  /**
   * An undici dispatcher to send every request through (a proxy agent, a mock).
   * It is not closed by `close()`. Without it the client keeps one keep-alive
   * `Pool` per host, configured from `tls` and `timeouts`.
   */
  readonly dispatcher?: Dispatcher;
}

export interface ResolvedRegistryClientOptions {
  /** `host[:port]` of the registry API (`registry-1.docker.io` for Docker Hub). */
  readonly registry: string;
  readonly mirrors: readonly string[];
  readonly credentials: CredentialsOption | undefined;
  readonly auth: Required<Omit<AuthOptions, 'configPaths' | 'homeDir'>> &
    Pick<AuthOptions, 'configPaths' | 'homeDir'>;
  readonly insecureHosts: ReadonlySet<string>;
  readonly tls: Readonly<Record<string, HostTlsOptions>>;
  readonly userAgent: string;
  readonly retry: RetryPolicy;
  readonly timeouts: Required<TimeoutOptions>;
  readonly maxConcurrentRequestsPerHost: number;
  readonly requestsPerSecond: number | undefined;
  readonly chunkSize: number;
  readonly monolithicMaxBytes: number;
  readonly singleRequestMaxBytes: number;
  readonly referrersTagFallback: boolean;
  readonly pageSize: number;
  readonly validateManifests: boolean;
  readonly logger: ResolvedLogger;
  readonly capabilities: Partial<RegistryCapabilities>;
  readonly dispatcher: Dispatcher | undefined;
}

const MiB = 1024 * 1024;

function positiveInteger(name: string, value: number | undefined, fallback: number, min = 1): number {
  if (value === undefined) return fallback;
  if (!Number.isSafeInteger(value) || value < min) {
    throw new RegistryClientOptionsError(`${name} must be an integer ≥ ${min}, got ${String(value)}`);
  }
  return value;
}

function hostList(name: string, values: readonly string[]): string[] {
  return values.map((value) => {
    if (typeof value !== 'string' || stripRegistry(value) === '') {
      throw new RegistryClientOptionsError(`${name} holds an empty or invalid host`);
    }
    return registryApiHost(value);
  });
}

const referrerModes: ReadonlySet<unknown> = new Set(['api', 'tag-schema', 'none']);

function capabilityOverrides(
  value: Partial<RegistryCapabilities> | undefined,
): Partial<RegistryCapabilities> {
  if (value === undefined) return {};
  if (typeof value !== 'object' || value === null)
    throw new RegistryClientOptionsError('capabilities must be an object of capability overrides');
  for (const [name, given] of Object.entries(value)) {
    if (given === undefined) continue;
    const ok = name === 'referrers' ? referrerModes.has(given) : typeof given === 'boolean';
    if (!ok) throw new RegistryClientOptionsError(`capabilities.${name} has an invalid value`);
  }
  return { ...value };
}

/** Applies defaults and checks ranges; `createRegistryClient` calls it. */
export function resolveOptions(options: RegistryClientOptions): ResolvedRegistryClientOptions {
  if (typeof options?.registry !== 'string' || stripRegistry(options.registry) === '') {
    throw new RegistryClientOptionsError('registry must be a host such as "ghcr.io" or "127.0.0.1:5000"');
  }
  const registry = registryApiHost(options.registry);
  const mirrors = hostList('mirrors', options.mirrors ?? []).filter((m) => m !== registry);
  const insecureHosts = new Set<string>();
  if (/^http:\/\//i.test(options.registry.trim())) insecureHosts.add(registry);
  if (options.insecure === true) for (const host of [registry, ...mirrors]) insecureHosts.add(host);
  else if (Array.isArray(options.insecure))
    for (const host of hostList('insecure', options.insecure)) insecureHosts.add(host);
  const tls: Record<string, HostTlsOptions> = {};
  for (const [host, value] of Object.entries(options.tls ?? {})) tls[stripRegistry(host)] = value;
  // Loopback hosts speak plain HTTP, unless TLS settings were given for them.
  for (const host of [registry, ...mirrors]) {
    if (isLoopback(host) && tls[host] === undefined && tls[hostnameOf(host)] === undefined)
      insecureHosts.add(host);
  }

  const retries = positiveInteger('retry.retries', options.retry?.retries, 4, 0);
  const minDelayMs = positiveInteger('retry.minDelayMs', options.retry?.minDelayMs, 200, 0);
  const maxDelayMs = positiveInteger('retry.maxDelayMs', options.retry?.maxDelayMs, 10_000, 0);
  if (maxDelayMs < minDelayMs)
    throw new RegistryClientOptionsError('retry.maxDelayMs must be ≥ retry.minDelayMs');
  const chunkSize = positiveInteger('chunkSize', options.chunkSize, 8 * MiB);
  const requestsPerSecond = options.requestsPerSecond;
  if (requestsPerSecond !== undefined && !(requestsPerSecond > 0 && Number.isFinite(requestsPerSecond))) {
    throw new RegistryClientOptionsError('requestsPerSecond must be a positive number');
  }
  return {
    registry,
    mirrors,
    credentials: options.credentials,
    auth: {
      useConfigFiles: options.auth?.useConfigFiles ?? true,
      env: options.auth?.env ?? process.env,
      helperTimeoutMs: positiveInteger('auth.helperTimeoutMs', options.auth?.helperTimeoutMs, 30_000),
      oauth2Password: options.auth?.oauth2Password ?? false,
      clientId: options.auth?.clientId ?? 'stowage',
      ...(options.auth?.configPaths ? { configPaths: options.auth.configPaths } : {}),
      ...(options.auth?.homeDir ? { homeDir: options.auth.homeDir } : {}),
    },
    insecureHosts,
    tls,
    userAgent: options.userAgent ?? 'stowage-registry-client',
    retry: {
      retries,
      minDelayMs,
      maxDelayMs,
      maxRetryAfterMs: positiveInteger('retry.maxRetryAfterMs', options.retry?.maxRetryAfterMs, 60_000, 0),
      clock: options.retry?.clock ?? systemClock,
    },
    timeouts: {
      connectMs: positiveInteger('timeouts.connectMs', options.timeouts?.connectMs, 10_000),
      headersMs: positiveInteger('timeouts.headersMs', options.timeouts?.headersMs, 120_000),
      bodyIdleMs: positiveInteger('timeouts.bodyIdleMs', options.timeouts?.bodyIdleMs, 120_000),
    },
    maxConcurrentRequestsPerHost: positiveInteger(
      'maxConcurrentRequestsPerHost',
      options.maxConcurrentRequestsPerHost,
      16,
    ),
    requestsPerSecond,
    chunkSize,
    monolithicMaxBytes: positiveInteger('monolithicMaxBytes', options.monolithicMaxBytes, 32 * MiB, 0),
    singleRequestMaxBytes: positiveInteger(
      'singleRequestMaxBytes',
      options.singleRequestMaxBytes,
      4 * MiB,
      0,
    ),
    referrersTagFallback: options.referrersTagFallback ?? true,
    pageSize: positiveInteger('pageSize', options.pageSize, 1000),
    validateManifests: options.validateManifests ?? true,
    logger: resolveLogger(options.logger),
    capabilities: capabilityOverrides(options.capabilities),
    dispatcher: options.dispatcher,
  };
}
