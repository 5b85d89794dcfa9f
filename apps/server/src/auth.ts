import { readFile } from 'node:fs/promises';
import { isStowageError } from '@stowage/oci';
import {
  type AccessRule,
  type Authorizer,
  createHtpasswdAuthorizer,
  createRulesAuthorizer,
  createTokenAuthorizer,
} from '@stowage/registry-server';
import type { ServerConfig } from './config.js';
import { EXIT, pathFailure, StartupError } from './errors.js';

/** Reads a file the auth configuration names; a failure is one line saying which file and what to do. */
async function readAuthFile(
  path: string,
  what: string,
  fixes: Readonly<Record<string, string>>,
): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch (error) {
    throw pathFailure(error, `${what} ${path}`, fixes, EXIT.config);
  }
}

/** A refusal by the authorizer's own checks (a line that is not bcrypt, no key in a bundle), naming the file. */
async function built<T>(path: string, hint: string, build: () => T | Promise<T>): Promise<T> {
  try {
    return await build();
  } catch (error) {
    if (isStowageError(error, 'AUTH_CONFIG_INVALID')) {
      throw new StartupError(`${path}: ${error.message}; ${hint}`, EXIT.config, error);
    }
    throw error;
  }
}

/** The authorizer the configuration asks for; `undefined` is anonymous, anything allowed. */
export async function buildAuthorizer(config: ServerConfig): Promise<Authorizer | undefined> {
  const rules: AccessRule[] = config.access.map((rule) => ({ ...rule }));
  const htpasswd = config.auth.htpasswd;
  if (htpasswd) {
    const key = 'auth.htpasswd.path (--htpasswd)';
    const users = await readAuthFile(htpasswd.path, 'the htpasswd file', {
      ENOENT: `create it with htpasswd -B -c ${htpasswd.path} <user>, or fix ${key}`,
      EISDIR: `point ${key} at a file made with htpasswd -B -c <file> <user>`,
      default: `check ${key}`,
    });
    return built(htpasswd.path, 'make its lines with htpasswd -B', () =>
      createHtpasswdAuthorizer({ realm: htpasswd.realm, users, rules }),
    );
  }
  const token = config.auth.token;
  if (token) {
    const bundle = await readAuthFile(token.rootcertbundle, 'the token signing certificates', {
      default: "point auth.token.rootcertbundle at the token issuer's certificates (PEM)",
    });
    const keys = bundle.match(/-----BEGIN [^-]+-----[\s\S]+?-----END [^-]+-----/g) ?? [];
    return built(token.rootcertbundle, "give the token issuer's certificates or public keys in PEM", () =>
      createTokenAuthorizer({
        realm: token.realm,
        service: token.service,
        issuer: token.issuer,
        keys,
        rules,
      }),
    );
  }
  return rules.length > 0 ? createRulesAuthorizer(rules) : undefined;
}
