import type { Registry, RegistryCapabilities } from '@stowage/oci';

/** One call a spy saw: the member and its arguments. */
export interface RegistryCall {
  readonly method: string;
  readonly args: readonly unknown[];
}

export interface SpyOptions {
  /** Members replaced (called instead of the wrapped registry's). */
  readonly hooks?: Partial<Record<keyof Registry, (...args: never[]) => unknown>>;
  /** What it claims beyond the wrapped registry's capabilities. */
  readonly capabilities?: Partial<RegistryCapabilities>;
  /** Its origin; the wrapped one's unless given. */
  readonly origin?: string;
}

/** A registry that records its calls. */
export type SpyRegistry = Registry & {
  readonly calls: RegistryCall[];
  /** Calls made to one member. */
  count(method: string): number;
  /** Forgets the calls seen. */
  reset(): void;
};

/**
 * A registry that records every call to the one it wraps, without changing
 * what it does unless `hooks` or `capabilities` say so: for tests that count
 * requests (one tag listing per batch, blobs moved once) or inject a fault.
 */
export function spyRegistry(registry: Registry, options: SpyOptions = {}): SpyRegistry {
  const calls: RegistryCall[] = [];
  return new Proxy(registry, {
    get(target, key, receiver) {
      if (key === 'calls') return calls;
      if (key === 'count') return (method: string) => calls.filter((c) => c.method === method).length;
      if (key === 'reset') return () => void calls.splice(0);
      if (key === 'origin') return options.origin ?? target.origin;
      const value = Reflect.get(target, key, receiver);
      if (typeof value !== 'function') return value;
      return async (...args: unknown[]) => {
        calls.push({ method: String(key), args });
        const hook = options.hooks?.[key as keyof Registry] as ((...a: unknown[]) => unknown) | undefined;
        if (hook) return await hook(...args);
        const result = await value.apply(target, args);
        if (key === 'capabilities') return { ...(result as RegistryCapabilities), ...options.capabilities };
        return result;
      };
    },
  }) as SpyRegistry;
}
