export { anonymousAuthorizer } from './anonymous.js';
export type { Access, AuthDecision, Authorizer, Principal } from './types.js';
