// The stores a command talks to, named as a user writes them: an image reference
// (crane's and skopeo's `docker://` form included) to a registry client, or
// `store:repository[:tag|@digest]` to the local image store at --root, or
// `oci:<dir>[:<tag>]` to an OCI image layout (skopeo's oci: transport). Credentials
// come from the Docker and containers auth files and credential helpers, as the
// client reads them.
import { existsSync, statSync } from 'node:fs';
import { resolve } from 'node:path';
import type { ImageStore, OciLayoutRegistry } from '@stowage/image-store';
import {
  type Digest,
  type ImageReference,
  isDigest,
  isValidTag,
  parseReference,
  type Registry,
  RegistryError,
} from '@stowage/oci';
import type { RegistryClient, RegistryClientOptions } from '@stowage/registry-client';
import { type OptionTable, usageError } from './command.js';

// Loaded on first use, not at start-up: a command that needs no registry never pays for undici.
let clientModule: typeof import('@stowage/registry-client') | undefined;

/** The transport prefix of the local image store (the one stowage-server serves from --root). */
export const STORE_PREFIX = 'store:';

/** skopeo's transport prefix of an OCI image layout directory: `oci:<dir>[:<tag>]`. */
export const OCI_PREFIX = 'oci:';

/** The one repository a layout directory is opened as (never shown: labels print the directory). */
const LAYOUT_REPOSITORY = 'layout';

const DIGEST_SUFFIX = /@([a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+)$/;

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

/** Help of the options that say how registries are reached. */
export const REGISTRY_OPTIONS_HELP = `  --plain-http           speak HTTP, not HTTPS, to the registries named (loopback ones always do)
  --insecure             HTTPS without checking the registry's certificate
  --authfile <file>      credentials from this Docker/containers auth file only (default: the
                         Docker and containers auth files and their credential helpers)`;

export const REMOTE_OPTIONS_HELP = `${REGISTRY_OPTIONS_HELP}
  --root <dir>           the local image store that store: names (default ./data, as
                         stowage-server); oci:<dir>[:<tag>] names an OCI image layout`;

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
  /** By host and the connection options it was opened with. */
  readonly #clients = new Map<string, RegistryClient>();
  #store: Promise<ImageStore> | undefined;
  readonly #layouts = new Map<string, OciLayoutRegistry>();

  constructor(command: string, values: RemoteValues, options: { readonly writes?: boolean } = {}) {
    this.#command = command;
    this.#values = values;
    this.#writes = options.writes ?? false;
  }

  /** The reference a user wrote (`docker://`, `store:` or `oci:` allowed), parsed; a malformed one is a usage error. */
  parse(text: string, what = 'image reference'): ImageReference {
    if (text.startsWith(OCI_PREFIX)) return this.#parseLayout(text, what);
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

  /**
   * `oci:<dir>[:<tag>]` (skopeo's form: the directory ends at the first colon)
   * or `oci:<dir>@<digest>`, as a reference whose registry is `oci:<absolute dir>`.
   */
  #parseLayout(text: string, what: string): ImageReference {
    let rest = text.slice(OCI_PREFIX.length);
    let digest: Digest | undefined;
    let tag: string | undefined;
    const byDigest = DIGEST_SUFFIX.exec(rest);
    if (byDigest) {
      if (!isDigest(byDigest[1])) {
        throw usageError(
          this.#command,
          `${JSON.stringify(text)}: ${byDigest[1]} is not a digest (the ${what})`,
        );
      }
      digest = byDigest[1] as Digest;
      rest = rest.slice(0, byDigest.index);
    } else {
      const colon = rest.indexOf(':');
      if (colon >= 0) {
        tag = rest.slice(colon + 1);
        rest = rest.slice(0, colon);
        if (!isValidTag(tag)) {
          throw usageError(
            this.#command,
            `${JSON.stringify(text)}: ${JSON.stringify(tag)} is not a valid tag (the ${what})`,
          );
        }
      }
    }
    if (rest === '') {
      throw usageError(
        this.#command,
        `${JSON.stringify(text)}: oci: needs a directory, as oci:<dir>[:<tag>] (the ${what})`,
      );
    }
    return {
      registry: `${OCI_PREFIX}${resolve(rest)}`,
      repository: LAYOUT_REPOSITORY,
      ...(tag !== undefined ? { tag } : {}),
      ...(digest !== undefined ? { digest } : {}),
    };
  }

  /** The OCI layout registry of one directory (read-only unless the command writes). */
  async #layout(dir: string): Promise<Registry> {
    let layout = this.#layouts.get(dir);
    if (!layout) {
      const { createOciLayoutRegistry } = await import('@stowage/image-store');
      layout = createOciLayoutRegistry({
        directories: { [LAYOUT_REPOSITORY]: dir },
        readOnly: !this.#writes,
      });
      this.#layouts.set(dir, layout);
    }
    return layout;
  }

  /**
   * The store of a registry host, of `store:` (the local image store) or of an `oci:` directory.
   * `side` overrides the command's --plain-http, --insecure and --authfile for
   * this one (copy's --src-* and --dest-* options).
   */
  async registry(host: string, side: RemoteValues = {}): Promise<Registry> {
    if (host === STORE_PREFIX) {
      this.#store ??= openLocalStore(this.#values.root, this.#writes);
      return await this.#store;
    }
    if (host.startsWith(OCI_PREFIX)) return await this.#layout(host.slice(OCI_PREFIX.length));
    clientModule ??= await import('@stowage/registry-client');
    const values: RemoteValues = {
      'plain-http': side['plain-http'] ?? this.#values['plain-http'],
      insecure: side.insecure ?? this.#values.insecure,
      authfile: side.authfile ?? this.#values.authfile,
    };
    const key = JSON.stringify([host, values['plain-http'], values.insecure, values.authfile]);
    let client = this.#clients.get(key);
    if (!client) {
      if (values.authfile !== undefined) this.#checkAuthFile(values.authfile);
      client = this.#createClient({
        registry: host,
        ...(values['plain-http'] ? { insecure: true } : {}),
        ...(values.insecure ? { tls: { [host]: { rejectUnauthorized: false } } } : {}),
        ...(values.authfile !== undefined ? { auth: { configPaths: [values.authfile] } } : {}),
      });
      this.#clients.set(key, client);
    }
    return client;
  }

  /** As skopeo: an --authfile that is not there is refused, not read as "no credentials". */
  #checkAuthFile(path: string): void {
    let file: boolean;
    try {
      file = statSync(path).isFile();
    } catch (error) {
      throw usageError(
        this.#command,
        `the credentials file ${path} is not accessible (${(error as NodeJS.ErrnoException).code ?? 'unreadable'}): give an existing --authfile, or log in first`,
      );
    }
    if (!file) throw usageError(this.#command, `the credentials file ${path} is not a file`);
  }

  /** A registry client: the client package is loaded once, by the first command that needs one. */
  #createClient(options: RegistryClientOptions): RegistryClient {
    if (!clientModule) throw new Error('unreachable: registry() loads the client first');
    return clientModule.createRegistryClient(options);
  }

  /** A reference and the store that holds it (`side` as for `registry`). */
  async open(text: string, what?: string, side?: RemoteValues): Promise<Remote> {
    const reference = this.parse(text, what);
    const registry = await this.registry(reference.registry, side);
    let target = reference.digest ?? reference.tag;
    if (target === undefined && reference.registry.startsWith(OCI_PREFIX)) {
      // skopeo's rule for a layout named without a tag: its one image, when it has one
      const tags = await registry.listTags(LAYOUT_REPOSITORY).then(
        (page) => page.items,
        () => [],
      );
      if (tags.length === 1) target = tags[0];
    }
    return { registry, reference, target: target ?? 'latest' };
  }

  /** How a reference is shown back: `store:repo`, `oci:<dir>`, or `registry/repo`. */
  static label(reference: ImageReference): string {
    if (reference.registry === STORE_PREFIX) return `${STORE_PREFIX}${reference.repository}`;
    if (reference.registry.startsWith(OCI_PREFIX)) return reference.registry;
    return `${reference.registry}/${reference.repository}`;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    const store = this.#store;
    await Promise.allSettled([
      ...[...this.#clients.values()].map((client) => client.close()),
      ...[...this.#layouts.values()].map((layout) => layout.close()),
      ...(store ? [store.then((s) => s.close())] : []),
    ]);
  }
}
