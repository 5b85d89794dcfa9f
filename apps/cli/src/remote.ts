// The stores a command talks to, named as a user writes them: an image reference
// (crane's and skopeo's `docker://` form included) to a registry client, or
// `store:repository[:tag|@digest]` to the local image store at --root. Credentials
// come from the Docker and containers auth files and credential helpers, as the
// client reads them.
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import type { ImageStore } from '@stowage/image-store';
import { type ImageReference, parseReference, type Registry, RegistryError } from '@stowage/oci';
import type { RegistryClient, RegistryClientOptions } from '@stowage/registry-client';
import { type OptionTable, usageError } from './command.js';

// Loaded on first use, not at start-up: a command that needs no registry never pays for undici.
let clientModule: typeof import('@stowage/registry-client') | undefined;

/** The transport prefix of the local image store (the one stowage-server serves from --root). */
export const STORE_PREFIX = 'store:';

/**
 * The local image store at `root` (default ./data). Read-only unless `writes`:
 * a read command then finds a missing store an error (not found) instead of
 * creating one.
 */
export async function openLocalStore(root: string | undefined, writes: boolean): Promise<ImageStore> {
  const dir = resolve(root ?? 'data');
  if (!writes && !existsSync(dir)) {
    throw new RegistryError('NAME_UNKNOWN', `no image store at ${dir} (give --root the store's directory)`);
  }
  const { createImageStore } = await import('@stowage/image-store');
  return await createImageStore({ root: dir, readOnly: !writes });
}

/** Options of every command that names images. */
export const REMOTE_OPTIONS = {
  'plain-http': { type: 'boolean' },
  insecure: { type: 'boolean' },
  authfile: { type: 'string' },
  root: { type: 'string' },
} as const satisfies OptionTable;

export const REMOTE_OPTIONS_HELP = `  --plain-http           speak HTTP, not HTTPS, to the registries named (loopback ones always do)
  --insecure             HTTPS without checking the registry's certificate
  --authfile <file>      credentials from this Docker/containers auth file only (default: the
                         Docker and containers auth files and their credential helpers)
  --root <dir>           the local image store that store: names (default ./data, as
                         stowage-server)`;

export interface RemoteValues {
  readonly 'plain-http'?: boolean | undefined;
  readonly insecure?: boolean | undefined;
  readonly authfile?: string | undefined;
  readonly root?: string | undefined;
}

/** A reference resolved to the store that holds it. */
export interface Remote {
  /** A registry client, or the local image store. */
  readonly registry: Registry;
  readonly reference: ImageReference;
  /** The tag or digest it names (`latest` when it names neither). */
  readonly target: string;
}

/**
 * Opens the stores of one command (a registry client per host, the image store
 * once) and closes them all at the end. `writes: false` opens the image store
 * read-only, so a read command never creates or changes one.
 */
export class Remotes implements AsyncDisposable {
  readonly #values: RemoteValues;
  readonly #command: string;
  readonly #writes: boolean;
  readonly #clients = new Map<string, RegistryClient>();
  #store: Promise<ImageStore> | undefined;

  constructor(command: string, values: RemoteValues, options: { readonly writes?: boolean } = {}) {
    this.#command = command;
    this.#values = values;
    this.#writes = options.writes ?? false;
  }

  /** The reference a user wrote (`docker://` or `store:` allowed), parsed; a malformed one is a usage error. */
  parse(text: string, what = 'image reference'): ImageReference {
    const local = text.startsWith(STORE_PREFIX);
    const bare = local
      ? text.slice(STORE_PREFIX.length)
      : text.startsWith('docker://')
        ? text.slice('docker://'.length)
        : text;
    let reference: ImageReference;
    try {
      reference = local
        ? parseReference(bare, { defaultRegistry: STORE_PREFIX, normalize: false })
        : parseReference(bare);
    } catch (error) {
      throw usageError(this.#command, `${(error as Error).message} (the ${what})`);
    }
    if (local && reference.registry !== STORE_PREFIX) {
      throw usageError(
        this.#command,
        `${JSON.stringify(text)}: store: takes a repository, not a registry host`,
      );
    }
    return reference;
  }

  /** The store of a registry host, or of `store:` (the local image store). */
  async registry(host: string): Promise<Registry> {
    if (host === STORE_PREFIX) {
      this.#store ??= openLocalStore(this.#values.root, this.#writes);
      return await this.#store;
    }
    clientModule ??= await import('@stowage/registry-client');
    let client = this.#clients.get(host);
    if (!client) {
      const values = this.#values;
      client = this.#createClient({
        registry: host,
        ...(values['plain-http'] ? { insecure: true } : {}),
        ...(values.insecure ? { tls: { [host]: { rejectUnauthorized: false } } } : {}),
        ...(values.authfile !== undefined ? { auth: { configPaths: [values.authfile] } } : {}),
      });
      this.#clients.set(host, client);
    }
    return client;
  }

  /** A registry client: the client package is loaded once, by the first command that needs one. */
  #createClient(options: RegistryClientOptions): RegistryClient {
    if (!clientModule) throw new Error('unreachable: registry() loads the client first');
    return clientModule.createRegistryClient(options);
  }

  /** A reference and the store that holds it. */
  async open(text: string, what?: string): Promise<Remote> {
    const reference = this.parse(text, what);
    return {
      registry: await this.registry(reference.registry),
      reference,
      target: reference.digest ?? reference.tag ?? 'latest',
    };
  }

  /** How a reference is shown back: `store:repo:tag`, or `registry/repo`. */
  static label(reference: ImageReference): string {
    return reference.registry === STORE_PREFIX
      ? `${STORE_PREFIX}${reference.repository}`
      : `${reference.registry}/${reference.repository}`;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    const store = this.#store;
    await Promise.allSettled([
      ...[...this.#clients.values()].map((client) => client.close()),
      ...(store ? [store.then((s) => s.close())] : []),
    ]);
  }
}
