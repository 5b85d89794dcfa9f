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

/** `repository:<name>:<actions>` scopes of what a request needs, space-separated. */
export function scopeOf(access: readonly Access[]): string {
  return access.map((a) => `${a.type}:${a.name}:${a.actions.join(',')}`).join(' ');
}
