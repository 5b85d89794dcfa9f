import type {
  AppendUploadOptions,
  BlobContent,
  BlobInfo,
  Descriptor,
  Digest,
  FinishUploadOptions,
  GetBlobOptions,
  GetManifestOptions,
  ListOptions,
  ListPage,
  ManifestContent,
  MountBlobOptions,
  OperationOptions,
  PutManifestOptions,
  PutManifestResult,
  Referrers,
  ReferrersOptions,
  RegistryCapabilities,
  RegistryWithUploads,
  UploadStatus,
} from '@stowage/oci';
import { deleteBlob, getBlob, headBlob } from './api/blobs.js';
import { listRepositories, listTags } from './api/listing.js';
import { deleteManifest, deleteTag, getManifest, headManifest, putManifest } from './api/manifests.js';
import { capabilities, type PingResult, ping } from './api/ping.js';
import { type ClientPutBlobOptions, mountBlob, putBlob } from './api/push.js';
import { listReferrers } from './api/referrers.js';
import { appendUpload, cancelUpload, finishUpload, getUpload, startUpload } from './api/uploads.js';
import type { ClientBlobBody } from './internal/body.js';
import { ClientContext } from './internal/context.js';
import { clientOrigin } from './internal/origin.js';
import { type RegistryClientOptions, resolveOptions } from './options.js';

export type { ClientPutBlobOptions, PingResult };
export { referrersTag } from './api/referrers.js';
export type { BlobSourceFactory, ClientBlobBody } from './internal/body.js';

/** A `Registry` on a remote registry host, plus what only a remote client has. */
export interface RegistryClient extends RegistryWithUploads {
  /** `host[:port]` of the registry API (`registry-1.docker.io` for Docker Hub). */
  readonly registry: string;
  /** `GET /v2/` with credentials: checks the registry answers and the credentials work. */
  ping(options?: OperationOptions): Promise<PingResult>;
  /**
   * Uploads a blob. Besides bytes and async iterables it takes a function that
   * opens the content anew, which lets a failed upload restart from the
   * beginning; a plain stream can only be resumed within the chunk in flight.
   */
  putBlob(repository: string, body: ClientBlobBody, options: ClientPutBlobOptions): Promise<BlobInfo>;
  close(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

/**
 * Creates a client for one remote registry host, implementing `Registry` over
 * the OCI distribution API on undici. See `RegistryClientOptions`.
 */
export function createRegistryClient(options: RegistryClientOptions): RegistryClient {
  return new RemoteRegistry(resolveOptions(options));
}

/** The `Registry` members, each answered by its API area in `api/`. */
class RemoteRegistry implements RegistryClient {
  readonly registry: string;
  readonly origin: string;
  readonly #context: ClientContext;
  #closed = false;

  constructor(options: ReturnType<typeof resolveOptions>) {
    this.#context = new ClientContext(options);
    this.registry = options.registry;
    this.origin = clientOrigin(this.#context.registry.origin, options);
  }

  capabilities(options?: OperationOptions): Promise<RegistryCapabilities> {
    return capabilities(this.#context, options);
  }

  ping(options?: OperationOptions): Promise<PingResult> {
    return ping(this.#context, options);
  }

  listRepositories(options?: ListOptions): Promise<ListPage> {
    return listRepositories(this.#context, options);
  }

  listTags(repository: string, options?: ListOptions): Promise<ListPage> {
    return listTags(this.#context, repository, options);
  }

  getManifest(repository: string, reference: string, options?: GetManifestOptions): Promise<ManifestContent> {
    return getManifest(this.#context, repository, reference, options);
  }

  headManifest(
    repository: string,
    reference: string,
    options?: GetManifestOptions,
  ): Promise<Descriptor | undefined> {
    return headManifest(this.#context, repository, reference, options);
  }

  putManifest(
    repository: string,
    reference: string,
    options: PutManifestOptions,
  ): Promise<PutManifestResult> {
    return putManifest(this.#context, repository, reference, options);
  }

  deleteManifest(repository: string, digest: Digest, options?: OperationOptions): Promise<void> {
    return deleteManifest(this.#context, repository, digest, options);
  }

  deleteTag(repository: string, tag: string, options?: OperationOptions): Promise<void> {
    return deleteTag(this.#context, repository, tag, options);
  }

  listReferrers(repository: string, digest: Digest, options?: ReferrersOptions): Promise<Referrers> {
    return listReferrers(this.#context, repository, digest, options);
  }

  headBlob(repository: string, digest: Digest, options?: OperationOptions): Promise<BlobInfo | undefined> {
    return headBlob(this.#context, repository, digest, options);
  }

  getBlob(repository: string, digest: Digest, options?: GetBlobOptions): Promise<BlobContent> {
    return getBlob(this.#context, repository, digest, options);
  }

  deleteBlob(repository: string, digest: Digest, options?: OperationOptions): Promise<void> {
    return deleteBlob(this.#context, repository, digest, options);
  }

  mountBlob(repository: string, digest: Digest, options?: MountBlobOptions): Promise<BlobInfo | undefined> {
    return mountBlob(this.#context, repository, digest, options);
  }

  putBlob(repository: string, body: ClientBlobBody, options: ClientPutBlobOptions): Promise<BlobInfo> {
    return putBlob(this.#context, repository, body, options);
  }

  startUpload(repository: string, options?: OperationOptions): Promise<UploadStatus> {
    return startUpload(this.#context, repository, options);
  }

  getUpload(repository: string, id: string, options?: OperationOptions): Promise<UploadStatus> {
    return getUpload(this.#context, repository, id, options);
  }

  appendUpload(repository: string, id: string, options: AppendUploadOptions): Promise<UploadStatus> {
    return appendUpload(this.#context, repository, id, options);
  }

  finishUpload(repository: string, id: string, options: FinishUploadOptions): Promise<BlobInfo> {
    return finishUpload(this.#context, repository, id, options);
  }

  cancelUpload(repository: string, id: string, options?: OperationOptions): Promise<void> {
    return cancelUpload(this.#context, repository, id, options);
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#context.sessions.clear();
    await this.#context.transport.close();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}
