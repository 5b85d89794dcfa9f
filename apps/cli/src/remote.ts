// The registries a command talks to: an image reference as a user writes it
// (crane's and skopeo's `docker://` form included) to a registry client and the
// repository, tag and digest it names. Credentials come from the Docker and
// containers auth files and credential helpers, as the client reads them.
import { type ImageReference, parseReference } from '@stowage/oci';
import { createRegistryClient, type RegistryClient } from '@stowage/registry-client';
import { type OptionTable, usageError } from './command.js';

/** Options of every command that talks to a registry. */
export const REMOTE_OPTIONS = {
  'plain-http': { type: 'boolean' },
  insecure: { type: 'boolean' },
  authfile: { type: 'string' },
} as const satisfies OptionTable;

export const REMOTE_OPTIONS_HELP = `  --plain-http           speak HTTP, not HTTPS, to the registries named (loopback ones always do)
  --insecure             HTTPS without checking the registry's certificate
  --authfile <file>      credentials from this Docker/containers auth file only (default: the
                         Docker and containers auth files and their credential helpers)`;

export interface RemoteValues {
  readonly 'plain-http'?: boolean | undefined;
  readonly insecure?: boolean | undefined;
  readonly authfile?: string | undefined;
}

/** A reference resolved to the client of its registry. */
export interface Remote {
  readonly client: RegistryClient;
  readonly reference: ImageReference;
  /** The tag or digest it names (`latest` when it names neither). */
  readonly target: string;
}

/**
 * Opens registry clients for one command, one per registry host, and closes
 * them all at the end.
 */
export class Remotes implements AsyncDisposable {
  readonly #values: RemoteValues;
  readonly #command: string;
  readonly #clients = new Map<string, RegistryClient>();

  constructor(command: string, values: RemoteValues) {
    this.#command = command;
    this.#values = values;
  }

  /** The reference a user wrote (`docker://` allowed), parsed; a malformed one is a usage error. */
  parse(text: string, what = 'image reference'): ImageReference {
    const bare = text.startsWith('docker://') ? text.slice('docker://'.length) : text;
    try {
      return parseReference(bare);
    } catch (error) {
      throw usageError(this.#command, `${(error as Error).message} (the ${what})`);
    }
  }

  /** The client of a registry host. */
  client(registry: string): RegistryClient {
    let client = this.#clients.get(registry);
    if (!client) {
      const values = this.#values;
      client = createRegistryClient({
        registry,
        ...(values['plain-http'] ? { insecure: true } : {}),
        ...(values.insecure ? { tls: { [registry]: { rejectUnauthorized: false } } } : {}),
        ...(values.authfile !== undefined ? { auth: { configPaths: [values.authfile] } } : {}),
      });
      this.#clients.set(registry, client);
    }
    return client;
  }

  /** A reference and the client of its registry. */
  open(text: string, what?: string): Remote {
    const reference = this.parse(text, what);
    return {
      client: this.client(reference.registry),
      reference,
      target: reference.digest ?? reference.tag ?? 'latest',
    };
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await Promise.allSettled([...this.#clients.values()].map((client) => client.close?.()));
  }
}
