/**
 * The URLs of an upstream: the first is the origin, the rest mirrors of the
 * same repositories. A run uses the first that answers, in order.
 */
import type { OperationOptions, Registry } from '@stowage/oci';
import type { UpstreamConfig } from './config.js';
import { SyncError } from './errors.js';
import type { ConnectUpstream } from './upstream.js';

/** Whether a registry answers: `ping` where it has one (a client), else `capabilities`. */
async function probe(registry: Registry, options: OperationOptions): Promise<void> {
  const withPing = registry as Registry & { ping?: (options?: OperationOptions) => Promise<unknown> };
  if (typeof withPing.ping === 'function') await withPing.ping(options);
  else await registry.capabilities(options);
}

/**
 * The registry of the first URL of `upstream` that answers. Each failure is
 * logged by the caller's logger through the error; when none answers,
 * `UPSTREAM_UNREACHABLE` with every URL's failure in `details.failures`.
 */
export async function connectFirst(
  upstream: UpstreamConfig,
  connect: ConnectUpstream,
  options: OperationOptions = {},
): Promise<{ url: string; registry: Registry }> {
  const failures: { url: string; code: string; message: string }[] = [];
  let last: unknown;
  for (const url of upstream.urls) {
    options.signal?.throwIfAborted();
    let registry: Registry | undefined;
    try {
      registry = await connect(upstream, url);
      await probe(registry, options);
      return { url, registry };
    } catch (error) {
      if (options.signal?.aborted) throw options.signal.reason;
      last = error;
      const code = (error as { code?: unknown }).code;
      failures.push({
        url,
        code: typeof code === 'string' ? code : 'UNKNOWN',
        message: error instanceof Error ? error.message : String(error),
      });
      await registry?.close?.().catch(() => undefined);
    }
  }
  throw new SyncError(
    'UPSTREAM_UNREACHABLE',
    `no URL of registries[${upstream.index}] answered: ${failures.map((f) => `${f.url} (${f.message})`).join('; ')}`,
    { details: { index: upstream.index, failures }, cause: last, retryable: true },
  );
}
