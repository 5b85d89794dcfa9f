/** Docker Hub's API endpoint: what `docker.io` and `index.docker.io` mean on the wire. */
export const DOCKER_HUB_API_HOST = 'registry-1.docker.io';
/** The key Docker stores Docker Hub credentials under, and hands to credential helpers. */
export const DOCKER_HUB_CREDENTIAL_SERVER = 'https://index.docker.io/v1/';

const dockerHubAliases: ReadonlySet<string> = new Set([
  'docker.io',
  'index.docker.io',
  'registry-1.docker.io',
]);

/**
 * Reduces a registry given by a user or found in a config file to `host[:port]`:
 * scheme, userinfo, path and trailing slashes removed, host lower-cased.
 */
export function stripRegistry(input: string): string {
  let text = input.trim();
  text = text.replace(/^[a-z][a-z0-9+.-]*:\/\//i, '');
  const slash = text.indexOf('/');
  if (slash >= 0) text = text.slice(0, slash);
  const at = text.lastIndexOf('@');
  if (at >= 0) text = text.slice(at + 1);
  return text.toLowerCase();
}

/** The host to talk to for a registry name: Docker Hub's aliases become `registry-1.docker.io`. */
export function registryApiHost(input: string): string {
  const host = stripRegistry(input);
  return dockerHubAliases.has(host) ? DOCKER_HUB_API_HOST : host;
}

/** The host key used to match credentials: Docker Hub's aliases all become `docker.io`. */
export function credentialHostKey(input: string): string {
  const host = stripRegistry(input);
  return dockerHubAliases.has(host) ? 'docker.io' : host;
}

export function isDockerHub(input: string): boolean {
  return dockerHubAliases.has(stripRegistry(input));
}

/** The hostname part of `host[:port]` (IPv6 brackets removed). */
export function hostnameOf(host: string): string {
  if (host.startsWith('[')) {
    const end = host.indexOf(']');
    return end < 0 ? host.slice(1) : host.slice(1, end);
  }
  const colon = host.lastIndexOf(':');
  return colon >= 0 && host.indexOf(':') === colon ? host.slice(0, colon) : host;
}

/** Loopback hosts, always spoken to over plain HTTP. */
export function isLoopback(host: string): boolean {
  const name = hostnameOf(stripRegistry(host));
  return name === 'localhost' || name === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(name);
}
