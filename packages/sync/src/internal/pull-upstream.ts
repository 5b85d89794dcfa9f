/**
 * One upstream of the pull-through registry: a registry per URL, made when
 * first needed, and the choice of URL. The origin is tried first, then each
 * mirror in order; a URL that failed to connect is tried after the others for
 * the upstream's `checkIntervalMs`, so an outage of the origin does not cost
 * every request a failed attempt.
 */
import { isStowageError, type Registry, type ResolvedLogger } from '@stowage/oci';
import type { UpstreamConfig } from '../config.js';
import { SyncError } from '../errors.js';
import type { ConnectUpstream } from '../upstream.js';

/** Codes of an upstream that could not be talked to at all (as opposed to one that answered a refusal). */
const CONNECTION_CODES = new Set([
  'NETWORK_ERROR',
  'TIMEOUT',
  'UNAVAILABLE',
  'UPSTREAM_UNREACHABLE',
  'ECONNREFUSED',
  'ECONNRESET',
  'ENOTFOUND',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ETIMEDOUT',
  'EAI_AGAIN',
]);

/** Whether an error means the URL could not be reached (so a mirror should be tried). */
export function isConnectionFailure(error: unknown): boolean {
  if (isStowageError(error)) return CONNECTION_CODES.has(error.code);
  const code = (error as { code?: unknown } | undefined)?.code;
  return typeof code === 'string' && CONNECTION_CODES.has(code);
}

export interface UpstreamPoolOptions {
  readonly upstream: UpstreamConfig;
  readonly connect: ConnectUpstream;
  readonly now: () => number;
  readonly logger: ResolvedLogger;
}

export class UpstreamPool {
  readonly upstream: UpstreamConfig;
  readonly #connect: ConnectUpstream;
  readonly #now: () => number;
  readonly #logger: ResolvedLogger;
  /** The registry made for each URL (a promise, so two callers do not make two). */
  readonly #clients = new Map<string, Promise<Registry>>();
  /** When each URL last failed to connect. */
  readonly #failedAt = new Map<string, number>();
  #closed = false;

  constructor(options: UpstreamPoolOptions) {
    this.upstream = options.upstream;
    this.#connect = options.connect;
    this.#now = options.now;
    this.#logger = options.logger;
  }

  /** A name for messages: the origin URL. */
  get name(): string {
    return this.upstream.urls[0] ?? `registries[${this.upstream.index}]`;
  }

  /** The URLs in the order to try them: those not failing recently first, each group in configured order. */
  #order(): string[] {
    const now = this.#now();
    const recent = (url: string) => {
      const at = this.#failedAt.get(url);
      return at !== undefined && now - at < this.upstream.checkIntervalMs;
    };
    const urls = this.upstream.urls;
    return [...urls.filter((u) => !recent(u)), ...urls.filter(recent)];
  }

  #client(url: string): Promise<Registry> {
    let client = this.#clients.get(url);
    if (!client) {
      client = Promise.resolve().then(() => this.#connect(this.upstream, url));
      this.#clients.set(url, client);
      // A connector that failed is asked again next time.
      client.catch(() => {
        if (this.#clients.get(url) === client) this.#clients.delete(url);
      });
    }
    return client;
  }

  /**
   * Runs `operation` against the first URL that answers. Refusals (not found,
   * denied, 5xx other than 502-504) are answers and reach the caller; only a
   * failure to connect moves on to the next URL.
   */
  async use<T>(operation: (registry: Registry, url: string) => Promise<T>, signal?: AbortSignal): Promise<T> {
    if (this.#closed) throw new SyncError('UPSTREAM_UNREACHABLE', `upstream ${this.name} is closed`);
    let lastError: unknown;
    for (const url of this.#order()) {
      signal?.throwIfAborted();
      try {
        const result = await operation(await this.#client(url), url);
        this.#failedAt.delete(url);
        return result;
      } catch (error) {
        if (signal?.aborted) throw signal.reason;
        if (!isConnectionFailure(error)) throw error;
        lastError = error;
        this.#failedAt.set(url, this.#now());
        this.#logger.warn(
          { upstream: this.name, url, err: error },
          'upstream URL failed; trying the next one',
        );
      }
    }
    throw new SyncError('UPSTREAM_UNREACHABLE', `no URL of upstream ${this.name} answered`, {
      retryable: true,
      cause: lastError,
      details: { upstream: this.name, urls: [...this.upstream.urls] },
    });
  }

  /** Closes the registries this pool made. */
  async close(): Promise<void> {
    this.#closed = true;
    const clients = [...this.#clients.values()];
    this.#clients.clear();
    await Promise.all(
      clients.map(async (pending) => {
        try {
          await (await pending).close?.();
        } catch (error) {
          this.#logger.warn({ upstream: this.name, err: error }, 'closing an upstream client failed');
        }
      }),
    );
  }
}
