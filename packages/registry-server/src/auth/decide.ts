import { isValidRepositoryName } from '@stowage/oci';
import { type AccessRule, allowedActions, covers } from './rules.js';
import type { Access } from './types.js';

/**
 * Whether a user (or anonymous, `undefined`) may do every access by the rules.
 * Without a matching rule an authenticated user may do anything and anonymous
 * nothing; the catalog needs an authenticated user.
 */
export function permitted(
  rules: readonly AccessRule[],
  subject: string | undefined,
  access: readonly Access[],
): boolean {
  for (const entry of access) {
    if (entry.type !== 'repository') {
      if (subject === undefined) return false;
      continue;
    }
    const allowed = allowedActions(rules, entry.name, subject);
    if (allowed === undefined) {
      if (subject === undefined) return false;
      continue;
    }
    if (!covers(allowed, entry.actions)) return false;
  }
  return true;
}

/**
 * The repositories of `repositories` a user (or anonymous, `undefined`) may pull
 * by the rules, in their order: the same decision as `permitted` with `pull`.
 */
export function pullableRepositories(
  rules: readonly AccessRule[],
  subject: string | undefined,
  repositories: readonly string[],
): string[] {
  return repositories.filter((name) =>
    permitted(rules, subject, [{ type: 'repository', name, actions: ['pull'] }]),
  );
}

/** A name and actions that may stand in a scope: nothing a header cannot carry, nothing that breaks the quoting. */
const SCOPE_PART = /^[a-z0-9*][a-z0-9._/*-]*$/;

/**
 * `repository:<name>:<actions>` scopes of what a request needs, space-separated.
 * Only valid repository names (and plain action words) go into a scope: an
 * access naming anything else is left out, so the scope is always safe to send
 * in a `WWW-Authenticate` header.
 */
export function scopeOf(access: readonly Access[]): string {
  return access
    .filter(
      (a) =>
        (a.type === 'repository' ? isValidRepositoryName(a.name) : SCOPE_PART.test(a.name)) &&
        a.actions.length > 0 &&
        a.actions.every((action) => SCOPE_PART.test(action)),
    )
    .map((a) => `${a.type}:${a.name}:${a.actions.join(',')}`)
    .join(' ');
}
