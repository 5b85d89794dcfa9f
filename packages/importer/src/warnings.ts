/**
 * Why something was skipped. A skipped manifest is reported once per
 * repository and rule however many tags reach it; a skipped tag once per tag.
 */
export type SkipReason =
  | 'empty-manifest'
  | 'unknown-revision'
  | 'schema1-manifest'
  | 'invalid-digest-link'
  | 'unsupported-digest-link'
  | 'missing-tag-link'
  | 'unlinked-config'
  | 'unlinked-layer'
  | 'broken-index-child'
  | 'non-distributable-layer'
  | 'repository-without-manifests'
  /** the database refused the tag row (a data error such as a CHECK violation); the tag is not written */
  | 'tag-rejected';

export interface ImportWarning {
  readonly reason: SkipReason;
  readonly repository: string;
  readonly digest?: string;
  /** The (first) tag the skipped item was reached through. */
  readonly tag?: string;
  /** Every tag that pointed at a skipped manifest: none of them is created. */
  readonly tags?: readonly string[];
  readonly detail?: string;
}

/**
 * The identity of a warning: a skipped manifest (named by digest) is one
 * warning per repository and rule whatever tags reach it, as GitLab skips a
 * manifest once; tag-level problems are one per tag.
 */
export function warningKey(warning: ImportWarning): string {
  return warning.digest !== undefined && warning.reason !== 'tag-rejected'
    ? `${warning.reason}|${warning.repository}|@${warning.digest}`
    : `${warning.reason}|${warning.repository}|:${warning.tag ?? ''}`;
}
