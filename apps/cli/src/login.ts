// stowage login / logout: credentials checked against the registry, then kept in
// a Docker config.json (or the --authfile given: containers' auth.json has the same
// format) the way docker login writes it: {"auths": {"<host>": {"auth": base64(user:password)}}},
// every other key of the file left as it was.
import { randomBytes } from 'node:crypto';
import { readFile, rename, rm, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
// Our own mkdir -p: Node 20's recursive mkdir loops for ever where a parent refuses the entry (/proc).
import { mkdir } from '@stowage/blob-store';
import { defineCommand, GENERAL_OPTIONS_HELP, oneOperand, usageError } from './command.js';

/** Docker Hub's key in config.json, as docker writes it; every other registry is its host. */
const DOCKER_HUB_KEY = 'https://index.docker.io/v1/';
const DOCKER_HUB_HOSTS = new Set(['docker.io', 'index.docker.io', 'registry-1.docker.io']);

function keyOf(host: string): string {
  return DOCKER_HUB_HOSTS.has(host) ? DOCKER_HUB_KEY : host;
}

/** Where docker keeps its config: $DOCKER_CONFIG/config.json, else ~/.docker/config.json. */
function defaultAuthFile(): string {
  return join(process.env.DOCKER_CONFIG || join(process.env.HOME || homedir(), '.docker'), 'config.json');
}

/** The registry host a user named (`https://host/`, `docker://host` and a trailing path allowed). */
function hostOf(command: string, text: string): string {
  const host = text.replace(/^[a-z]+:\/\//, '').replace(/\/.*$/, '');
  if (!/^[A-Za-z0-9.-]+(:[0-9]+)?$|^\[[0-9A-Fa-f:]+\](:[0-9]+)?$/.test(host)) {
    throw usageError(command, `${JSON.stringify(text)} is not a registry host (host[:port])`);
  }
  return host;
}

interface AuthFile {
  auths?: Record<string, Record<string, unknown>>;
  [key: string]: unknown;
}

async function readAuthFile(path: string): Promise<AuthFile> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return {};
    throw error;
  }
  if (text.trim() === '') return {};
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    throw usageError(
      'login',
      `${path} is not JSON (${(error as Error).message}): fix it or give another --authfile`,
    );
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw usageError('login', `${path} does not hold a JSON object: fix it or give another --authfile`);
  }
  return parsed as AuthFile;
}

/** Replaces the file whole (temp file, renamed over it), readable by its owner only. */
async function writeAuthFile(path: string, content: AuthFile): Promise<void> {
  await mkdir(dirname(path), { recursive: true, mode: 0o700 });
  const temp = `${path}.${randomBytes(6).toString('hex')}.tmp`;
  try {
    await writeFile(temp, `${JSON.stringify(content, null, '\t')}\n`, { mode: 0o600, flag: 'wx' });
    await rename(temp, path);
  } catch (error) {
    await rm(temp, { force: true });
    throw error;
  }
}

async function readStdinLine(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks)
    .toString('utf8')
    .replace(/\r?\n$/, '');
}

const LOGIN_USAGE = 'usage: stowage login [options] <registry>';

export const loginCommand = defineCommand({
  name: 'login',
  synopsis: 'login <registry>',
  summary: 'check credentials with a registry and keep them in the Docker config',
  usage: LOGIN_USAGE,
  help: `${LOGIN_USAGE}

Checks the username and password with <registry> (host[:port]) and keeps them, as docker login
does, in $DOCKER_CONFIG/config.json (default ~/.docker/config.json) or the --authfile given
(containers' auth.json has the same format: podman and skopeo read either). Other entries and
settings of the file are kept. The password comes from stdin with --password-stdin, or from
--password (which other users of the machine may see in the process list).

options:
  -u, --username <name>  the user name
  --password-stdin       read the password from stdin
  -p, --password <word>  the password itself
  --authfile <file>      the file to write instead of the Docker config
  --plain-http           speak HTTP, not HTTPS, to the registry (loopback hosts always do)
  --insecure             HTTPS without checking the registry's certificate
${GENERAL_OPTIONS_HELP}

examples:
  stowage login 127.0.0.1:5000 -u admin --password-stdin --authfile ./auth.json < password.txt
  echo "$TOKEN" | stowage login registry.example -u ci --password-stdin`,
  options: {
    username: { type: 'string', short: 'u' },
    password: { type: 'string', short: 'p' },
    'password-stdin': { type: 'boolean' },
    authfile: { type: 'string' },
    'plain-http': { type: 'boolean' },
    insecure: { type: 'boolean' },
  },
  async run({ operands, values }) {
    const host = hostOf('login', oneOperand('login', operands, 'a registry'));
    if (values.username === undefined || values.username === '') {
      throw usageError('login', 'login needs --username');
    }
    if (values.password !== undefined && values['password-stdin']) {
      throw usageError('login', 'give --password or --password-stdin, not both');
    }
    if (values.password === undefined && !values['password-stdin']) {
      throw usageError('login', 'login needs the password: --password-stdin (or --password)');
    }
    const password = values.password ?? (await readStdinLine());
    if (password === '') throw usageError('login', 'the password is empty');
    const username = values.username;
    const file = values.authfile ?? defaultAuthFile();
    // read first, so a broken file is refused before the registry is asked anything
    const content = await readAuthFile(file);
    const { createRegistryClient } = await import('@stowage/registry-client');
    const client = createRegistryClient({
      registry: host,
      credentials: { username, password },
      auth: { useConfigFiles: false },
      ...(values['plain-http'] ? { insecure: true } : {}),
      ...(values.insecure ? { tls: { [host]: { rejectUnauthorized: false } } } : {}),
    });
    try {
      // GET /v2/, answered only with the credentials accepted (a 401 otherwise)
      await client.ping();
    } finally {
      await client.close();
    }
    const auths = { ...(content.auths ?? {}) };
    auths[keyOf(host)] = { auth: Buffer.from(`${username}:${password}`).toString('base64') };
    await writeAuthFile(file, { ...content, auths });
    process.stdout.write(`Login Succeeded (${host}, kept in ${file})\n`);
    return 0;
  },
});

const LOGOUT_USAGE = 'usage: stowage logout [options] <registry>';

export const logoutCommand = defineCommand({
  name: 'logout',
  synopsis: 'logout <registry>',
  summary: 'forget the credentials kept for a registry',
  usage: LOGOUT_USAGE,
  help: `${LOGOUT_USAGE}

Removes <registry>'s credentials from the Docker config (or --authfile), as docker logout does;
the rest of the file is kept. A registry with none kept is not an error.

options:
  --authfile <file>      the file to change instead of the Docker config
${GENERAL_OPTIONS_HELP}

example:
  stowage logout registry.example`,
  options: { authfile: { type: 'string' } },
  async run({ operands, values }) {
    const host = hostOf('logout', oneOperand('logout', operands, 'a registry'));
    const file = values.authfile ?? defaultAuthFile();
    const content = await readAuthFile(file);
    const key = keyOf(host);
    if (!content.auths || !Object.hasOwn(content.auths, key)) {
      process.stdout.write(`Not logged in to ${host}\n`);
      return 0;
    }
    const { [key]: _removed, ...auths } = content.auths;
    await writeAuthFile(file, { ...content, auths });
    process.stdout.write(`Removed login credentials for ${host}\n`);
    return 0;
  },
});
