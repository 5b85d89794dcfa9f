/**
 * The sync configuration: the shape of zot's `extensions.sync` section (so a
 * zot user's config works as it is), plus what zot lacks (`platforms`,
 * `referrers`, several upstreams per namespace in order), and the conversion of
 * distribution's `proxy:` section. `parseSyncConfig` checks everything before
 * anything runs, with errors naming the key.
 */
import type { Platform } from '@stowage/oci';

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
  /** How often to mirror `content` (a Go duration, `6h`); absent means no periodic sync of this upstream. */
  readonly pollInterval?: string | number;
  /** Verify TLS certificates. Default true. */
  readonly tlsVerify?: boolean;
  /** A directory with `ca.crt` (and `client.cert` / `client.key` for mutual TLS), as containers' `certs.d`. */
  readonly certDir?: string;
  /** Retries of one failing request. Default 3. */
  readonly maxRetries?: number;
  /** The least wait between retries (a Go duration). Default `5m` as zot; `Retry-After` is honoured when longer. */
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
  /** How long a proxied tag is trusted (`168h` by default in distribution). */
  readonly ttl?: string | number;
}

export interface TagRules {
  readonly regex?: RegExp;
  readonly excludeRegex?: RegExp;
  readonly semver: boolean;
}

/** A content rule, checked and compiled. */
export interface ContentRule {
  readonly prefix: string;
  /** `prefix` as an anchored expression over upstream names. */
  readonly pattern: RegExp;
  readonly tags: TagRules;
  readonly destination?: string;
  readonly stripPrefix: boolean;
  readonly platforms?: readonly Platform[];
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

/**
 * Checks a sync section (zot's shape) and applies the defaults. Every problem
 * is a `SyncError` `CONFIG_INVALID` whose `details.key` names the key:
 * unknown keys, wrong types, URLs that are not http(s), bad durations,
 * regular expressions that do not compile, platforms that do not parse.
 */
export async function parseSyncConfig(
  _input: unknown,
  _options: ParseSyncConfigOptions = {},
): Promise<SyncConfig> {
  throw new Error('not built yet');
}

/** distribution's `proxy:` section as a one-upstream on-demand sync config. */
export function proxyToSyncConfig(_proxy: unknown, _options: ParseSyncConfigOptions = {}): Promise<SyncConfig> {
  throw new Error('not built yet');
}
