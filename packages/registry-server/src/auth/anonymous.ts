import { type AccessRule, allowedActions, covers } from './rules.js';
import type { Authorizer } from './types.js';

/** Lets every request do everything: the embedded default. */
export const anonymousAuthorizer: Authorizer = {
  async authorize() {
    return { ok: true, principal: {} };
  },
};

/**
 * No credentials at all, only rules: a repository a rule matches allows what
 * the rule's `anonymous` list says (403 for the rest); any other repository is
 * open, like the anonymous default.
 */
export function createRulesAuthorizer(rules: readonly AccessRule[]): Authorizer {
  return {
    async authorize(_request, access) {
      for (const entry of access) {
        if (entry.type !== 'repository') continue;
        const allowed = allowedActions(rules, entry.name, undefined);
        if (allowed && !covers(allowed, entry.actions)) {
          return {
            ok: false,
            status: 403,
            code: 'DENIED',
            message: `${entry.actions.join(',')} on ${entry.name} is not allowed`,
          };
        }
      }
      return { ok: true, principal: {} };
    },
    async pullable(_request, repositories) {
      return repositories.filter((name) => {
        const allowed = allowedActions(rules, name, undefined);
        return allowed === undefined || covers(allowed, ['pull']);
      });
    },
  };
}
