import type { Authorizer } from '@stowage/registry-server';
import { ConfigError, type ServerConfig } from './config.js';

/** The authorizer the configuration asks for; `undefined` is anonymous, anything allowed. */
export async function buildAuthorizer(config: ServerConfig): Promise<Authorizer | undefined> {
  if (config.auth.htpasswd || config.auth.token || config.access.length > 0) {
    throw new ConfigError('auth: htpasswd, token and access rules are not available yet');
  }
  return undefined;
}
