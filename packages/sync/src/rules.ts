/**
 * Content rules: which upstream repositories are mirrored, under which local
 * name, and which of their tags. zot's semantics: the first rule whose
 * `prefix` glob matches wins; `destination` and `stripPrefix` map the name.
 *
 * One difference from zot, on purpose: `stripPrefix` drops the literal path
 * segments of `prefix` before its first glob (`repo2/repo*` strips `repo2`),
 * where zot trims `/` and `*` off the ends of `prefix` and cuts that string
 * off the name (`repo2/repo*` would turn `repo2/repository` into `sitory`).
 * The two agree on the usual `a/b/**`, `a/b/*` and literal prefixes.
 */
import { globToRegExp, isValidRepositoryName } from '@stowage/oci';
import type { ContentRule, UpstreamConfig } from './config.js';

export interface RuleMatch {
  readonly rule: ContentRule;
  /** The upstream repository name. */
  readonly remote: string;
  /** The local repository name it is mirrored to. */
  readonly local: string;
}

const everything = new WeakMap<UpstreamConfig, ContentRule>();

/** The rule of an upstream without content rules: every repository, every tag, under its own name. */
function everythingRule(upstream: UpstreamConfig): ContentRule {
  let rule = everything.get(upstream);
  if (!rule) {
    rule = {
      prefix: '**',
      pattern: globToRegExp('**'),
      tags: { semver: false },
      stripPrefix: false,
      referrers: upstream.referrers,
    };
    everything.set(upstream, rule);
  }
  return rule;
}

/** The path segments of a prefix before its first glob (`a/b/**` → `a/b`; `a/x*` → `a`; `**` → ``). */
function literalPart(prefix: string): string {
  const segments = prefix.split('/');
  const firstGlob = segments.findIndex((segment) => segment.includes('*'));
  return (firstGlob < 0 ? segments : segments.slice(0, firstGlob)).join('/');
}

function joinNames(...parts: (string | undefined)[]): string {
  return parts.filter((part) => part !== undefined && part !== '').join('/');
}

/** The local name of an upstream repository the rule matched, or `undefined` when the mapping leaves no valid name. */
function localName(rule: ContentRule, remote: string): string | undefined {
  let rest = remote;
  if (rule.stripPrefix) {
    const literal = literalPart(rule.prefix);
    if (literal !== '') {
      if (remote === literal) rest = '';
      else if (remote.startsWith(`${literal}/`)) rest = remote.slice(literal.length + 1);
    }
  }
  const local = joinNames(rule.destination, rest);
  return isValidRepositoryName(local) ? local : undefined;
}

/** The rule covering an upstream repository and its local name, or `undefined` when no rule covers it. */
export function matchUpstreamRepository(upstream: UpstreamConfig, remote: string): RuleMatch | undefined {
  if (upstream.content.length === 0) return { rule: everythingRule(upstream), remote, local: remote };
  // the first rule whose glob matches decides, as zot's
  const rule = upstream.content.find((candidate) => candidate.pattern.test(remote));
  if (!rule) return undefined;
  const local = localName(rule, remote);
  return local === undefined ? undefined : { rule, remote, local };
}

/**
 * The reverse, for on-demand: the upstream repository a local name comes
 * from, under the first rule that maps some upstream name to it. An upstream
 * without content rules mirrors every name as it is.
 */
export function matchLocalRepository(upstream: UpstreamConfig, local: string): RuleMatch | undefined {
  if (upstream.content.length === 0) return { rule: everythingRule(upstream), remote: local, local };
  for (const rule of upstream.content) {
    let rest: string;
    if (rule.destination === undefined) rest = local;
    else if (local === rule.destination) rest = '';
    else if (local.startsWith(`${rule.destination}/`)) rest = local.slice(rule.destination.length + 1);
    else continue;
    const remote = rule.stripPrefix ? joinNames(literalPart(rule.prefix), rest) : rest;
    // the candidate must be one the rule covers and maps back to this very name
    if (remote !== '' && rule.pattern.test(remote) && localName(rule, remote) === local) {
      return { rule, remote, local };
    }
  }
  return undefined;
}

/**
 * What Masterminds semver v1's `NewVersion` accepts (zot's `semver: true`):
 * an optional `v`, one to three dot-separated numbers (`1`, `1.2`, `1.2.3`),
 * then an optional `-pre.release` and `+build`. Leading zeros are allowed;
 * each number must fit an int64.
 */
const SEMVER =
  /^v?([0-9]+)(?:\.([0-9]+))?(?:\.([0-9]+))?(?:-[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?(?:\+[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?$/;

const INT64_MAX = 2n ** 63n - 1n;

/** Whether a tag is a version as zot's semver filter sees it. */
export function isSemverTag(tag: string): boolean {
  const match = SEMVER.exec(tag);
  if (!match) return false;
  return match.slice(1, 4).every((part) => part === undefined || BigInt(part) <= INT64_MAX);
}

/** The tags a rule keeps, in the order given: `regex`, then `excludeRegex`, then `semver`. */
export function filterTags(rule: ContentRule, tags: readonly string[]): string[] {
  const { regex, excludeRegex, semver } = rule.tags;
  return tags.filter(
    (tag) =>
      (regex === undefined || regex.test(tag)) &&
      (excludeRegex === undefined || !excludeRegex.test(tag)) &&
      (!semver || isSemverTag(tag)),
  );
}
