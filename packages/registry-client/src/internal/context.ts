import type { RegistryCapabilities } from '@stowage/oci';
import type { Session } from '../api/uploads.js';
import type { ResolvedRegistryClientOptions } from '../options.js';
import type { RegistryHost, SendOptions, StreamResponse } from './transport.js';
import { Transport } from './transport.js';

/**
 * What every API area of one client shares: the resolved options, the
 * transport, the registry host and its mirrors, and what the client has
 * learnt about the registry so far.
 */
export class ClientContext {
  readonly options: ResolvedRegistryClientOptions;
  readonly transport: Transport;
  /** The registry itself. */
  readonly registry: RegistryHost;
  readonly mirrors: readonly RegistryHost[];
  /** Upload sessions this client knows, oldest first. */
  readonly sessions = new Map<string, Session>();
  /** Whether the registry commits a blob sent in one `POST ?digest=` (learnt on first try). */
  singlePost: boolean | undefined;
  /** Whether the registry serves the referrers API (learnt on first use). */
  referrersApi: boolean | undefined;
  /** The registry's capabilities, once asked. */
  capabilities: RegistryCapabilities | undefined;

  constructor(options: ResolvedRegistryClientOptions) {
    this.options = options;
    this.transport = new Transport(options);
    this.registry = this.transport.host(options.registry);
    this.mirrors = options.mirrors.map((m) => this.transport.host(m));
  }

  get logger() {
    return this.options.logger;
  }

  send(options: SendOptions, host: RegistryHost = this.registry): Promise<StreamResponse> {
    return this.transport.send(host, options);
  }

  sendForBytes(options: SendOptions, limit: number, host: RegistryHost = this.registry) {
    return this.transport.sendForBytes(host, options, limit);
  }

  sendForHeaders(options: SendOptions, host: RegistryHost = this.registry) {
    return this.transport.sendForHeaders(host, options);
  }

  /** Where pulls by digest go: the mirrors, then the registry. */
  pullHosts(): RegistryHost[] {
    return [...this.mirrors, this.registry];
  }

  /** Tries each host in turn and returns the first success; the last host's error wins. */
  async fromHosts<T>(
    hosts: readonly RegistryHost[],
    signal: AbortSignal | undefined,
    operation: (host: RegistryHost) => Promise<T>,
  ): Promise<T> {
    for (let i = 0; ; i++) {
      const host = hosts[i] as RegistryHost;
      try {
        return await operation(host);
      } catch (error) {
        if (i === hosts.length - 1 || signal?.aborted) throw error;
        this.logger.debug(
          { mirror: host.host, code: (error as { code?: unknown })?.code },
          'mirror failed, trying the next host',
        );
      }
    }
  }
}
