/**
 * Talking to an upstream: one registry client per URL (credentials, TLS from
 * `tlsVerify` and `certDir`, retries from `maxRetries`/`retryDelay`), and the
 * choice of the first URL that answers: the origin, else each mirror in order.
 */
import type { Registry } from '@stowage/oci';
import type { RegistryClientOptions } from '@stowage/registry-client';
import type { UpstreamConfig } from './config.js';

/** Makes the registry for one URL of an upstream; tests wrap it to count or break requests. */
export type ConnectUpstream = (upstream: UpstreamConfig, url: string) => Registry | Promise<Registry>;

export interface UpstreamClientOptions {
  /** Merged into every client's options (a `dispatcher`, `userAgent`, `logger`, `retry.clock`). */
  readonly client?: Partial<Omit<RegistryClientOptions, 'registry'>>;
}

/** The registry-client options for one URL of an upstream (reads `certDir`'s files). */
export async function upstreamClientOptions(
  _upstream: UpstreamConfig,
  _url: string,
  _options: UpstreamClientOptions = {},
): Promise<RegistryClientOptions> {
  throw new Error('not built yet');
}

/** A `ConnectUpstream` that makes registry clients. */
export function clientConnector(_options: UpstreamClientOptions = {}): ConnectUpstream {
  throw new Error('not built yet');
}
