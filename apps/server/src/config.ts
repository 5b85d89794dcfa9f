import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { StowageError } from '@stowage/oci';
import { parse as parseYaml } from 'yaml';

export class ConfigError extends StowageError<'CONFIG_INVALID'> {
  constructor(message: string) {
    super('CONFIG_INVALID', message);
  }
}

/** Who may do what on repositories matching a glob (`*` one segment, `**` any). */
export interface AccessRuleConfig {
  readonly repository: string;
  readonly anonymous?: string[];
  readonly authenticated?: string[];
  readonly users?: Record<string, string[]>;
}

/** The server's configuration, every default applied. */
export interface ServerConfig {
  readonly root: string;
  readonly host: string;
  readonly port: number;
  readonly tls?: { readonly certificate: string; readonly key: string };
  readonly readOnly: boolean;
  readonly deleteEnabled: boolean;
  readonly logLevel: string;
  readonly uploadPurging: { readonly enabled: boolean; readonly ageMs: number; readonly intervalMs: number };
  readonly drainTimeoutMs: number;
  readonly limits: {
    readonly maxManifestSize: number;
    readonly maxBlobSize?: number;
    readonly bodyIdleTimeoutMs: number;
    /**
     * A request body slower than `bytesPerSecond` on average over `windowMs` is
     * cut (`limits.minbodyrate`, `limits.minbodyratewindow`; default 1KiB over 60s; 0 turns it off).
     */
    readonly minBodyRate: { readonly bytesPerSecond: number; readonly windowMs: number };
    /** Connections beyond this many are closed at once (`http.maxconnections`, default 1000). */
    readonly maxConnections: number;
  };
  readonly auth: {
    readonly htpasswd?: { readonly realm: string; readonly path: string };
    readonly token?: {
      readonly realm: string;
      readonly service: string;
      readonly issuer: string;
      readonly rootcertbundle: string;
    };
  };
  readonly access: readonly AccessRuleConfig[];
  readonly gcGracePeriodMs: number;
}

type Raw = Record<string, unknown>;

const UNITS: Readonly<Record<string, number>> = {
  ns: 1e-6,
  us: 1e-3,
  µs: 1e-3,
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
};

/** A Go duration (`30s`, `1h30m`, `500ms`) or a number of milliseconds. */
export function parseDuration(value: unknown, where: string): number {
  if (typeof value === 'number' && Number.isFinite(value) && value >= 0) return value;
  if (typeof value !== 'string' || value === '')
    throw new ConfigError(`${where}: expected a duration like 30s`);
  let total = 0;
  const pattern = /(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)/gy;
  let consumed = 0;
  for (let match = pattern.exec(value); match; match = pattern.exec(value)) {
    total += Number(match[1]) * (UNITS[match[2] as string] as number);
    consumed = pattern.lastIndex;
  }
  if (consumed !== value.length || consumed === 0) {
    throw new ConfigError(`${where}: ${JSON.stringify(value)} is not a duration (like 30s, 1h30m, 500ms)`);
  }
  return total;
}

/** A byte count: a number, or `4MiB`, `10GB`, `512k`. */
export function parseSize(value: unknown, where: string): number {
  if (typeof value === 'number' && Number.isSafeInteger(value) && value >= 0) return value;
  const match = typeof value === 'string' ? /^(\d+)\s*([kmgt]?)(i?b?)$/i.exec(value.trim()) : null;
  if (!match) throw new ConfigError(`${where}: ${JSON.stringify(value)} is not a size (like 4MiB)`);
  const power = ' kmgt'.indexOf((match[2] ?? '').toLowerCase() || ' ');
  const base = match[3]?.toLowerCase().startsWith('i') ? 1024 : match[2] ? 1000 : 1;
  return Number(match[1]) * base ** power;
}

function positiveInteger(value: unknown, where: string): number {
  const number = typeof value === 'string' && /^\d+$/.test(value) ? Number(value) : value;
  if (typeof number !== 'number' || !Number.isSafeInteger(number) || number < 1) {
    throw new ConfigError(`${where}: expected a positive integer`);
  }
  return number;
}

function section(raw: Raw, key: string): Raw {
  const value = raw[key];
  if (value === undefined || value === null) return {};
  if (typeof value !== 'object' || Array.isArray(value)) throw new ConfigError(`${key}: expected a mapping`);
  return value as Raw;
}

function text(value: unknown, where: string): string {
  if (typeof value !== 'string' || value === '') throw new ConfigError(`${where}: expected a string`);
  return value;
}

function bool(value: unknown, where: string, fallback: boolean): boolean {
  if (value === undefined || value === null) return fallback;
  if (typeof value === 'boolean') return value;
  if (value === 'true' || value === 'false') return value === 'true';
  throw new ConfigError(`${where}: expected true or false`);
}

function actions(value: unknown, where: string): string[] | undefined {
  if (value === undefined) return undefined;
  if (!Array.isArray(value) || value.some((v) => !['pull', 'push', 'delete', '*'].includes(v))) {
    throw new ConfigError(`${where}: expected a list of pull, push, delete`);
  }
  return value as string[];
}

/** `[host]:port`, `host:port` or `:port`. */
function parseAddr(value: unknown): { host: string; port: number } {
  const addr = String(value);
  const match = /^(?:\[([^\]]+)\]|([^:]*)):(\d{1,5})$/.exec(addr);
  const port = Number(match?.[3]);
  if (!match || port > 65535) throw new ConfigError(`http.addr: ${JSON.stringify(addr)} is not [host]:port`);
  return { host: match[1] ?? (match[2] || '0.0.0.0'), port };
}

/**
 * Environment overrides, as distribution reads them: `REGISTRY_HTTP_ADDR=:6000`
 * sets `http.addr`; `STOWAGE_` works the same. Values are read as YAML scalars.
 */
export function applyEnvironment(raw: Raw, env: NodeJS.ProcessEnv): Raw {
  const result = structuredClone(raw);
  for (const [name, value] of Object.entries(env)) {
    const prefix = ['STOWAGE_', 'REGISTRY_'].find((p) => name.startsWith(p));
    if (!prefix || value === undefined) continue;
    const path = name.slice(prefix.length).toLowerCase().split('_').filter(Boolean);
    if (path.length === 0) continue;
    let node = result;
    for (const key of path.slice(0, -1)) {
      const next = node[key];
      if (typeof next !== 'object' || next === null || Array.isArray(next)) node[key] = {};
      node = node[key] as Raw;
    }
    node[path[path.length - 1] as string] = parseYaml(value);
  }
  return result;
}

/** Builds the configuration from a parsed YAML document (relative paths resolve against `baseDir`). */
export function normalizeConfig(raw: Raw, baseDir: string): ServerConfig {
  const storage = section(raw, 'storage');
  const filesystem = section(storage, 'filesystem');
  const maintenance = section(storage, 'maintenance');
  const purging = section(maintenance, 'uploadpurging');
  const http = section(raw, 'http');
  const tls = section(http, 'tls');
  const auth = section(raw, 'auth');
  const limits = section(raw, 'limits');
  const gc = section(raw, 'gc');
  const log = section(raw, 'log');
  const { host, port } = parseAddr(http.addr ?? ':5000');
  const path = (value: unknown, where: string) => resolve(baseDir, text(value, where));
  let htpasswd: ServerConfig['auth']['htpasswd'];
  if (auth.htpasswd !== undefined) {
    const h = section(auth, 'htpasswd');
    htpasswd = {
      realm: typeof h.realm === 'string' ? h.realm : 'stowage',
      path: path(h.path, 'auth.htpasswd.path'),
    };
  }
  let token: ServerConfig['auth']['token'];
  if (auth.token !== undefined) {
    const t = section(auth, 'token');
    token = {
      realm: text(t.realm, 'auth.token.realm'),
      service: text(t.service, 'auth.token.service'),
      issuer: text(t.issuer, 'auth.token.issuer'),
      rootcertbundle: path(t.rootcertbundle, 'auth.token.rootcertbundle'),
    };
  }
  if (htpasswd && token) throw new ConfigError('auth: choose one of htpasswd and token');
  const accessRaw = raw.access ?? [];
  if (!Array.isArray(accessRaw)) throw new ConfigError('access: expected a list of rules');
  const access = accessRaw.map((rule: unknown, i): AccessRuleConfig => {
    if (typeof rule !== 'object' || rule === null) throw new ConfigError(`access[${i}]: expected a mapping`);
    const r = rule as Raw;
    const anonymous = actions(r.anonymous, `access[${i}].anonymous`);
    const authenticated = actions(r.authenticated, `access[${i}].authenticated`);
    let users: Record<string, string[]> | undefined;
    if (r.users !== undefined) {
      users = {};
      for (const [user, list] of Object.entries(section(r, 'users'))) {
        users[user] = actions(list, `access[${i}].users.${user}`) ?? [];
      }
    }
    return {
      repository: text(r.repository, `access[${i}].repository`),
      ...(anonymous ? { anonymous } : {}),
      ...(authenticated ? { authenticated } : {}),
      ...(users ? { users } : {}),
    };
  });
  return {
    root: path(filesystem.rootdirectory ?? './data', 'storage.filesystem.rootdirectory'),
    host,
    port,
    ...(tls.certificate !== undefined || tls.key !== undefined
      ? {
          tls: {
            certificate: path(tls.certificate, 'http.tls.certificate'),
            key: path(tls.key, 'http.tls.key'),
          },
        }
      : {}),
    readOnly: bool(section(maintenance, 'readonly').enabled, 'storage.maintenance.readonly.enabled', false),
    deleteEnabled: bool(section(storage, 'delete').enabled, 'storage.delete.enabled', true),
    logLevel: typeof log.level === 'string' ? log.level : 'info',
    uploadPurging: {
      enabled: bool(purging.enabled, 'storage.maintenance.uploadpurging.enabled', true),
      ageMs: parseDuration(purging.age ?? '168h', 'storage.maintenance.uploadpurging.age'),
      intervalMs: parseDuration(purging.interval ?? '24h', 'storage.maintenance.uploadpurging.interval'),
    },
    drainTimeoutMs: parseDuration(http.draintimeout ?? '30s', 'http.draintimeout'),
    limits: {
      maxManifestSize: parseSize(limits.maxmanifestsize ?? 4 * 1024 * 1024, 'limits.maxmanifestsize'),
      ...(limits.maxblobsize !== undefined
        ? { maxBlobSize: parseSize(limits.maxblobsize, 'limits.maxblobsize') }
        : {}),
      bodyIdleTimeoutMs: parseDuration(limits.bodyidletimeout ?? '60s', 'limits.bodyidletimeout'),
      minBodyRate: {
        bytesPerSecond: parseSize(limits.minbodyrate ?? 1024, 'limits.minbodyrate'),
        windowMs: parseDuration(limits.minbodyratewindow ?? '60s', 'limits.minbodyratewindow'),
      },
      maxConnections: positiveInteger(http.maxconnections ?? 1000, 'http.maxconnections'),
    },
    auth: { ...(htpasswd ? { htpasswd } : {}), ...(token ? { token } : {}) },
    access,
    gcGracePeriodMs: parseDuration(gc.graceperiod ?? '1h', 'gc.graceperiod'),
  };
}

export interface LoadOptions {
  /** A YAML file shaped like distribution's config.yml. */
  readonly configFile?: string;
  readonly env?: NodeJS.ProcessEnv;
  /** Flag overrides, already mapped to config paths (`http.addr` → value). */
  readonly overrides?: Readonly<Record<string, unknown>>;
}

/** File, then environment, then flags: each later source wins. */
export async function loadConfig(options: LoadOptions = {}): Promise<ServerConfig> {
  let raw: Raw = {};
  let baseDir = process.cwd();
  if (options.configFile) {
    const file = resolve(options.configFile);
    let document: unknown;
    try {
      document = parseYaml(await readFile(file, 'utf8'));
    } catch (error) {
      throw new ConfigError(`${file}: ${(error as Error).message}`);
    }
    if (document !== null && (typeof document !== 'object' || Array.isArray(document))) {
      throw new ConfigError(`${file}: expected a YAML mapping`);
    }
    raw = (document ?? {}) as Raw;
    baseDir = resolve(file, '..');
  }
  raw = applyEnvironment(raw, options.env ?? {});
  for (const [dotted, value] of Object.entries(options.overrides ?? {})) {
    if (value === undefined) continue;
    const keys = dotted.split('.');
    let node = raw;
    for (const key of keys.slice(0, -1)) {
      if (typeof node[key] !== 'object' || node[key] === null) node[key] = {};
      node = node[key] as Raw;
    }
    node[keys[keys.length - 1] as string] = value;
  }
  return normalizeConfig(raw, baseDir);
}
