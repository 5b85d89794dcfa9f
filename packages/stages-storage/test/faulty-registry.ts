// Registries that misbehave on purpose, for the faults no real peer produces
// on demand: a store that cannot delete tags, refuses deletes, or fails a push.
import { type Registry, RegistryError } from '@stowage/oci';

export type RegistryOverrides = { [K in keyof Registry]?: Registry[K] };

/** `registry` with the given members replaced; every other member bound to the original. */
export function faulty(registry: Registry, overrides: RegistryOverrides): Registry {
  return new Proxy(registry, {
    get(target, property, receiver) {
      if (Object.hasOwn(overrides, property)) return overrides[property as keyof Registry];
      const value = Reflect.get(target, property, receiver);
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
}

/** docker-registry 2.8's profile: manifests can be deleted, tags cannot (`UNSUPPORTED`). */
export function withoutTagDelete(registry: Registry): Registry {
  return faulty(registry, {
    capabilities: async (options) => ({ ...(await registry.capabilities(options)), deleteTag: false }),
    deleteTag: async () => {
      throw new RegistryError('UNSUPPORTED', 'tag deletion is not supported');
    },
  });
}
