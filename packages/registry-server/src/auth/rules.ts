/**
 * Access rules by repository pattern: the first rule whose pattern matches a
 * repository decides what anonymous users, any authenticated user, and named
 * users may do there. `*` matches within one path segment, `**` any number of
 * segments (`public/**` is everything under `public/`, and `public` itself).
 */
import { globToRegExp } from '@stowage/oci';

/** Moved to `@stowage/oci` (sync's content rules use the same globs); exported here as before. */
export { globToRegExp };

export interface AccessRule {
  readonly repository: string;
  readonly anonymous?: readonly string[];
  readonly authenticated?: readonly string[];
  readonly users?: Readonly<Record<string, readonly string[]>>;
}

export function matchesRepository(pattern: string, repository: string): boolean {
  return globToRegExp(pattern).test(repository);
}

/**
 * The actions a rule's `users` list gives one user. Own properties only: a user
 * named `constructor`, `toString` or `__proto__` is a user, not a lookup into
 * `Object.prototype`.
 */
function userActions(rule: AccessRule, subject: string): readonly string[] {
  const users = rule.users;
  if (users === undefined || users === null || !Object.hasOwn(users, subject)) return [];
  const actions: unknown = users[subject];
  return Array.isArray(actions) ? actions.filter((a): a is string => typeof a === 'string') : [];
}

/**
 * What the first matching rule allows `subject` (undefined: anonymous) on a
 * repository, or `undefined` when no rule matches.
 */
export function allowedActions(
  rules: readonly AccessRule[],
  repository: string,
  subject: string | undefined,
): Set<string> | undefined {
  const rule = rules.find((r) => matchesRepository(r.repository, repository));
  if (!rule) return undefined;
  const allowed = new Set<string>(rule.anonymous ?? []);
  if (subject !== undefined) {
    for (const action of rule.authenticated ?? []) allowed.add(action);
    for (const action of userActions(rule, subject)) allowed.add(action);
  }
  if (allowed.has('*')) for (const action of ['pull', 'push', 'delete']) allowed.add(action);
  return allowed;
}

/** Whether every action is in `allowed` (`*` allows all). */
export function covers(allowed: ReadonlySet<string>, actions: readonly string[]): boolean {
  return allowed.has('*') || actions.every((action) => allowed.has(action));
}
