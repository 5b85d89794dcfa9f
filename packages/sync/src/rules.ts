/**
 * Content rules: which upstream repositories are mirrored, under which local
 * name, and which of their tags. zot's semantics: the first rule whose
 * `prefix` glob matches wins; `destination` and `stripPrefix` map the name.
 */
import type { ContentRule, UpstreamConfig } from './config.js';

export interface RuleMatch {
  readonly rule: ContentRule;
  /** The upstream repository name. */
  readonly remote: string;
  /** The local repository name it is mirrored to. */
  readonly local: string;
}

/** The rule covering an upstream repository and its local name, or `undefined` when no rule covers it. */
export function matchUpstreamRepository(_upstream: UpstreamConfig, _remote: string): RuleMatch | undefined {
  throw new Error('not built yet');
}

/**
 * The reverse, for on-demand: the upstream repository a local name comes
 * from, under the first rule that maps some upstream name to it. An upstream
 * without content rules mirrors every name as it is.
 */
export function matchLocalRepository(_upstream: UpstreamConfig, _local: string): RuleMatch | undefined {
  throw new Error('not built yet');
}

/** The tags a rule keeps, in the order given: `regex`, then `excludeRegex`, then `semver`. */
export function filterTags(_rule: ContentRule, _tags: readonly string[]): string[] {
  throw new Error('not built yet');
}
