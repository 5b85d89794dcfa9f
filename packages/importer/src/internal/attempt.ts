// What one attempt at a repository's transaction found: kept only if it commits.
import type { LinkResult } from '../layout.js';
import { type ImportWarning, type SkipReason, warningKey } from '../warnings.js';

/** A manifest that cannot be imported, and why. */
export class Skip extends Error {
  readonly reason: SkipReason;
  readonly digest: string | undefined;
  constructor(reason: SkipReason, digest?: string, detail?: string) {
    super(detail ?? reason);
    this.reason = reason;
    this.digest = digest;
  }
}

/** The skip a link that could not be followed means: `missing` when it is absent. */
export function linkSkip(result: LinkResult & { ok: false }, missing: SkipReason, digest?: string): Skip {
  if (result.problem === 'invalid') return new Skip('invalid-digest-link', digest, result.text);
  if (result.problem === 'unsupported') return new Skip('unsupported-digest-link', digest, result.text);
  return new Skip(missing, digest);
}

type PendingWarning = { -readonly [K in keyof ImportWarning]: ImportWarning[K] };

export interface Attempt {
  /** Manifest ids imported in this attempt, by digest. */
  readonly done: Map<string, number>;
  /** Manifests found unimportable in this attempt, by digest. */
  readonly skipped: Map<string, Skip>;
  /** Warnings by `warningKey`, in the order first met. */
  readonly warnings: Map<string, PendingWarning>;
  manifests: number;
}

export function newAttempt(): Attempt {
  return { done: new Map(), skipped: new Map(), warnings: new Map(), manifests: 0 };
}

/** Records a warning in an attempt, folding the tags of a manifest reached several times into one. */
export function note(attempt: Attempt, warning: ImportWarning): void {
  const key = warningKey(warning);
  const known = attempt.warnings.get(key);
  if (!known) {
    attempt.warnings.set(key, { ...warning, ...(warning.tag ? { tags: [warning.tag] } : {}) });
    return;
  }
  if (warning.tag && !known.tags?.includes(warning.tag)) {
    known.tag ??= warning.tag;
    known.tags = [...(known.tags ?? []), warning.tag];
  }
}
