import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { databaseUrlProblem } from '@stowage/metadata-db';
import { isStowageError, parseGoDuration, StowageError } from '@stowage/oci';
import { parse as parseYaml } from 'yaml';
import { EXIT, pathFailure } from './errors.js';
import { readSyncSections, type ServerSyncConfig } from './sync.js';

export interface ConfigErrorOptions {
  /** The dotted configuration key the problem is about (`http.addr`, `access[0].users`). */
  readonly key?: string;
  /** What is wrong with it, without the key. */
  readonly detail?: string;
  /** Where the value came from: a flag (`--addr`), a variable (`REGISTRY_HTTP_ADDR`) or a file. */
  readonly origin?: string;
}

export class ConfigError extends StowageError<'CONFIG_INVALID'> {
  readonly key: string | undefined;
  readonly detail: string | undefined;
  readonly origin: string | undefined;
  constructor(message: string, options: ConfigErrorOptions = {}) {
    super('CONFIG_INVALID', message);
    this.key = options.key;
    this.detail = options.detail;
    this.origin = options.origin;
  }

  /** `key: detail`. */
  static at(key: string, detail: string): ConfigError {
    return new ConfigError(`${key}: ${detail}`, { key, detail });
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
  /**
   * Database mode: metadata in PostgreSQL, blobs under `root` (`database:`,
   * or `--database-url`); absent for the image store.
   */
  readonly database?: {
    /** `postgres://…` (its password is never logged). */
    readonly url: string;
    readonly maxConnections: number;
    readonly connectTimeoutMs: number;
  };
  /** The web UI at `/ui/` (`ui.enabled`, default true). */
  readonly ui: { readonly enabled: boolean };
  /** Database mode's online GC workers. */
  readonly onlineGc: {
    readonly enabled: boolean;
    /** How long after an event its blob or manifest is reviewed (`gc.reviewafter`, GitLab's default 24h). */
    readonly reviewAfterMs: number;
    /** The pause of an idle worker (`gc.interval`, default 5s). */
    readonly intervalMs: number;
    /** Delete manifests nothing keeps once reviewed (`gc.deleteuntagged`, default false). */
    readonly deleteUntagged: boolean;
  };
  /** Mirroring: the `sync:` section (zot's `extensions.sync`) or distribution's `proxy:`; absent when neither is given. */
  readonly sync?: ServerSyncConfig;
}

type Raw = Record<string, unknown>;

/** The log levels pino knows, in order. */
export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const;

/**
 * How stowage-server treats a configuration key: a section of keys, a value it
 * reads (`text`: an environment value is taken as it is, not read as YAML), a
 * distribution key that changes nothing here (accepted with a warning), or a
 * distribution key that would change behaviour and is not supported (refused).
 */
type KeyNode =
  | { readonly kind: 'section'; readonly children: KeyTree }
  | { readonly kind: 'value'; readonly text: boolean }
  | { readonly kind: 'ignored'; readonly reason: string }
  | { readonly kind: 'refused'; readonly reason: string };
type KeyTree = Readonly<Record<string, KeyNode>>;

const keys = (children: KeyTree): KeyNode => ({ kind: 'section', children });
const TEXT: KeyNode = { kind: 'value', text: true };
const VALUE: KeyNode = { kind: 'value', text: false };
const ignored = (reason: string): KeyNode => ({ kind: 'ignored', reason });
const refused = (reason: string): KeyNode => ({ kind: 'refused', reason });
const driver = (name: string): KeyNode =>
  refused(
    `the ${name} storage driver is not supported yet (stowage-server stores in storage.filesystem only)`,
  );

/** Every key stowage-server knows: its own, and distribution 2.8's (and 3.0's) that it reads, ignores or refuses. */
const KNOWN_KEYS: KeyTree = {
  version: VALUE,
  log: keys({
    level: TEXT,
    fields: ignored('extra fields are not added to the log lines'),
    formatter: ignored('logs are always JSON lines'),
    accesslog: ignored('every request is logged'),
    reportcaller: ignored('log lines do not name the calling function'),
    hooks: refused('log hooks (mail on errors) are not supported yet'),
  }),
  loglevel: refused('the old top-level loglevel is not read; use log.level'),
  storage: keys({
    filesystem: keys({
      rootdirectory: TEXT,
      maxthreads: ignored('filesystem calls are not limited to a number of threads'),
    }),
    delete: keys({ enabled: VALUE }),
    maintenance: keys({
      uploadpurging: keys({ enabled: VALUE, age: VALUE, interval: VALUE, dryrun: VALUE }),
      readonly: keys({ enabled: VALUE }),
    }),
    cache: ignored('there is no blob descriptor cache to configure'),
    redirect: ignored('the filesystem storage never redirects clients'),
    tag: ignored('tag lookups have no concurrency limit to configure'),
    inmemory: driver('inmemory'),
    s3: driver('s3'),
    azure: driver('azure'),
    gcs: driver('gcs'),
    swift: driver('swift'),
    oss: driver('oss'),
  }),
  http: keys({
    addr: TEXT,
    net: TEXT,
    host: ignored('Location headers are relative, so no external host name is needed'),
    relativeurls: ignored('Location headers are always relative'),
    secret: ignored('upload state is kept on disk, not signed into URLs'),
    prefix: refused('a route prefix is not supported yet (serve at /; a proxy in front can strip a prefix)'),
    draintimeout: VALUE,
    maxconnections: VALUE,
    headers: ignored('extra response headers are not sent'),
    http2: ignored('stowage-server speaks HTTP/1.1 only'),
    h2c: ignored('stowage-server speaks HTTP/1.1 only'),
    debug: refused('the debug server is not supported yet (metrics are at /metrics on http.addr)'),
    tls: keys({
      certificate: TEXT,
      key: TEXT,
      clientcas: refused('client certificates (mutual TLS) are not supported yet'),
      clientauth: refused('client certificates (mutual TLS) are not supported yet'),
      letsencrypt: refused("Let's Encrypt is not supported yet (give http.tls.certificate and http.tls.key)"),
      minimumtls: refused("a minimum TLS version is not supported yet (Node's default, TLS 1.2, applies)"),
      ciphersuites: refused('choosing cipher suites is not supported yet'),
    }),
  }),
  auth: keys({
    htpasswd: keys({ realm: TEXT, path: TEXT }),
    token: keys({
      realm: TEXT,
      service: TEXT,
      issuer: TEXT,
      rootcertbundle: TEXT,
      autoredirect: refused('token auth redirects are not supported yet'),
      jwks: refused('a JWKS file is not supported yet (give the keys in auth.token.rootcertbundle)'),
      signingalgorithms: refused('choosing signing algorithms is not supported yet'),
    }),
    silly: refused('silly auth is not supported (use auth.htpasswd or auth.token)'),
  }),
  notifications: refused('notifications (webhooks on pushes and pulls) are not supported yet'),
  proxy: keys({
    remoteurl: TEXT,
    username: TEXT,
    password: TEXT,
    ttl: VALUE,
    exec: refused('a credential helper is not supported yet (give proxy.username and proxy.password)'),
  }),
  /** zot's `extensions.sync` section; its keys are checked by @stowage/sync. */
  sync: VALUE,
  middleware: refused('middleware (registry, repository, storage) is not supported yet'),
  validation: refused('manifest validation settings are not supported yet'),
  compatibility: refused('schema1 manifests are not supported'),
  reporting: refused('error reporting to Bugsnag or New Relic is not supported yet'),
  catalog: refused("a catalog page limit is not supported yet (the client's n pages it)"),
  redis: ignored('nothing in stowage-server uses redis'),
  health: ignored('storage health checks are not run; /healthz and /readyz answer instead'),
  access: VALUE,
  limits: keys({
    maxmanifestsize: VALUE,
    maxblobsize: VALUE,
    bodyidletimeout: VALUE,
    minbodyrate: VALUE,
    minbodyratewindow: VALUE,
  }),
  gc: keys({
    graceperiod: VALUE,
    // database mode's online GC, in GitLab's names where it has one
    disabled: VALUE,
    reviewafter: VALUE,
    interval: VALUE,
    deleteuntagged: VALUE,
  }),
  /** The web UI at /ui/. */
  ui: keys({ enabled: VALUE }),
  /** Database mode (GitLab's `database:` section, or one `url`). */
  database: keys({
    enabled: VALUE,
    url: TEXT,
    host: TEXT,
    port: VALUE,
    user: TEXT,
    password: TEXT,
    dbname: TEXT,
    sslmode: TEXT,
    connecttimeout: VALUE,
    pool: keys({
      maxopen: VALUE,
      maxidle: ignored('idle connections are closed after 10 s'),
      maxlifetime: ignored('connections are not recycled by age'),
      maxidletime: ignored('idle connections are closed after 10 s'),
    }),
    draintimeout: ignored('the pool closes with the server'),
    preparedstatements: ignored('statements are not prepared'),
    primary: refused('a primary/replica split is not supported yet (give one database)'),
    loadbalancing: refused('database load balancing is not supported yet'),
    backgroundmigrations: ignored('there are no background migrations'),
    sslcert: refused('client certificates for PostgreSQL are not supported yet (put them in the url)'),
    sslkey: refused('client certificates for PostgreSQL are not supported yet (put them in the url)'),
    sslrootcert: refused('a CA file for PostgreSQL is not supported yet (put it in the url)'),
  }),
};

/** A key accepted but without effect here, reported once at start. */
export interface ConfigWarning {
  readonly key: string;
  /** The file or environment variable that set it. */
  readonly origin?: string;
  readonly message: string;
}

function isMapping(value: unknown): value is Raw {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function distance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      current[j] = Math.min(
        (current[j - 1] as number) + 1,
        (previous[j] as number) + 1,
        (previous[j - 1] as number) + cost,
      );
    }
    previous = current;
  }
  return previous[b.length] as number;
}

function unknownKey(dotted: string, siblings: KeyTree): ConfigError {
  const key = dotted.slice(dotted.lastIndexOf('.') + 1);
  const parent = dotted.slice(0, Math.max(0, dotted.lastIndexOf('.')));
  const near = Object.keys(siblings)
    .map((name) => ({ name, d: distance(key.toLowerCase(), name) }))
    .filter(({ d, name }) => d <= Math.min(2, name.length - 1))
    .sort((x, y) => x.d - y.d)[0];
  const hint = near
    ? `did you mean ${parent ? `${parent}.` : ''}${near.name}?`
    : 'the keys are listed in the stowage-server README';
  return ConfigError.at(dotted, `unknown configuration key; ${hint}`);
}

function refusal(dotted: string, reason: string): ConfigError {
  return ConfigError.at(dotted, `${reason}; remove it`);
}

/** Checks every key of `value` (a section's contents) against `tree`: warns on ignored keys, throws on the rest. */
function checkKeys(
  value: unknown,
  tree: KeyTree,
  path: string,
  warn: (key: string, reason: string) => void,
): void {
  if (value === undefined || value === null) return;
  if (!isMapping(value)) throw ConfigError.at(path, 'expected a mapping');
  for (const [key, child] of Object.entries(value)) {
    const dotted = path ? `${path}.${key}` : key;
    const node = Object.hasOwn(tree, key) ? tree[key] : undefined;
    if (node === undefined) throw unknownKey(dotted, tree);
    if (node.kind === 'section') checkKeys(child, node.children, dotted, warn);
    else if (node.kind === 'ignored') warn(dotted, node.reason);
    else if (node.kind === 'refused') throw refusal(dotted, node.reason);
  }
}

/** The node at a dotted path, or the ignored or refused key above it. */
function nodeAt(dotted: string): { node: KeyNode; key: string } | undefined {
  let tree = KNOWN_KEYS;
  const parts = dotted.split('.');
  for (const [i, part] of parts.entries()) {
    const node = Object.hasOwn(tree, part) ? tree[part] : undefined;
    const key = parts.slice(0, i + 1).join('.');
    if (node === undefined) return undefined;
    if (i === parts.length - 1 || node.kind === 'ignored' || node.kind === 'refused') return { node, key };
    if (node.kind !== 'section') return undefined;
    tree = node.children;
  }
  return undefined;
}

type EnvMatch = { path: string[]; node: KeyNode } | { unknown: string[] };

/** The key an environment variable's name (after its prefix, lower-cased) maps to. */
function envKey(rest: string, tree: KeyTree, path: string[]): EnvMatch | undefined {
  for (const [key, node] of Object.entries(tree)) {
    if (rest === key) return { path: [...path, key], node };
    if (!rest.startsWith(`${key}_`)) continue;
    if (node.kind === 'section') return envKey(rest.slice(key.length + 1), node.children, [...path, key]);
    if (node.kind !== 'value') return { path: [...path, key], node };
  }
  return path.length > 0 ? { unknown: [...path, rest] } : undefined;
}

function setPath(raw: Raw, path: readonly string[], value: unknown): void {
  let node = raw;
  for (const key of path.slice(0, -1)) {
    const next = Object.hasOwn(node, key) ? node[key] : undefined;
    if (!isMapping(next)) node[key] = {};
    node = node[key] as Raw;
  }
  node[path[path.length - 1] as string] = value;
}

export interface EnvironmentHooks {
  /** Called for a variable that sets a key without effect here, and for one under a known section that names no key. */
  readonly onWarning?: (warning: ConfigWarning) => void;
  /** Called with the dotted key each variable sets. */
  readonly onSet?: (key: string, variable: string) => void;
}

/**
 * Environment overrides, as distribution reads them: `REGISTRY_HTTP_ADDR=:6000`
 * sets `http.addr`; `STOWAGE_` works the same (and wins over `REGISTRY_`). Only
 * variables whose names map to a known key are read (`REGISTRY_PASSWORD` is not
 * a key, so it is left alone); values are YAML, except paths, addresses and
 * names, which are taken as they are. A value that does not parse, or a key that
 * is not supported, is refused naming the variable.
 */
export function applyEnvironment(raw: Raw, env: NodeJS.ProcessEnv, hooks: EnvironmentHooks = {}): Raw {
  const result = structuredClone(raw);
  for (const prefix of ['REGISTRY_', 'STOWAGE_']) {
    for (const [name, value] of Object.entries(env)) {
      if (!name.startsWith(prefix) || value === undefined) continue;
      const match = envKey(name.slice(prefix.length).toLowerCase(), KNOWN_KEYS, []);
      if (match === undefined) continue;
      const dotted = ('unknown' in match ? match.unknown : match.path).join('.');
      const where = `${name} (${dotted})`;
      if ('unknown' in match) {
        hooks.onWarning?.({
          key: dotted,
          origin: name,
          message: `${where} is not a configuration key; ignored`,
        });
        continue;
      }
      const { node, path } = match;
      if (node.kind === 'refused') {
        throw new ConfigError(`${where}: ${node.reason}; unset it`, { key: dotted, origin: name });
      }
      if (node.kind === 'ignored') {
        hooks.onWarning?.({ key: dotted, origin: name, message: `${where} is ignored: ${node.reason}` });
        continue;
      }
      let parsed: unknown = value;
      if (node.kind === 'section' || !node.text) {
        try {
          parsed = parseYaml(value);
        } catch (error) {
          const reason = (error as Error).message.split('\n')[0]?.replace(/:$/, '');
          throw new ConfigError(`${where}: ${JSON.stringify(value)} is not a YAML value (${reason})`, {
            key: dotted,
            origin: name,
          });
        }
      }
      if (node.kind === 'section') {
        try {
          checkKeys(parsed, node.children, dotted, (key, reason) =>
            hooks.onWarning?.({ key, origin: name, message: `${name} (${key}) is ignored: ${reason}` }),
          );
        } catch (error) {
          if (error instanceof ConfigError) {
            throw new ConfigError(`${name}: ${error.message}`, { key: dotted, origin: name });
          }
          throw error;
        }
      }
      setPath(result, path, parsed);
      hooks.onSet?.(dotted, name);
    }
  }
  return result;
}

/** A Go duration (`30s`, `1h30m`, `500ms`) or a number of milliseconds. */
export function parseDuration(value: unknown, where: string): number {
  if (typeof value === 'number' && Number.isFinite(value) && value >= 0) return value;
  if (typeof value !== 'string' || value === '') throw ConfigError.at(where, 'expected a duration like 30s');
  const ms = parseGoDuration(value);
  if (ms === undefined || ms < 0) {
    throw ConfigError.at(where, `${JSON.stringify(value)} is not a duration (like 30s, 1h30m, 500ms)`);
  }
  return ms;
}

/** A byte count: a number, or `4MiB`, `10GB`, `512k`. */
export function parseSize(value: unknown, where: string): number {
  if (typeof value === 'number' && Number.isSafeInteger(value) && value >= 0) return value;
  const match = typeof value === 'string' ? /^(\d+)\s*([kmgt]?)(i?b?)$/i.exec(value.trim()) : null;
  if (!match) throw ConfigError.at(where, `${JSON.stringify(value)} is not a size (like 4MiB)`);
  const power = ' kmgt'.indexOf((match[2] ?? '').toLowerCase() || ' ');
  const base = match[3]?.toLowerCase().startsWith('i') ? 1024 : match[2] ? 1000 : 1;
  return Number(match[1]) * base ** power;
}

function positiveInteger(value: unknown, where: string): number {
  const number = typeof value === 'string' && /^\d+$/.test(value) ? Number(value) : value;
  if (typeof number !== 'number' || !Number.isSafeInteger(number) || number < 1) {
    throw ConfigError.at(where, 'expected a positive integer');
  }
  return number;
}

function section(raw: Raw, key: string, where = key): Raw {
  const value = Object.hasOwn(raw, key) ? raw[key] : undefined;
  if (value === undefined || value === null) return {};
  if (!isMapping(value)) throw ConfigError.at(where, 'expected a mapping');
  return value;
}

function text(value: unknown, where: string): string {
  if (typeof value !== 'string' || value === '') throw ConfigError.at(where, 'expected a string');
  return value;
}

function bool(value: unknown, where: string, fallback: boolean): boolean {
  if (value === undefined || value === null) return fallback;
  if (typeof value === 'boolean') return value;
  if (value === 'true' || value === 'false') return value === 'true';
  throw ConfigError.at(where, 'expected true or false');
}

function actions(value: unknown, where: string): string[] | undefined {
  if (value === undefined) return undefined;
  if (!Array.isArray(value) || value.some((v) => !['pull', 'push', 'delete', '*'].includes(v))) {
    throw ConfigError.at(where, 'expected a list of pull, push, delete');
  }
  return value as string[];
}

/** `[host]:port`, `host:port` or `:port`. */
function parseAddr(value: unknown): { host: string; port: number } {
  const addr = String(value);
  const match = /^(?:\[([^\]]+)\]|([^:]*)):(\d{1,5})$/.exec(addr);
  const port = Number(match?.[3]);
  if (!match || port > 65535) {
    throw ConfigError.at(
      'http.addr',
      `${JSON.stringify(addr)} is not [host]:port (like :5000 or 127.0.0.1:5000)`,
    );
  }
  return { host: match[1] ?? (match[2] || '0.0.0.0'), port };
}

function logLevel(value: unknown): string {
  if (value === undefined || value === null) return 'info';
  if (typeof value !== 'string' || !(LOG_LEVELS as readonly string[]).includes(value)) {
    throw ConfigError.at(
      'log.level',
      `${JSON.stringify(value)} is not a log level; use one of ${LOG_LEVELS.join(', ')}`,
    );
  }
  return value;
}

/**
 * Builds the configuration from a parsed YAML document (relative paths resolve
 * against `baseDir`). Keys are checked by `loadConfig`, not here.
 */
export function normalizeConfig(raw: Raw, baseDir: string): ServerConfig {
  const storage = section(raw, 'storage');
  const filesystem = section(storage, 'filesystem', 'storage.filesystem');
  const maintenance = section(storage, 'maintenance', 'storage.maintenance');
  const purging = section(maintenance, 'uploadpurging', 'storage.maintenance.uploadpurging');
  const http = section(raw, 'http');
  const tls = section(http, 'tls', 'http.tls');
  const auth = section(raw, 'auth');
  const limits = section(raw, 'limits');
  const gc = section(raw, 'gc');
  const log = section(raw, 'log');
  if (http.net !== undefined && http.net !== null && http.net !== 'tcp') {
    throw ConfigError.at('http.net', `${JSON.stringify(http.net)} is not supported yet: only tcp`);
  }
  if (bool(purging.dryrun, 'storage.maintenance.uploadpurging.dryrun', false)) {
    throw ConfigError.at(
      'storage.maintenance.uploadpurging.dryrun',
      'a purge that only reports is not supported yet; remove it or set it to false',
    );
  }
  const { host, port } = parseAddr(http.addr ?? ':5000');
  const path = (value: unknown, where: string) => resolve(baseDir, text(value, where));
  let htpasswd: ServerConfig['auth']['htpasswd'];
  if (auth.htpasswd !== undefined) {
    const h = section(auth, 'htpasswd', 'auth.htpasswd');
    htpasswd = {
      realm: typeof h.realm === 'string' ? h.realm : 'stowage',
      path: path(h.path, 'auth.htpasswd.path'),
    };
  }
  let token: ServerConfig['auth']['token'];
  if (auth.token !== undefined) {
    const t = section(auth, 'token', 'auth.token');
    token = {
      realm: text(t.realm, 'auth.token.realm'),
      service: text(t.service, 'auth.token.service'),
      issuer: text(t.issuer, 'auth.token.issuer'),
      rootcertbundle: path(t.rootcertbundle, 'auth.token.rootcertbundle'),
    };
  }
  if (htpasswd && token) throw ConfigError.at('auth', 'choose one of htpasswd and token');
  const accessRaw = raw.access ?? [];
  if (!Array.isArray(accessRaw)) throw ConfigError.at('access', 'expected a list of rules');
  const access = accessRaw.map((rule: unknown, i): AccessRuleConfig => {
    if (!isMapping(rule)) throw ConfigError.at(`access[${i}]`, 'expected a mapping');
    for (const key of Object.keys(rule)) {
      if (!['repository', 'anonymous', 'authenticated', 'users'].includes(key)) {
        throw ConfigError.at(
          `access[${i}].${key}`,
          'unknown key; a rule has repository, anonymous, authenticated and users',
        );
      }
    }
    const anonymous = actions(rule.anonymous, `access[${i}].anonymous`);
    const authenticated = actions(rule.authenticated, `access[${i}].authenticated`);
    let users: Record<string, string[]> | undefined;
    if (rule.users !== undefined) {
      users = {};
      for (const [user, list] of Object.entries(section(rule, 'users', `access[${i}].users`))) {
        users[user] = actions(list, `access[${i}].users.${user}`) ?? [];
      }
    }
    return {
      repository: text(rule.repository, `access[${i}].repository`),
      ...(anonymous ? { anonymous } : {}),
      ...(authenticated ? { authenticated } : {}),
      ...(users ? { users } : {}),
    };
  });
  if ((tls.certificate === undefined) !== (tls.key === undefined)) {
    throw ConfigError.at('http.tls', 'give both the certificate and the key (--tls-cert and --tls-key)');
  }
  return {
    root: path(filesystem.rootdirectory ?? './data', 'storage.filesystem.rootdirectory'),
    host,
    port,
    ...(tls.certificate !== undefined
      ? {
          tls: {
            certificate: path(tls.certificate, 'http.tls.certificate'),
            key: path(tls.key, 'http.tls.key'),
          },
        }
      : {}),
    readOnly: bool(
      section(maintenance, 'readonly', 'storage.maintenance.readonly').enabled,
      'storage.maintenance.readonly.enabled',
      false,
    ),
    deleteEnabled: bool(section(storage, 'delete', 'storage.delete').enabled, 'storage.delete.enabled', true),
    logLevel: logLevel(log.level),
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
    ...databaseConfig(section(raw, 'database')),
    ui: { enabled: bool(section(raw, 'ui').enabled, 'ui.enabled', true) },
    onlineGc: {
      enabled: !bool(gc.disabled, 'gc.disabled', false),
      reviewAfterMs:
        gc.reviewafter === -1 || gc.reviewafter === '-1'
          ? 0
          : parseDuration(gc.reviewafter ?? '24h', 'gc.reviewafter'),
      intervalMs: parseDuration(gc.interval ?? '5s', 'gc.interval'),
      deleteUntagged: bool(gc.deleteuntagged, 'gc.deleteuntagged', false),
    },
  };
}

/**
 * The `database:` section: `url`, or GitLab's `host`, `port`, `user`,
 * `password`, `dbname`, `sslmode` made into one; nothing when it is absent
 * or `enabled: false`.
 */
function databaseConfig(database: Raw): Pick<ServerConfig, 'database'> {
  const enabled = bool(database.enabled, 'database.enabled', true);
  const parts = ['host', 'port', 'user', 'password', 'dbname', 'sslmode'].filter(
    (key) => database[key] !== undefined && database[key] !== null,
  );
  if (!enabled || (database.url === undefined && parts.length === 0)) {
    if (database.enabled === true || database.enabled === 'true') {
      throw ConfigError.at('database', 'enabled, but neither url nor host is given');
    }
    return {};
  }
  let url: string;
  if (database.url !== undefined) {
    if (parts.length > 0) {
      throw ConfigError.at('database.url', `give the url or ${parts.join(', ')}, not both`);
    }
    url = text(database.url, 'database.url');
  } else {
    const host = text(database.host, 'database.host');
    const port = database.port === undefined ? 5432 : positiveInteger(database.port, 'database.port');
    const user = database.user === undefined ? '' : encodeURIComponent(text(database.user, 'database.user'));
    const password =
      database.password === undefined
        ? ''
        : `:${encodeURIComponent(text(database.password, 'database.password'))}`;
    const dbname =
      database.dbname === undefined ? '' : encodeURIComponent(text(database.dbname, 'database.dbname'));
    const sslmode =
      database.sslmode === undefined
        ? ''
        : `?sslmode=${encodeURIComponent(text(database.sslmode, 'database.sslmode'))}`;
    const authority = `${user}${password}${user || password ? '@' : ''}${host.includes(':') ? `[${host}]` : host}:${port}`;
    url = `postgres://${authority}/${dbname}${sslmode}`;
  }
  const problem = databaseUrlProblem(url);
  if (problem !== undefined) {
    throw ConfigError.at(
      'database.url',
      `not a PostgreSQL URL (${problem}): expected postgres://user@host:5432/database`,
    );
  }
  const pool = section(database, 'pool', 'database.pool');
  return {
    database: {
      url,
      maxConnections:
        pool.maxopen === undefined ? 10 : positiveInteger(pool.maxopen, 'database.pool.maxopen'),
      connectTimeoutMs: parseDuration(database.connecttimeout ?? '10s', 'database.connecttimeout'),
    },
  };
}

export interface LoadOptions {
  /** A YAML file shaped like distribution's config.yml. */
  readonly configFile?: string;
  readonly env?: NodeJS.ProcessEnv;
  /** Flag overrides, already mapped to config paths (`http.addr` → value). */
  readonly overrides?: Readonly<Record<string, unknown>>;
  /** The flag each override came from (`http.addr` → `--addr`), for messages. */
  readonly overrideOrigins?: Readonly<Record<string, string>>;
  /** Each key accepted without effect, once. */
  readonly onWarning?: (warning: ConfigWarning) => void;
}

function covers(prefix: string, key: string): boolean {
  return key === prefix || key.startsWith(`${prefix}.`) || key.startsWith(`${prefix}[`);
}

/** The error, saying where its value came from: `--addr: …`, `REGISTRY_HTTP_ADDR (http.addr): …`, `file: key: …`. */
function located(error: ConfigError, origin: string | undefined): ConfigError {
  if (origin === undefined || error.origin !== undefined) return error;
  const options = {
    ...(error.key !== undefined ? { key: error.key } : {}),
    ...(error.detail !== undefined ? { detail: error.detail } : {}),
    origin,
  };
  if (origin.startsWith('--') && error.detail !== undefined) {
    return new ConfigError(`${origin}: ${error.detail}`, options);
  }
  if (/^[A-Z][A-Z0-9_]*$/.test(origin) && error.detail !== undefined) {
    return new ConfigError(`${origin} (${error.key}): ${error.detail}`, options);
  }
  return new ConfigError(`${origin}: ${error.message}`, options);
}

/** File, then environment, then flags: each later source wins. Unknown keys are refused. */
export async function loadConfig(options: LoadOptions = {}): Promise<ServerConfig> {
  let raw: Raw = {};
  let baseDir = process.cwd();
  /** Which source set which key, latest last. */
  const origins: [string, string][] = [];
  const seen = new Set<string>();
  const warn = (warning: ConfigWarning) => {
    if (seen.has(warning.message)) return;
    seen.add(warning.message);
    options.onWarning?.(warning);
  };
  let file: string | undefined;
  if (options.configFile) {
    file = resolve(options.configFile);
    let source: string;
    try {
      source = await readFile(file, 'utf8');
    } catch (error) {
      throw pathFailure(
        error,
        `the config file ${file}`,
        {
          ENOENT: 'check the path given to --config (or after serve)',
          EISDIR: 'give the path of a YAML file (like config.yml)',
          default: 'check the path given to --config (or after serve)',
        },
        EXIT.config,
      );
    }
    let document: unknown;
    try {
      document = parseYaml(source);
    } catch (error) {
      throw new ConfigError(
        `${file}: not valid YAML: ${(error as Error).message.split('\n')[0]?.replace(/:$/, '')}`,
        {
          origin: file,
        },
      );
    }
    if (document !== null && !isMapping(document)) {
      throw new ConfigError(`${file}: expected a YAML mapping (like distribution's config.yml)`, {
        origin: file,
      });
    }
    raw = document ?? {};
    baseDir = resolve(file, '..');
    try {
      checkKeys(raw, KNOWN_KEYS, '', (key, reason) =>
        warn({ key, origin: file, message: `${file}: ${key} is ignored: ${reason}` }),
      );
    } catch (error) {
      throw error instanceof ConfigError ? located(error, file) : error;
    }
  }
  raw = applyEnvironment(raw, options.env ?? {}, {
    onWarning: warn,
    onSet: (key, variable) => origins.push([key, variable]),
  });
  for (const [dotted, value] of Object.entries(options.overrides ?? {})) {
    if (value === undefined) continue;
    const origin = options.overrideOrigins?.[dotted];
    try {
      const found = nodeAt(dotted);
      if (found === undefined) throw unknownKey(dotted, {});
      if (found.node.kind === 'refused') throw refusal(found.key, found.node.reason);
      if (found.node.kind === 'ignored') {
        warn({ key: found.key, message: `${origin ?? dotted} is ignored: ${found.node.reason}` });
        continue;
      }
      if (found.node.kind === 'section') {
        checkKeys(value, found.node.children, dotted, (key, reason) =>
          warn({ key, message: `${key} is ignored: ${reason}` }),
        );
      }
    } catch (error) {
      throw error instanceof ConfigError ? located(error, origin) : error;
    }
    setPath(raw, dotted.split('.'), value);
    if (origin !== undefined) origins.push([dotted, origin]);
  }
  try {
    const config = normalizeConfig(raw, baseDir);
    const sync = await readSyncSections(raw, {
      baseDir,
      readOnly: config.readOnly,
      ...(file !== undefined ? { origin: file } : {}),
    }).catch((error: unknown) => {
      // @stowage/sync names the key in details; here it becomes the server's config error
      if (!isStowageError(error, 'CONFIG_INVALID') || typeof error.details.key !== 'string') throw error;
      const detail = typeof error.details.detail === 'string' ? error.details.detail : error.message;
      throw ConfigError.at(error.details.key, detail);
    });
    return sync ? { ...config, sync } : config;
  } catch (error) {
    if (!(error instanceof ConfigError) || error.key === undefined) throw error;
    const key = error.key;
    const origin = origins.findLast(([prefix]) => covers(prefix, key) || covers(key, prefix))?.[1] ?? file;
    throw located(error, origin);
  }
}
