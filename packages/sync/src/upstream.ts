/**
 * Talking to an upstream: one registry client per URL (credentials, TLS from
 * `tlsVerify` and `certDir`, retries from `maxRetries`/`retryDelay`), and the
 * choice of the first URL that answers: the origin, else each mirror in order.
 */
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { rootCertificates } from 'node:tls';
import type { Registry } from '@stowage/oci';
import {
  createRegistryClient,
  type HostTlsOptions,
  type RegistryClientOptions,
} from '@stowage/registry-client';
import type { UpstreamConfig } from './config.js';
import { configError } from './errors.js';

/** Makes the registry for one URL of an upstream; tests wrap it to count or break requests. */
export type ConnectUpstream = (upstream: UpstreamConfig, url: string) => Registry | Promise<Registry>;

export interface UpstreamClientOptions {
  /** Merged into every client's options (a `dispatcher`, `userAgent`, `logger`, `retry.clock`). */
  readonly client?: Partial<Omit<RegistryClientOptions, 'registry'>>;
}

/** Docker Hub's names; the client speaks to `registry-1.docker.io` for each. */
const DOCKER_HUB_HOSTS: readonly string[] = ['docker.io', 'index.docker.io', 'registry-1.docker.io'];

/** The registry client's own ceiling of one backoff delay. */
const CLIENT_MAX_DELAY_MS = 10_000;

function errorCode(error: unknown): string {
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  return typeof code === 'string' ? ` (${code})` : '';
}

/**
 * The TLS files of a `certDir`, as containers' `certs.d` and zot lay them out:
 * `ca.crt` and any other `*.crt` are CAs trusted besides the system roots,
 * `client.cert` with `client.key` the certificate for mutual TLS.
 */
async function readCertDir(upstream: UpstreamConfig, dir: string): Promise<HostTlsOptions> {
  const key = `registries[${upstream.index}].certDir`;
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (error) {
    throw configError(key, `cannot read the directory ${dir}${errorCode(error)}`);
  }
  const read = async (name: string) => {
    try {
      return await readFile(join(dir, name), 'utf8');
    } catch (error) {
      throw configError(key, `cannot read ${join(dir, name)}${errorCode(error)}`);
    }
  };
  const caNames = names
    .filter((name) => name.endsWith('.crt'))
    .sort((a, b) => (a === 'ca.crt' ? -1 : b === 'ca.crt' ? 1 : a < b ? -1 : a > b ? 1 : 0));
  const hasCert = names.includes('client.cert');
  const hasKey = names.includes('client.key');
  if (hasCert !== hasKey) {
    throw configError(
      key,
      `${dir} has ${hasCert ? 'client.cert without client.key' : 'client.key without client.cert'}`,
    );
  }
  if (caNames.length === 0 && !hasCert) {
    throw configError(key, `${dir} holds neither ca.crt (or another *.crt) nor client.cert and client.key`);
  }
  const cas = await Promise.all(caNames.map(read));
  return {
    ...(cas.length > 0 ? { ca: [...rootCertificates, ...cas] } : {}),
    ...(hasCert ? { cert: await read('client.cert'), key: await read('client.key') } : {}),
  };
}

/**
 * The registry-client options for one URL of an upstream (reads `certDir`'s files):
 * `http://` is spoken to in plain HTTP, `https://` always over TLS (a loopback
 * host too), `tlsVerify: false` accepts any certificate, `maxRetries` and
 * `retryDelay` are the client's `retry.retries` and `retry.minDelayMs`. The
 * upstream's credentials for the host are used when it has some; otherwise the
 * client looks in the Docker and containers credential files as it always does.
 */
export async function upstreamClientOptions(
  upstream: UpstreamConfig,
  url: string,
  options: UpstreamClientOptions = {},
): Promise<RegistryClientOptions> {
  const parsed = new URL(url);
  const host = parsed.host;
  const secure = parsed.protocol === 'https:';
  const given = options.client ?? {};
  const tls: Record<string, HostTlsOptions> = { ...given.tls };
  if (secure) {
    // Always an entry: the client speaks plain HTTP to a loopback host without one.
    const hostTls: HostTlsOptions = {
      ...given.tls?.[host],
      ...(upstream.tlsVerify ? {} : { rejectUnauthorized: false }),
      ...(upstream.certDir !== undefined ? await readCertDir(upstream, upstream.certDir) : {}),
    };
    const hosts = DOCKER_HUB_HOSTS.includes(host) ? DOCKER_HUB_HOSTS : [host];
    for (const name of hosts) tls[name] = hostTls;
  }
  const minDelayMs = Math.ceil(upstream.retryDelayMs);
  const credential = upstream.credentials[host];
  return {
    ...given,
    registry: host,
    ...(secure ? {} : { insecure: true }),
    tls,
    retry: {
      ...given.retry,
      retries: upstream.maxRetries,
      minDelayMs,
      maxDelayMs: Math.max(given.retry?.maxDelayMs ?? CLIENT_MAX_DELAY_MS, minDelayMs),
    },
    ...(credential ? { credentials: { username: credential.username, password: credential.password } } : {}),
  };
}

/** A `ConnectUpstream` that makes registry clients. */
export function clientConnector(options: UpstreamClientOptions = {}): ConnectUpstream {
  return async (upstream, url) => createRegistryClient(await upstreamClientOptions(upstream, url, options));
}
