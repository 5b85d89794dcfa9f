import { spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import type { Logger } from '@stowage/oci';
import { CredentialsError } from './errors.js';
import {
  credentialHostKey,
  DOCKER_HUB_CREDENTIAL_SERVER,
  isDockerHub,
  stripRegistry,
} from './internal/hosts.js';

/** What a registry login holds. Never logged, never put in errors. */
export interface Credentials {
  readonly username?: string;
  readonly password?: string;
  /** An OAuth2 refresh token (Docker's `identitytoken`), exchanged at the token endpoint. */
  readonly identityToken?: string;
  /** A bearer token sent to the registry as-is (Docker's `registrytoken`). */
  readonly registryToken?: string;
}

export interface CredentialLookupOptions {
  /**
   * Config files to search, in order (Docker `config.json` or containers
   * `auth.json`, same format). Default: `credentialConfigPaths(env)`.
   */
  readonly configPaths?: readonly string[];
  /** Environment for locating files and running helpers (`PATH`). Default `process.env`. */
  readonly env?: Readonly<Record<string, string | undefined>>;
  /** Home directory. Default `os.homedir()` (or `HOME` from `env`). */
  readonly homeDir?: string;
  /** How long a `docker-credential-*` helper may run. Default 30 s. */
  readonly helperTimeoutMs?: number;
  readonly logger?: Logger;
  readonly signal?: AbortSignal;
}

interface AuthEntry {
  readonly auth?: unknown;
  readonly username?: unknown;
  readonly password?: unknown;
  readonly identitytoken?: unknown;
  readonly registrytoken?: unknown;
}

interface ConfigFile {
  readonly auths?: Readonly<Record<string, AuthEntry>>;
  readonly credsStore?: unknown;
  readonly credHelpers?: Readonly<Record<string, unknown>>;
}

/**
 * The files searched by default, in the order containers tools and Docker use:
 * `$REGISTRY_AUTH_FILE` (else `$XDG_RUNTIME_DIR/containers/auth.json`),
 * `~/.config/containers/auth.json`, then `$DOCKER_CONFIG/config.json` (else
 * `~/.docker/config.json`).
 */
export function credentialConfigPaths(
  env: Readonly<Record<string, string | undefined>> = process.env,
  homeDir: string = env.HOME || homedir(),
): string[] {
  const paths: string[] = [];
  if (env.REGISTRY_AUTH_FILE) paths.push(env.REGISTRY_AUTH_FILE);
  else if (env.XDG_RUNTIME_DIR) paths.push(join(env.XDG_RUNTIME_DIR, 'containers', 'auth.json'));
  paths.push(join(env.XDG_CONFIG_HOME || join(homeDir, '.config'), 'containers', 'auth.json'));
  paths.push(join(env.DOCKER_CONFIG || join(homeDir, '.docker'), 'config.json'));
  return [...new Set(paths)];
}

/**
 * Finds credentials for a registry host the way Docker and the containers
 * tools do: per file, a `credHelpers` entry for the host first, then an
 * `auths` entry (`auth` base64 `user:password`, `username`/`password`,
 * `identitytoken`, `registrytoken`), then the `credsStore`. Hosts match after
 * stripping scheme and path; `docker.io`, `index.docker.io` and
 * `registry-1.docker.io` are one host. `undefined` when nothing matches.
 */
export async function lookupCredentials(
  registry: string,
  options: CredentialLookupOptions = {},
): Promise<Credentials | undefined> {
  const env = options.env ?? process.env;
  const paths = options.configPaths ?? credentialConfigPaths(env, options.homeDir);
  const host = credentialHostKey(registry);
  for (const path of paths) {
    const config = await readConfig(path);
    if (config === undefined) continue;
    const found = await fromConfig(config, host, path, { ...options, env });
    if (found !== undefined) return found;
  }
  return undefined;
}

async function readConfig(path: string): Promise<ConfigFile | undefined> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return undefined;
    throw new CredentialsError(`cannot read credential file ${path}: ${code ?? 'error'}`, { path }, error);
  }
  if (text.trim() === '') return undefined;
  try {
    const value: unknown = JSON.parse(text);
    if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new Error('not an object');
    return value as ConfigFile;
  } catch {
    // The parser's message may quote file content (a secret): never pass it on.
    throw new CredentialsError(`credential file ${path} is not valid JSON`, { path });
  }
}

/** `auths` keys are either Docker URLs (`https://host/v1/`) or containers keys (`host[/namespace]`). */
function authKeyHost(key: string): string | undefined {
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(key)) return credentialHostKey(key);
  const slash = key.indexOf('/');
  if (slash < 0) return credentialHostKey(key);
  const rest = key.slice(slash + 1).replace(/\/+$/, '');
  // Docker's legacy "host/v1/" keys; a deeper path is a containers namespace, not the whole host.
  return rest === '' || rest === 'v1' || rest === 'v2' ? credentialHostKey(key) : undefined;
}

function entryCredentials(entry: AuthEntry, path: string): Credentials | undefined {
  const str = (v: unknown) => (typeof v === 'string' && v !== '' ? v : undefined);
  let username = str(entry.username);
  let password = str(entry.password);
  const auth = str(entry.auth);
  if (auth !== undefined) {
    const decoded = Buffer.from(auth, 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    if (colon < 0)
      throw new CredentialsError(`an "auth" entry in ${path} is not base64 of user:password`, { path });
    username = decoded.slice(0, colon);
    password = decoded.slice(colon + 1);
  }
  const identityToken = str(entry.identitytoken);
  const registryToken = str(entry.registrytoken);
  if (
    username === undefined &&
    password === undefined &&
    identityToken === undefined &&
    registryToken === undefined
  ) {
    return undefined;
  }
  return {
    ...(username !== undefined ? { username } : {}),
    ...(password !== undefined && identityToken === undefined ? { password } : {}),
    ...(identityToken !== undefined ? { identityToken } : {}),
    ...(registryToken !== undefined ? { registryToken } : {}),
  };
}

async function fromConfig(
  config: ConfigFile,
  host: string,
  path: string,
  options: CredentialLookupOptions,
): Promise<Credentials | undefined> {
  const server = isDockerHub(host) ? DOCKER_HUB_CREDENTIAL_SERVER : stripRegistry(host);
  for (const [key, helper] of Object.entries(config.credHelpers ?? {})) {
    if (typeof helper === 'string' && helper !== '' && credentialHostKey(key) === host) {
      return await runCredentialHelper(helper, server, options);
    }
  }
  for (const [key, entry] of Object.entries(config.auths ?? {})) {
    if (authKeyHost(key) !== host || typeof entry !== 'object' || entry === null) continue;
    const found = entryCredentials(entry, path);
    if (found !== undefined) return found;
  }
  if (typeof config.credsStore === 'string' && config.credsStore !== '') {
    return await runCredentialHelper(config.credsStore, server, options);
  }
  return undefined;
}

/**
 * Runs `docker-credential-<helper> get` with the server on stdin and reads
 * `{"Username","Secret"}` from stdout. A `<token>` username means the secret
 * is an identity token. "credentials not found" and a missing helper program
 * give `undefined` (the latter with a warning); other failures raise
 * `CredentialsError` without the helper's output, which may hold secrets.
 */
export async function runCredentialHelper(
  helper: string,
  server: string,
  options: CredentialLookupOptions = {},
): Promise<Credentials | undefined> {
  if (!/^[A-Za-z0-9_.-]+$/.test(helper)) {
    throw new CredentialsError(`invalid credential helper name ${JSON.stringify(helper.slice(0, 64))}`, {
      helper,
    });
  }
  const program = `docker-credential-${helper}`;
  const env = options.env ?? process.env;
  const timeoutMs = options.helperTimeoutMs ?? 30_000;
  const result = await new Promise<{
    code: number | null;
    stdout: string;
    stderr: string;
    spawnError?: unknown;
  }>((resolve) => {
    let stdout = '';
    let stderr = '';
    let settled = false;
    const finish = (value: { code: number | null; spawnError?: unknown }) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      options.signal?.removeEventListener('abort', onAbort);
      resolve({ ...value, stdout, stderr });
    };
    const child = spawn(program, ['get'], { env: env as NodeJS.ProcessEnv, stdio: ['pipe', 'pipe', 'pipe'] });
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      finish({ code: null, spawnError: new Error(`timed out after ${timeoutMs} ms`) });
    }, timeoutMs);
    const onAbort = () => {
      child.kill('SIGKILL');
      finish({ code: null, spawnError: options.signal?.reason });
    };
    options.signal?.addEventListener('abort', onAbort, { once: true });
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      if (stdout.length < 1 << 20) stdout += chunk;
    });
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
      if (stderr.length < 1 << 16) stderr += chunk;
    });
    child.once('error', (error) => finish({ code: null, spawnError: error }));
    child.once('close', (code) => finish({ code }));
    child.stdin.on('error', () => {}); // a helper that exits without reading stdin
    child.stdin.end(server);
  });
  if (options.signal?.aborted) throw options.signal.reason;
  if (result.spawnError !== undefined) {
    if ((result.spawnError as NodeJS.ErrnoException).code === 'ENOENT') {
      options.logger?.warn?.(
        { helper },
        `credential helper ${program} is not installed; continuing without credentials`,
      );
      return undefined;
    }
    throw new CredentialsError(
      `credential helper ${program} failed: ${(result.spawnError as Error)?.message ?? 'error'}`,
      { helper },
      result.spawnError,
    );
  }
  if (result.code !== 0) {
    if (/credentials not found/i.test(result.stdout) || /credentials not found/i.test(result.stderr))
      return undefined;
    throw new CredentialsError(`credential helper ${program} exited with code ${result.code}`, {
      helper,
      exitCode: result.code,
    });
  }
  let value: unknown;
  try {
    value = JSON.parse(result.stdout);
  } catch {
    throw new CredentialsError(`credential helper ${program} printed something that is not JSON`, { helper });
  }
  const { Username: username, Secret: secret } = (value ?? {}) as { Username?: unknown; Secret?: unknown };
  if (typeof secret !== 'string' || secret === '') return undefined;
  if (username === '<token>') return { identityToken: secret };
  return { ...(typeof username === 'string' && username !== '' ? { username } : {}), password: secret };
}
