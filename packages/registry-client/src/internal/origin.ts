import { createHash, randomUUID } from 'node:crypto';
import { credentialConfigPaths } from '../credentials.js';
import type { ResolvedRegistryClientOptions } from '../options.js';

/** A stable identity per credentials function, so clients given the same function share it. */
const functionIds = new WeakMap<object, string>();

function functionId(fn: object): string {
  let id = functionIds.get(fn);
  if (id === undefined) {
    id = randomUUID();
    functionIds.set(fn, id);
  }
  return id;
}

/**
 * Who the client speaks as, known without any I/O (credential helpers and
 * config files are read lazily, on the first request that needs them), so it
 * is the identity of the configured credential source rather than of the
 * credentials it will resolve to:
 * - `credentials` given as an object: the username (basic), else the identity
 *   or registry token;
 * - `credentials` given as a function: that function (the same function object
 *   is the same identity);
 * - config files (`auth.useConfigFiles`, the default): the list of files the
 *   lookup reads, so clients reading the same files share it;
 * - none of these: anonymous, `undefined`.
 */
export function credentialIdentity(options: ResolvedRegistryClientOptions): string | undefined {
  const parts: string[] = [];
  const given = options.credentials;
  if (typeof given === 'function') parts.push(`function:${functionId(given)}`);
  // An object is all the registry's credentials: config files are not read for it.
  else if (given !== undefined) return given.username ?? given.identityToken ?? given.registryToken;
  if (options.auth.useConfigFiles) {
    const paths = options.auth.configPaths ?? credentialConfigPaths(options.auth.env, options.auth.homeDir);
    parts.push(`config-files:${JSON.stringify(paths)}`);
  }
  return parts.length === 0 ? undefined : parts.join('\n');
}

/**
 * The `origin` of a client: `<scheme>://<host>`, plus `#<first 16 hex of the
 * sha256 of the credential identity>` when there is one. Two clients with the
 * same origin see the same content with the same rights, so a copy between
 * them may mount.
 */
export function clientOrigin(hostOrigin: string, options: ResolvedRegistryClientOptions): string {
  const identity = credentialIdentity(options);
  if (identity === undefined) return hostOrigin;
  return `${hostOrigin}#${createHash('sha256').update(identity).digest('hex').slice(0, 16)}`;
}
