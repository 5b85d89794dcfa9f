import type { Authorizer } from './types.js';

/** Lets every request do everything: the embedded default. */
export const anonymousAuthorizer: Authorizer = {
  async authorize() {
    return { ok: true, principal: {} };
  },
};
