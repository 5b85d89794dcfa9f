import { readFile } from 'node:fs/promises';
import {
  type AccessRule,
  type Authorizer,
  createHtpasswdAuthorizer,
  createRulesAuthorizer,
  createTokenAuthorizer,
} from '@stowage/registry-server';
import type { ServerConfig } from './config.js';

/** The authorizer the configuration asks for; `undefined` is anonymous, anything allowed. */
export async function buildAuthorizer(config: ServerConfig): Promise<Authorizer | undefined> {
  const rules: AccessRule[] = config.access.map((rule) => ({ ...rule }));
  if (config.auth.htpasswd) {
    return createHtpasswdAuthorizer({
      realm: config.auth.htpasswd.realm,
      users: await readFile(config.auth.htpasswd.path, 'utf8'),
      rules,
    });
  }
  if (config.auth.token) {
    const bundle = await readFile(config.auth.token.rootcertbundle, 'utf8');
    const keys = bundle.match(/-----BEGIN [^-]+-----[\s\S]+?-----END [^-]+-----/g) ?? [];
    return createTokenAuthorizer({
      realm: config.auth.token.realm,
      service: config.auth.token.service,
      issuer: config.auth.token.issuer,
      keys,
      rules,
    });
  }
  return rules.length > 0 ? createRulesAuthorizer(rules) : undefined;
}
