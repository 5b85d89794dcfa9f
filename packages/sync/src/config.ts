/**
 * The sync configuration: the shape of zot's `extensions.sync` section (so a
 * zot user's config works as it is), plus what zot lacks (`platforms`,
 * `referrers`, several upstreams per namespace in order), and the conversion of
 * distribution's `proxy:` section. `parseSyncConfig` checks everything before
 * anything runs, with errors naming the key.
 */
import { readFile as fsReadFile } from 'node:fs/promises';
import {
  globToRegExp,
  isValidRepositoryName,
  type Platform,
  parseGoDuration,
  parsePlatform,
} from '@stowage/oci';
import { configError, SyncError } from './errors.js';

/** Tag filters of a content rule, applied in this order: `regex` keeps, `excludeRegex` drops, `semver` keeps semver tags only. */
export interface TagRulesInput {
  readonly regex?: string;
  readonly excludeRegex?: string;
  readonly semver?: boolean;
}

/** One content rule as written (zot's `content[]`). */
export interface ContentRuleInput {
  /** A repository glob: `*` one path segment, `**` any number; a leading `/` is ignored (`/repo1/**`). */
  readonly prefix: string;
  readonly tags?: TagRulesInput;
  /** Where matching repositories go locally (`/mirror`): joined with the upstream name, or with what is left after `stripPrefix`. */
  readonly destination?: string;
  /** Drop the literal part of `prefix` (up to its first glob) from the upstream name before joining it to `destination`. */
  readonly stripPrefix?: boolean;
  /** Only these platforms of an index (`linux/amd64`, `linux/arm64/v8`); overrides the registry's. */
  readonly platforms?: readonly string[];
  /** Also mirror referrers (signatures, SBOMs); overrides the registry's. */
  readonly referrers?: boolean;
}

/** One upstream as written (zot's `registries[]`). */
export interface RegistryInput {
  /** `https://host[:port]` or `http://…`; the first is the origin, the rest mirrors tried in order. */
  readonly urls: readonly string[];
  /** Fetch missing images when a client asks for them (pull-through). Default false. */
  readonly onDemand?: boolean;
  /** How often to mirror `content` (a Go duration, `6h`, or milliseconds); absent or 0 means no periodic sync of this upstream. */
  readonly pollInterval?: string | number;
  /** Verify TLS certificates. Default true. */
  readonly tlsVerify?: boolean;
  /** A directory with `ca.crt` (and `client.cert` / `client.key` for mutual TLS), as containers' `certs.d`. */
  readonly certDir?: string;
  /** Retries of one failing request. Default 3. */
  readonly maxRetries?: number;
  /**
   * The least wait between retries (a Go duration or milliseconds). Default `1s`: zot has no
   * default (its examples say `5m`, far too long for one request); `Retry-After` is honoured when longer.
   */
  readonly retryDelay?: string | number;
  /** zot's flag; accepted, and refused when true (signature verification is not built). */
  readonly onlySigned?: boolean;
  /** What to mirror; absent means everything (on demand) or nothing periodic. */
  readonly content?: readonly ContentRuleInput[];
  /** Platforms of an index to mirror (`linux/amd64`); absent means all. */
  readonly platforms?: readonly string[];
  /** Also mirror referrers. Default true, as zot. */
  readonly referrers?: boolean;
  /** Repositories to mirror when the upstream has no catalog (docker.io): upstream names. */
  readonly repositories?: readonly string[];
  /** Image operations at once against this upstream. Default 4. */
  readonly concurrency?: number;
  /** How long an on-demand tag is trusted before the upstream is asked again (a Go duration). Default `5m`. */
  readonly checkInterval?: string | number;
  /** zot's flag; accepted and ignored: digests are always preserved (nothing is converted). */
  readonly preserveDigest?: boolean;
}

/** The whole section as written (zot's `extensions.sync`). */
export interface SyncConfigInput {
  /** Default true; false turns the section off. */
  readonly enable?: boolean;
  /** zot's credentials file: `{ "host[:port]": { "username": "…", "password": "…" } }`. */
  readonly credentialsFile?: string;
  /** zot's temp dir; accepted (staging lives in the destination's upload sessions). */
  readonly downloadDir?: string;
  readonly registries?: readonly RegistryInput[];
}

/** distribution's `proxy:` section: an on-demand sync of one upstream. */
export interface DistributionProxyInput {
  readonly remoteurl: string;
  readonly username?: string;
  readonly password?: string;
  /** How long a proxied tag is trusted (`168h` by default in distribution); `0` trusts it for ever, as distribution's `0` disables expiry. */
  readonly ttl?: string | number;
}

/** Compiled tag filters; `regex` and `excludeRegex` are unanchored, as Go's `MatchString`. */
export interface TagRules {
  readonly regex?: RegExp;
  readonly excludeRegex?: RegExp;
  readonly semver: boolean;
}

/** A content rule, checked and compiled. */
export interface ContentRule {
  /** The glob as written, without its leading `/`. */
  readonly prefix: string;
  /** `prefix` as an anchored expression over upstream names. */
  readonly pattern: RegExp;
  readonly tags: TagRules;
  /** Without leading or trailing `/`; absent for none (or `/`). */
  readonly destination?: string;
  readonly stripPrefix: boolean;
  /** The rule's own platforms; absent: the upstream's (`rule.platforms ?? upstream.platforms`). */
  readonly platforms?: readonly Platform[];
  /** The rule's `referrers`, else the upstream's. */
  readonly referrers: boolean;
}

export interface Credential {
  readonly username: string;
  readonly password: string;
}

/** An upstream, checked, every default applied. */
export interface UpstreamConfig {
  /** Position in `registries` (for messages: `registries[1]`). */
  readonly index: number;
  /** Normalised `scheme://host[:port]`, in order. */
  readonly urls: readonly string[];
  readonly onDemand: boolean;
  /** Milliseconds; absent: no periodic sync. */
  readonly pollIntervalMs?: number;
  readonly tlsVerify: boolean;
  readonly certDir?: string;
  readonly maxRetries: number;
  readonly retryDelayMs: number;
  readonly content: readonly ContentRule[];
  readonly platforms?: readonly Platform[];
  readonly referrers: boolean;
  readonly repositories?: readonly string[];
  readonly concurrency: number;
  /** Milliseconds; `Infinity` for a distribution proxy with `ttl: 0`. */
  readonly checkIntervalMs: number;
  /** Credentials by `host[:port]` (from `credentialsFile` or the proxy section); Docker/containers files are read too. */
  readonly credentials: Readonly<Record<string, Credential>>;
}

export interface SyncConfig {
  readonly enabled: boolean;
  readonly upstreams: readonly UpstreamConfig[];
}

export interface ParseSyncConfigOptions {
  /** Where the section came from, prefixed to messages (`/etc/stowage/config.yml: sync`). */
  readonly origin?: string;
  /** Read the credentials file (default `fs.readFile`); tests pass a map. */
  readonly readFile?: (path: string) => Promise<string>;
}

/** The defaults, one place (the README's table lists them). */
export const SYNC_DEFAULTS = {
  onDemand: false,
  tlsVerify: true,
  maxRetries: 3,
  retryDelayMs: 1000,
  referrers: true,
  concurrency: 4,
  checkIntervalMs: 5 * 60_000,
  /** distribution's `proxy.ttl`. */
  proxyTtlMs: 168 * 3_600_000,
} as const;

type Raw = Record<string, unknown>;

/** Checks values at one key, every message through `configError`. */
class Checker {
  constructor(readonly origin: string | undefined) {}

  fail(key: string, detail: string): SyncError {
    if (key === '') {
      // the section itself: the caller names it (`sync`, `extensions.sync`)
      return new SyncError('CONFIG_INVALID', `${this.origin ? `${this.origin}: ` : ''}${detail}`, {
        details: { key, detail, ...(this.origin ? { origin: this.origin } : {}) },
      });
    }
    return configError(key, detail, this.origin);
  }

  /**
   * The fields of a mapping by their canonical names. Keys match case-insensitively,
   * as zot's (viper) do; any other key is refused, with `refused[key]` as the reason when given.
   */
  fields(
    value: unknown,
    key: string,
    known: readonly string[],
    refused: Readonly<Record<string, string>> = {},
  ): Map<string, unknown> {
    if (typeof value !== 'object' || value === null || Array.isArray(value)) {
      throw this.fail(key, `expected a mapping, got ${describe(value)}`);
    }
    const canonical = new Map(known.map((name) => [name.toLowerCase(), name]));
    const refusals = new Map(Object.entries(refused).map(([name, why]) => [name.toLowerCase(), why]));
    const out = new Map<string, unknown>();
    const seen = new Set<string>();
    for (const [given, field] of Object.entries(value as Raw)) {
      const name = canonical.get(given.toLowerCase());
      const at = join(key, name ?? given);
      if (name === undefined) {
        const refusal = refusals.get(given.toLowerCase());
        const hint = known.find((k) => k.toLowerCase() === given.toLowerCase().replace(/[-_]/g, ''));
        throw this.fail(
          at,
          refusal ?? `unknown key${hint ? ` (did you mean ${hint}?)` : ''}; known keys: ${known.join(', ')}`,
        );
      }
      if (seen.has(name)) throw this.fail(at, 'given twice (keys are case-insensitive)');
      seen.add(name);
      // YAML's `key:` with nothing after it is null: the same as absent
      if (field !== undefined && field !== null) out.set(name, field);
    }
    return out;
  }

  boolean(value: unknown, key: string, fallback: boolean): boolean {
    if (value === undefined) return fallback;
    if (typeof value !== 'boolean') throw this.fail(key, `expected true or false, got ${describe(value)}`);
    return value;
  }

  text(value: unknown, key: string): string | undefined {
    if (value === undefined) return undefined;
    if (typeof value !== 'string') throw this.fail(key, `expected a string, got ${describe(value)}`);
    if (value.trim() === '') throw this.fail(key, 'empty');
    return value;
  }

  integer(value: unknown, key: string, fallback: number, min: number): number {
    if (value === undefined) return fallback;
    if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min) {
      throw this.fail(key, `expected an integer ≥ ${min}, got ${describe(value)}`);
    }
    return value;
  }

  /** A Go duration (`6h`, `1h30m`, `500ms`) or a number of milliseconds, never negative. */
  duration(value: unknown, key: string): number | undefined {
    if (value === undefined) return undefined;
    if (typeof value === 'number') {
      if (!Number.isFinite(value) || value < 0) {
        throw this.fail(key, `expected a duration (like 6h, 1h30m, 500ms) or milliseconds ≥ 0, got ${value}`);
      }
      return value;
    }
    const ms = typeof value === 'string' ? parseGoDuration(value) : undefined;
    if (ms === undefined) {
      throw this.fail(key, `${describe(value)} is not a duration (like 6h, 1h30m, 500ms)`);
    }
    if (ms < 0) throw this.fail(key, `${JSON.stringify(value)} is negative`);
    return ms;
  }

  list(value: unknown, key: string): readonly unknown[] | undefined {
    if (value === undefined) return undefined;
    if (!Array.isArray(value)) throw this.fail(key, `expected a list, got ${describe(value)}`);
    return value;
  }

  /** `http(s)://host[:port]`, normalised: lower-case host, default port and trailing `/` dropped. */
  url(value: unknown, key: string): string {
    if (typeof value !== 'string') throw this.fail(key, `expected a URL, got ${describe(value)}`);
    let url: URL;
    try {
      url = new URL(value.trim());
    } catch {
      throw this.fail(key, `${JSON.stringify(value)} is not a URL (like https://registry.example.com)`);
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') {
      throw this.fail(key, `${JSON.stringify(value)}: only http:// and https:// URLs are supported`);
    }
    if (url.host === '') throw this.fail(key, `${JSON.stringify(value)} has no host`);
    if (url.username !== '' || url.password !== '') {
      throw this.fail(key, 'credentials do not belong in the URL (use credentialsFile)');
    }
    if (url.pathname !== '/' && url.pathname !== '') {
      throw this.fail(key, `${JSON.stringify(value)}: a registry URL has no path (got ${url.pathname})`);
    }
    if (url.search !== '' || url.hash !== '') {
      throw this.fail(key, `${JSON.stringify(value)}: a registry URL has no query or fragment`);
    }
    return `${url.protocol}//${url.host}`;
  }

  platforms(value: unknown, key: string): readonly Platform[] | undefined {
    const items = this.list(value, key);
    if (items === undefined || items.length === 0) return undefined;
    return items.map((item, i) => {
      if (typeof item !== 'string')
        throw this.fail(`${key}[${i}]`, `expected os/arch[/variant], got ${describe(item)}`);
      try {
        return parsePlatform(item);
      } catch {
        throw this.fail(
          `${key}[${i}]`,
          `${JSON.stringify(item)} is not a platform (like linux/amd64, linux/arm64/v8)`,
        );
      }
    });
  }

  /** A tag expression, written for Go's RE2 and compiled for JavaScript. */
  regex(value: unknown, key: string): RegExp | undefined {
    const text = this.text(value, key);
    if (text === undefined) return undefined;
    try {
      return compileGoRegExp(text);
    } catch (error) {
      throw this.fail(key, `${JSON.stringify(text)} does not compile: ${(error as Error).message}`);
    }
  }
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'a mapping';
  if (typeof value === 'string') return JSON.stringify(value.length > 60 ? `${value.slice(0, 60)}…` : value);
  return String(value);
}

function join(key: string, name: string): string {
  return key === '' ? name : `${key}.${name}`;
}

/**
 * Compiles a Go (RE2) regular expression as JavaScript: the leading flag group
 * (`(?i)`, `(?s)`, `(?m)`, combined) becomes flags, `(?P<name>` becomes
 * `(?<name>`, `\A` and `\z` become `^` and `$`. POSIX classes (`[[:alpha:]]`)
 * and the `U` flag have no JavaScript form and are refused rather than read
 * differently.
 */
export function compileGoRegExp(source: string): RegExp {
  let text = source;
  let flags = '';
  const leading = /^\(\?([a-zA-Z]+)\)/.exec(text);
  if (leading) {
    for (const flag of leading[1] as string) {
      if (flag === 'i' || flag === 'm' || flag === 's') {
        if (!flags.includes(flag)) flags += flag;
      } else {
        throw new Error(`flag ${flag} is not supported (only i, m and s)`);
      }
    }
    text = text.slice(leading[0].length);
  }
  if (/\[:[a-z]+:\]/.test(text)) {
    throw new Error('POSIX classes like [[:alpha:]] are not supported (write [a-zA-Z])');
  }
  if (flags.includes('m') && /(^|[^\\])(\\\\)*\\[Az]/.test(text)) {
    throw new Error('\\A and \\z with the m flag are not supported');
  }
  // rewrite outside escapes only: an even run of backslashes before the construct
  text = text.replace(/(^|[^\\])((?:\\\\)*)\(\?P</g, '$1$2(?<');
  text = text.replace(/(^|[^\\])((?:\\\\)*)\\A/g, '$1$2^');
  text = text.replace(/(^|[^\\])((?:\\\\)*)\\z/g, '$1$2$');
  return new RegExp(text, flags);
}

const GLOB_SPECIALS = /[?[\]{}\\!]/;
const LITERAL_SEGMENT = /^[a-z0-9._-]*$/;

function contentRule(checker: Checker, value: unknown, key: string, registryReferrers: boolean): ContentRule {
  const fields = checker.fields(value, key, [
    'prefix',
    'tags',
    'destination',
    'stripPrefix',
    'platforms',
    'referrers',
  ]);
  const written = checker.text(fields.get('prefix'), join(key, 'prefix'));
  if (written === undefined)
    throw checker.fail(join(key, 'prefix'), 'required (a repository glob such as /repo1/**)');
  const prefix = written.startsWith('/') ? written.slice(1) : written;
  const prefixKey = join(key, 'prefix');
  const special = GLOB_SPECIALS.exec(prefix);
  if (special) {
    throw checker.fail(
      prefixKey,
      `${JSON.stringify(written)}: the glob character ${special[0]} is not supported (only * and **)`,
    );
  }
  for (const segment of prefix.split('/')) {
    if (segment === '') throw checker.fail(prefixKey, `${JSON.stringify(written)} has an empty path segment`);
    if (!LITERAL_SEGMENT.test(segment.replaceAll('*', ''))) {
      throw checker.fail(
        prefixKey,
        `${JSON.stringify(written)} can never match: repository names are lower-case letters, digits and . _ - /`,
      );
    }
  }

  const tagsKey = join(key, 'tags');
  const tagFields = fields.has('tags')
    ? checker.fields(fields.get('tags'), tagsKey, ['regex', 'excludeRegex', 'semver'])
    : new Map<string, unknown>();
  const regex = checker.regex(tagFields.get('regex'), join(tagsKey, 'regex'));
  const excludeRegex = checker.regex(tagFields.get('excludeRegex'), join(tagsKey, 'excludeRegex'));
  const tags: TagRules = {
    ...(regex ? { regex } : {}),
    ...(excludeRegex ? { excludeRegex } : {}),
    semver: checker.boolean(tagFields.get('semver'), join(tagsKey, 'semver'), false),
  };

  const destinationKey = join(key, 'destination');
  const destinationText = fields.has('destination') ? fields.get('destination') : undefined;
  if (destinationText !== undefined && typeof destinationText !== 'string') {
    throw checker.fail(
      destinationKey,
      `expected a repository path such as /mirror, got ${describe(destinationText)}`,
    );
  }
  const destination = destinationText?.replace(/^\/+|\/+$/g, '') || undefined;
  if (destination !== undefined && !isValidRepositoryName(destination)) {
    throw checker.fail(destinationKey, `${JSON.stringify(destinationText)} is not a repository path`);
  }
  const stripPrefix = checker.boolean(fields.get('stripPrefix'), join(key, 'stripPrefix'), false);
  if (stripPrefix && destination === undefined && !prefix.includes('*')) {
    throw checker.fail(
      join(key, 'stripPrefix'),
      `stripping the whole of ${JSON.stringify(written)} leaves no name: give a destination`,
    );
  }
  const platforms = checker.platforms(fields.get('platforms'), join(key, 'platforms'));
  return {
    prefix,
    pattern: globToRegExp(prefix),
    tags,
    ...(destination !== undefined ? { destination } : {}),
    stripPrefix,
    ...(platforms ? { platforms } : {}),
    referrers: checker.boolean(fields.get('referrers'), join(key, 'referrers'), registryReferrers),
  };
}

const REGISTRY_KEYS = [
  'urls',
  'onDemand',
  'pollInterval',
  'tlsVerify',
  'certDir',
  'maxRetries',
  'retryDelay',
  'onlySigned',
  'content',
  'platforms',
  'referrers',
  'repositories',
  'concurrency',
  'checkInterval',
  'preserveDigest',
] as const;

/** zot keys this sync does not do, each refused with why. */
const REGISTRY_REFUSED: Readonly<Record<string, string>> = {
  maxRetryDelay: "zot's maxRetryDelay is not supported (retries back off from retryDelay to 10s)",
  syncLegacyCosignTags:
    "zot's syncLegacyCosignTags is not supported (referrers are mirrored through the referrers API or tag schema)",
  credentialHelper:
    "zot's credentialHelper is not supported (use credentialsFile or Docker/containers credential files)",
  oauth2CredentialHelper: "zot's oauth2CredentialHelper is not supported (use credentialsFile)",
  syncTimeout: "zot's syncTimeout is not supported",
  responseHeaderTimeout: "zot's responseHeaderTimeout is not supported",
};

function upstream(
  checker: Checker,
  value: unknown,
  index: number,
  credentialsByHost: ReadonlyMap<string, Credential>,
): UpstreamConfig {
  const key = `registries[${index}]`;
  const fields = checker.fields(value, key, REGISTRY_KEYS, REGISTRY_REFUSED);
  const at = (name: string) => join(key, name);

  const urlList = checker.list(fields.get('urls'), at('urls'));
  if (urlList === undefined || urlList.length === 0) {
    throw checker.fail(at('urls'), 'required: at least one URL (https://registry.example.com)');
  }
  const urls: string[] = [];
  for (const [i, item] of urlList.entries()) {
    const url = checker.url(item, `${at('urls')}[${i}]`);
    const first = urls.indexOf(url);
    if (first >= 0) throw checker.fail(`${at('urls')}[${i}]`, `repeats urls[${first}] (${url})`);
    urls.push(url);
  }

  if (checker.boolean(fields.get('onlySigned'), at('onlySigned'), false)) {
    throw checker.fail(
      at('onlySigned'),
      'signature verification is not built; remove onlySigned or set it to false',
    );
  }
  checker.boolean(fields.get('preserveDigest'), at('preserveDigest'), true);

  const referrers = checker.boolean(fields.get('referrers'), at('referrers'), SYNC_DEFAULTS.referrers);
  const contentList = checker.list(fields.get('content'), at('content')) ?? [];
  const content = contentList.map((rule, i) =>
    contentRule(checker, rule, `${at('content')}[${i}]`, referrers),
  );

  const repositoryList = checker.list(fields.get('repositories'), at('repositories'));
  const repositories = repositoryList?.map((name, i) => {
    const text = typeof name === 'string' ? name.replace(/^\/+/, '') : name;
    if (!isValidRepositoryName(text)) {
      throw checker.fail(`${at('repositories')}[${i}]`, `${describe(name)} is not a repository name`);
    }
    return text;
  });

  const pollIntervalMs = checker.duration(fields.get('pollInterval'), at('pollInterval'));
  const platforms = checker.platforms(fields.get('platforms'), at('platforms'));
  const certDir = checker.text(fields.get('certDir'), at('certDir'));

  const credentials: Record<string, Credential> = {};
  for (const url of urls) {
    const host = new URL(url).host;
    const found = credentialFor(credentialsByHost, host);
    if (found) credentials[host] = found;
  }

  return {
    index,
    urls,
    onDemand: checker.boolean(fields.get('onDemand'), at('onDemand'), SYNC_DEFAULTS.onDemand),
    ...(pollIntervalMs ? { pollIntervalMs } : {}),
    tlsVerify: checker.boolean(fields.get('tlsVerify'), at('tlsVerify'), SYNC_DEFAULTS.tlsVerify),
    ...(certDir !== undefined ? { certDir } : {}),
    maxRetries: checker.integer(fields.get('maxRetries'), at('maxRetries'), SYNC_DEFAULTS.maxRetries, 0),
    retryDelayMs: checker.duration(fields.get('retryDelay'), at('retryDelay')) ?? SYNC_DEFAULTS.retryDelayMs,
    content,
    ...(platforms ? { platforms } : {}),
    referrers,
    ...(repositories && repositories.length > 0 ? { repositories } : {}),
    concurrency: checker.integer(fields.get('concurrency'), at('concurrency'), SYNC_DEFAULTS.concurrency, 1),
    checkIntervalMs:
      checker.duration(fields.get('checkInterval'), at('checkInterval')) ?? SYNC_DEFAULTS.checkIntervalMs,
    credentials,
  };
}

const DOCKER_HUB_HOSTS: ReadonlySet<string> = new Set([
  'docker.io',
  'index.docker.io',
  'registry-1.docker.io',
]);

/** A credentials file's key as `host[:port]`: scheme, path and trailing `/` dropped, lower-cased. */
function hostKey(text: string): string {
  const stripped = text.trim().replace(/^[a-z][a-z0-9+.-]*:\/\//i, '');
  const slash = stripped.indexOf('/');
  return (slash >= 0 ? stripped.slice(0, slash) : stripped).toLowerCase();
}

/** The entry for a host; Docker Hub's names stand for each other. */
function credentialFor(byHost: ReadonlyMap<string, Credential>, host: string): Credential | undefined {
  const direct = byHost.get(host);
  if (direct || !DOCKER_HUB_HOSTS.has(host)) return direct;
  for (const alias of DOCKER_HUB_HOSTS) {
    const found = byHost.get(alias);
    if (found) return found;
  }
  return undefined;
}

/**
 * zot's credentials file: `{ "host[:port]": { "username": "…", "password": "…" } }`.
 * Messages never quote the file's content (it holds passwords).
 */
async function readCredentialsFile(
  checker: Checker,
  path: string,
  readFile: (path: string) => Promise<string>,
): Promise<Map<string, Credential>> {
  const key = 'credentialsFile';
  let text: string;
  try {
    text = await readFile(path);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException)?.code;
    throw checker.fail(key, `cannot read ${path}${code ? ` (${code})` : ''}`);
  }
  let document: unknown;
  try {
    document = JSON.parse(text);
  } catch {
    throw checker.fail(
      key,
      `${path} is not valid JSON (expected { "host:port": { "username": …, "password": … } })`,
    );
  }
  if (typeof document !== 'object' || document === null || Array.isArray(document)) {
    throw checker.fail(key, `${path}: expected a mapping of host to { username, password }`);
  }
  const out = new Map<string, Credential>();
  for (const [host, entry] of Object.entries(document as Raw)) {
    const where = `${path}: ${JSON.stringify(host)}`;
    const normalised = hostKey(host);
    if (normalised === '') throw checker.fail(key, `${path}: an entry has an empty host`);
    if (out.has(normalised)) throw checker.fail(key, `${where} is given twice`);
    if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) {
      throw checker.fail(key, `${where}: expected { username, password }`);
    }
    let username: unknown;
    let password: unknown;
    for (const [field, value] of Object.entries(entry as Raw)) {
      // Go's encoding/json matches field names case-insensitively
      const name = field.toLowerCase();
      if (name === 'username') username = value;
      else if (name === 'password') password = value;
      else
        throw checker.fail(
          key,
          `${where}: unknown key ${JSON.stringify(field)} (only username and password)`,
        );
    }
    if (typeof username !== 'string' || typeof password !== 'string') {
      throw checker.fail(key, `${where}: username and password must both be strings`);
    }
    out.set(normalised, { username, password });
  }
  return out;
}

const defaultReadFile = (path: string) => fsReadFile(path, 'utf8');

/**
 * Checks a sync section (zot's shape) and applies the defaults. Every problem
 * is a `SyncError` `CONFIG_INVALID` whose `details.key` names the key:
 * unknown keys, wrong types, URLs that are not http(s), bad durations,
 * regular expressions that do not compile, platforms that do not parse.
 *
 * Keys match case-insensitively (zot reads its config through viper, so
 * `tlsverify` and `TLSVerify` are `tlsVerify` there too). Durations are Go
 * durations or numbers of milliseconds (zot would read a number as
 * nanoseconds). Defaults: `onDemand` false, `tlsVerify` true, `maxRetries` 3,
 * `retryDelay` 1s (zot has none), `referrers` true, `concurrency` 4,
 * `checkInterval` 5m, `content` none. `enable: false` still checks the section.
 */
export async function parseSyncConfig(
  input: unknown,
  options: ParseSyncConfigOptions = {},
): Promise<SyncConfig> {
  const checker = new Checker(options.origin);
  const fields = checker.fields(input, '', ['enable', 'credentialsFile', 'downloadDir', 'registries']);
  const enabled = checker.boolean(fields.get('enable'), 'enable', true);
  checker.text(fields.get('downloadDir'), 'downloadDir');
  const credentialsFile = checker.text(fields.get('credentialsFile'), 'credentialsFile');
  const credentials = credentialsFile
    ? await readCredentialsFile(checker, credentialsFile, options.readFile ?? defaultReadFile)
    : new Map<string, Credential>();
  const registries = checker.list(fields.get('registries'), 'registries') ?? [];
  const upstreams = registries.map((registry, index) => upstream(checker, registry, index, credentials));
  return { enabled, upstreams };
}

/**
 * distribution's `proxy:` section as a one-upstream on-demand sync config:
 * `remoteurl` the one URL, `username`/`password` its credentials (both or
 * neither), `ttl` the `checkInterval` (default `168h`, `0` for ever); no
 * polling, no content rules (every repository, under its own name).
 */
export async function proxyToSyncConfig(
  proxy: unknown,
  options: ParseSyncConfigOptions = {},
): Promise<SyncConfig> {
  const checker = new Checker(options.origin);
  const fields = checker.fields(proxy, '', ['remoteurl', 'username', 'password', 'ttl']);
  if (!fields.has('remoteurl'))
    throw checker.fail('remoteurl', 'required (the upstream, https://registry-1.docker.io)');
  const url = checker.url(fields.get('remoteurl'), 'remoteurl');
  const username = fields.get('username');
  const password = fields.get('password');
  if (username !== undefined && typeof username !== 'string')
    throw checker.fail('username', `expected a string, got ${describe(username)}`);
  if (password !== undefined && typeof password !== 'string')
    throw checker.fail('password', 'expected a string');
  if ((username === undefined) !== (password === undefined)) {
    throw checker.fail(
      username === undefined ? 'username' : 'password',
      'give username and password together',
    );
  }
  const ttl = checker.duration(fields.get('ttl'), 'ttl') ?? SYNC_DEFAULTS.proxyTtlMs;
  const host = new URL(url).host;
  return {
    enabled: true,
    upstreams: [
      {
        index: 0,
        urls: [url],
        onDemand: true,
        tlsVerify: SYNC_DEFAULTS.tlsVerify,
        maxRetries: SYNC_DEFAULTS.maxRetries,
        retryDelayMs: SYNC_DEFAULTS.retryDelayMs,
        content: [],
        referrers: SYNC_DEFAULTS.referrers,
        concurrency: SYNC_DEFAULTS.concurrency,
        checkIntervalMs: ttl === 0 ? Number.POSITIVE_INFINITY : ttl,
        credentials:
          typeof username === 'string' && typeof password === 'string'
            ? { [host]: { username, password } }
            : {},
      },
    ],
  };
}
