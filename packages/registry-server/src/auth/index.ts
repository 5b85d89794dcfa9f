export { anonymousAuthorizer, createRulesAuthorizer } from './anonymous.js';
export { permitted, scopeOf } from './decide.js';
export {
  AuthConfigError,
  basicCredentials,
  createHtpasswdAuthorizer,
  type HtpasswdAuthorizer,
  type HtpasswdAuthorizerOptions,
  parseHtpasswd,
} from './htpasswd.js';
export { type AccessRule, allowedActions, globToRegExp, matchesRepository } from './rules.js';
export { createTokenAuthorizer, type TokenAuthorizerOptions } from './token.js';
export type { Access, AuthDecision, Authorizer, Principal } from './types.js';
