// A backend without upload sessions, for the tests of the shared ones the handler adds.
import type { Registry } from '@stowage/oci';
import { createMemoryRegistry } from '@stowage/testing';

const SESSION_MEMBERS = new Set(['startUpload', 'appendUpload', 'getUpload', 'finishUpload', 'cancelUpload']);

/** The memory registry without the five upload-session members, saying so in its capabilities. */
export function withoutSessions(): Registry {
  const base = createMemoryRegistry();
  const registry: Registry = new Proxy(base, {
    get(target, key, receiver) {
      if (SESSION_MEMBERS.has(String(key))) return undefined;
      if (key === 'capabilities') {
        return async () => ({
          ...(await target.capabilities()),
          uploadSessions: false,
          uploadStatus: false,
          outOfOrderChunkRefusal: false,
        });
      }
      return Reflect.get(target, key, receiver);
    },
    has(target, key) {
      return !SESSION_MEMBERS.has(String(key)) && Reflect.has(target, key);
    },
  });
  return registry;
}
