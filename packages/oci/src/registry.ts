/**
 * The one interface every Stowage store implements: a remote registry (the
 * client), the local image store, the database-backed store, the in-memory
 * reference store of the test kit. Features (sync, stages storage, the
 * server) only ever talk to a `Registry`.
 *
 * Conventions shared by every member:
 * - `repository` is a repository name without host (`library/alpine`); an
 *   invalid name is refused with `RegistryError` code `NAME_INVALID`.
 * - Refusals are `RegistryError`s with an OCI error code: `NAME_UNKNOWN`,
 *   `MANIFEST_UNKNOWN`, `BLOB_UNKNOWN`, `BLOB_UPLOAD_UNKNOWN`,
 *   `MANIFEST_INVALID`, `MANIFEST_BLOB_UNKNOWN`, `DIGEST_INVALID`,
 *   `SIZE_INVALID`, `RANGE_INVALID`, `UNSUPPORTED`, `DENIED`...
 *   Content that does not hash to the expected digest raises
 *   `DigestMismatchError` (code `DIGEST_INVALID`); wrong length raises
 *   `SizeMismatchError` (code `SIZE_INVALID`). Nothing is committed then.
 * - `head*` members answer `undefined` for content that does not exist, and
 *   throw only for real failures.
 * - Blob content always streams: it is never required to fit in memory.
 * - Every member takes an `AbortSignal` through its options.
 * - What a store can do beyond the required members is in `capabilities()`;
 *   upload sessions, `lock` and `garbageCollect` are optional members.
 */
import type { Readable } from 'node:stream';
import type { Digest } from './digest.js';
import type { Descriptor } from './types.js';

/** Options every operation accepts. */
export interface OperationOptions {
  readonly signal?: AbortSignal;
}

/** Blob content handed to a store: a byte array or any async iterable of chunks (Node streams, web streams, generators). */
export type BlobBody = Uint8Array | AsyncIterable<Uint8Array>;

/** Paging for tag and repository listings, as in the distribution API. */
export interface ListOptions extends OperationOptions {
  /** Largest number of entries to return; absent means the store's full listing. */
  readonly n?: number;
  /** Return entries strictly after this one in lexical order. */
  readonly last?: string;
}

/** One page of a listing, sorted in byte order. */
export interface ListPage {
  readonly items: readonly string[];
  /** Present when more entries follow: pass it as `last` to fetch the next page. */
  readonly next?: string;
}

/** A manifest as stored: its raw bytes are authoritative; the digest is the digest of those bytes. */
export interface ManifestContent {
  readonly digest: Digest;
  readonly mediaType: string;
  readonly size: number;
  readonly bytes: Uint8Array;
}

export interface GetManifestOptions extends OperationOptions {
  /** Media types the caller can accept, best first. Stores that hold one form only may ignore it. */
  readonly accept?: readonly string[];
}

export interface PutManifestOptions extends OperationOptions {
  /** The manifest's bytes, stored exactly as given. */
  readonly bytes: Uint8Array;
  /** The media type the manifest is stored and served with (the `Content-Type` of a push). */
  readonly mediaType: string;
  /**
   * Accept an index whose child manifests are not all in the repository (a
   * platform-filtered copy that keeps the index's bytes and digest). Only
   * stores whose capabilities say `sparseIndex` honour it; the others refuse
   * with `UNSUPPORTED`. Blobs and the children present are still checked.
   */
  readonly sparse?: boolean;
}

export interface PutManifestResult {
  readonly digest: Digest;
  /** The subject digest when the manifest declares one (the server echoes it as `OCI-Subject`). */
  readonly subject?: Digest;
}

/** What a store knows of a blob without reading it. */
export interface BlobInfo {
  readonly digest: Digest;
  readonly size: number;
}

/** An inclusive byte range, as in an HTTP `Range: bytes=start-end` header. */
export interface ByteRange {
  readonly start: number;
  /** Inclusive last byte; absent means to the end of the blob. */
  readonly end?: number;
}

export interface GetBlobOptions extends OperationOptions {
  readonly range?: ByteRange;
}

export interface BlobContent extends BlobInfo {
  /** The bytes requested (all of them, or the range); consume or destroy it. */
  readonly stream: Readable;
  /** The inclusive range served, present when a range was requested. */
  readonly range?: { readonly start: number; readonly end: number };
}

export interface PutBlobOptions extends OperationOptions {
  /** The digest the content must hash to; nothing is committed if it does not. */
  readonly digest: Digest;
  /** The exact length, when known; a mismatch is refused with `SIZE_INVALID`. */
  readonly size?: number;
  /**
   * The caller has just found the blob absent (a copy's `headBlob`): a store
   * that would ask first whether it has the blob (a remote one, to skip the
   * upload) may skip asking. A hint only: the result is the same either way.
   */
  readonly knownAbsent?: boolean;
}

export interface MountBlobOptions extends OperationOptions {
  /**
   * The repository to mount from. When absent, a store may mount from any
   * repository it holds the blob in (an "anonymous" mount); stores that cannot
   * answer `undefined`.
   */
  readonly from?: string;
}

export interface ReferrersOptions extends OperationOptions {
  /** Only referrers whose `artifactType` is this one. */
  readonly artifactType?: string;
}

export interface Referrers {
  /** One descriptor per referring manifest, with `artifactType` and `annotations` when the manifest has them. */
  readonly manifests: readonly Descriptor[];
  /** The filters the store applied (`['artifactType']` or none): the server reports them as `OCI-Filters-Applied`. */
  readonly filtersApplied: readonly string[];
}

/** The state of a chunked upload. */
export interface UploadStatus {
  /** Opaque session identifier, safe to put in a URL path segment. */
  readonly id: string;
  readonly repository: string;
  /** Number of bytes received so far: the offset the next chunk must start at. */
  readonly offset: number;
  /** When the session was started (ms since the epoch); stores purge old sessions. */
  readonly startedAt: number;
}

export interface AppendUploadOptions extends OperationOptions {
  /** The chunk. */
  readonly body: BlobBody;
  /**
   * The offset this chunk starts at. It must equal the session's current
   * offset: anything else is refused with `RANGE_INVALID` and the session is
   * left unchanged.
   */
  readonly offset?: number;
  /** The chunk's exact length when known (a `Content-Length`); a mismatch is refused with `SIZE_INVALID`. */
  readonly length?: number;
}

export interface FinishUploadOptions extends OperationOptions {
  /** The digest of the whole blob. On mismatch nothing is committed; the session stays open for retries only if the store says so. */
  readonly digest: Digest;
  /** A last chunk sent with the finishing request. */
  readonly body?: BlobBody;
  /** Where that last chunk starts (must equal the current offset). */
  readonly offset?: number;
  readonly length?: number;
}

/** A lock held on a store; release it (or `await using` it) when done. */
export interface RegistryLock extends AsyncDisposable {
  release(): Promise<void>;
}

export interface LockOptions extends OperationOptions {
  /** `exclusive` (the default) excludes every other holder; `shared` excludes only exclusive holders. */
  readonly mode?: 'shared' | 'exclusive';
}

export interface GarbageCollectOptions extends OperationOptions {
  /** Report what would be removed, remove nothing. */
  readonly dryRun?: boolean;
  /** Content younger than this is never removed, so an in-flight push is not broken. */
  readonly gracePeriodMs?: number;
}

export interface GarbageCollectReport {
  readonly blobsRemoved: readonly Digest[];
  readonly manifestsRemoved: readonly { readonly repository: string; readonly digest: Digest }[];
  readonly uploadsRemoved: number;
  readonly bytesFreed: number;
  readonly dryRun: boolean;
}

/**
 * What a store can do, asked at run time with `capabilities()`, so a feature
 * (and the conformance suite) learns it before trying rather than from an
 * `UNSUPPORTED` error. A store that claims a capability must honour it: the
 * conformance suite holds every store to what it claims.
 */
export interface RegistryCapabilities {
  /** `listRepositories` works. */
  readonly catalog: boolean;
  /** `listRepositories` honours `n` and `last`. */
  readonly catalogPaging: boolean;
  /** `listTags` honours `n` and `last`. */
  readonly tagPaging: boolean;
  readonly deleteTag: boolean;
  readonly deleteManifest: boolean;
  readonly deleteBlob: boolean;
  /**
   * How `listReferrers` is answered: from the store's own index of `subject`s
   * (`api`), from the referrers tag schema (`sha256-<hex>` index tags), or not
   * at all (`none`: `UNSUPPORTED`).
   */
  readonly referrers: 'api' | 'tag-schema' | 'none';
  /** `mountBlob` with `from` links without moving bytes. */
  readonly mount: boolean;
  /** `mountBlob` without `from` works. */
  readonly anonymousMount: boolean;
  /** The five upload-session members exist. */
  readonly uploadSessions: boolean;
  /** `getUpload` reports offsets, and unknown sessions as `BLOB_UPLOAD_UNKNOWN`. */
  readonly uploadStatus: boolean;
  /** An append at the wrong offset is refused with `RANGE_INVALID` and changes nothing. */
  readonly outOfOrderChunkRefusal: boolean;
  /** `getBlob` serves ranges. */
  readonly ranges: boolean;
  /** `sha512` digests are accepted. */
  readonly sha512: boolean;
  /** `putManifest` with `sparse: true` accepts an index whose children are absent. */
  readonly sparseIndex: boolean;
  /** `lock` exists and excludes as documented. */
  readonly lock: boolean;
  /** `garbageCollect` exists. */
  readonly garbageCollect: boolean;
}

/** Every capability: what the in-memory reference store and the image store offer. */
export const fullCapabilities: RegistryCapabilities = Object.freeze({
  catalog: true,
  catalogPaging: true,
  tagPaging: true,
  deleteTag: true,
  deleteManifest: true,
  deleteBlob: true,
  referrers: 'api',
  mount: true,
  anonymousMount: true,
  uploadSessions: true,
  uploadStatus: true,
  outOfOrderChunkRefusal: true,
  ranges: true,
  sha512: true,
  sparseIndex: true,
  lock: true,
  garbageCollect: true,
});

/** The five members of a chunked upload session; a store has all of them or none. */
export interface UploadSessions {
  /** Opens an upload session at offset 0. */
  startUpload(repository: string, options?: OperationOptions): Promise<UploadStatus>;

  /** Appends a chunk at the session's current offset. `BLOB_UPLOAD_UNKNOWN` for an unknown session. */
  appendUpload(repository: string, id: string, options: AppendUploadOptions): Promise<UploadStatus>;

  /** The session's offset. `BLOB_UPLOAD_UNKNOWN` for an unknown session. */
  getUpload(repository: string, id: string, options?: OperationOptions): Promise<UploadStatus>;

  /** Appends an optional last chunk, verifies the digest and commits the blob; the session ends. */
  finishUpload(repository: string, id: string, options: FinishUploadOptions): Promise<BlobInfo>;

  /** Abandons a session and frees what it holds. `BLOB_UPLOAD_UNKNOWN` for an unknown session. */
  cancelUpload(repository: string, id: string, options?: OperationOptions): Promise<void>;
}

/** True when a registry has upload sessions (narrows the type). */
export function hasUploadSessions<R extends Registry>(registry: R): registry is R & UploadSessions {
  return (
    typeof registry.startUpload === 'function' &&
    typeof registry.appendUpload === 'function' &&
    typeof registry.getUpload === 'function' &&
    typeof registry.finishUpload === 'function' &&
    typeof registry.cancelUpload === 'function'
  );
}

export interface Registry extends Partial<UploadSessions> {
  // --- identity and capabilities ---

  /**
   * Two registries with the same origin see the same content with the same
   * rights, so a copy between them may mount instead of moving bytes: a
   * client's is its scheme, host and a hash of its credential identity, a
   * local store's its root, an in-memory store's a per-instance id.
   */
  readonly origin: string;

  /** What this store can do (a remote one may ask its server once). */
  capabilities(options?: OperationOptions): Promise<RegistryCapabilities>;

  // --- repositories and tags ---

  /** The repository catalog, sorted, paged with `n`/`last`. */
  listRepositories(options?: ListOptions): Promise<ListPage>;

  /** The tags of a repository, sorted, paged with `n`/`last`. `NAME_UNKNOWN` when the repository does not exist. */
  listTags(repository: string, options?: ListOptions): Promise<ListPage>;

  /** Removes a tag; the manifest stays. `MANIFEST_UNKNOWN` when there is no such tag. */
  deleteTag(repository: string, tag: string, options?: OperationOptions): Promise<void>;

  // --- manifests ---

  /** A manifest by tag or digest, its bytes exactly as pushed. `MANIFEST_UNKNOWN` when absent. */
  getManifest(repository: string, reference: string, options?: GetManifestOptions): Promise<ManifestContent>;

  /** Digest, media type and size of a manifest by tag or digest; `undefined` when absent. */
  headManifest(
    repository: string,
    reference: string,
    options?: GetManifestOptions,
  ): Promise<Descriptor | undefined>;

  /**
   * Stores a manifest under a tag or under its digest. The manifest is validated;
   * every blob it references (and, for an index, every child manifest) must
   * already be in the repository, else `MANIFEST_BLOB_UNKNOWN`. When the
   * reference is a digest it must be the digest of `bytes`. Moving a tag is atomic.
   */
  putManifest(repository: string, reference: string, options: PutManifestOptions): Promise<PutManifestResult>;

  /** Deletes a manifest by digest, and every tag that points at it. `MANIFEST_UNKNOWN` when absent. */
  deleteManifest(repository: string, digest: Digest, options?: OperationOptions): Promise<void>;

  /** Manifests whose `subject` is the given digest. */
  listReferrers(repository: string, digest: Digest, options?: ReferrersOptions): Promise<Referrers>;

  // --- blobs ---

  /** Size of a blob linked into the repository; `undefined` when absent. */
  headBlob(repository: string, digest: Digest, options?: OperationOptions): Promise<BlobInfo | undefined>;

  /** Streams a blob, whole or a range. `BLOB_UNKNOWN` when absent, `RANGE_INVALID` for a range outside it. */
  getBlob(repository: string, digest: Digest, options?: GetBlobOptions): Promise<BlobContent>;

  /** Stores a blob in one go, verifying digest (and size) while it streams. */
  putBlob(repository: string, body: BlobBody, options: PutBlobOptions): Promise<BlobInfo>;

  /** Links a blob from another repository without moving bytes; `undefined` when it cannot (then upload it). */
  mountBlob(repository: string, digest: Digest, options?: MountBlobOptions): Promise<BlobInfo | undefined>;

  /** Unlinks a blob from the repository. `BLOB_UNKNOWN` when absent. */
  deleteBlob(repository: string, digest: Digest, options?: OperationOptions): Promise<void>;

  // --- optional members: upload sessions (from `UploadSessions`), lock, GC ---

  /** A named lock shared by every user of the same store (across processes where the store allows). */
  lock?(name: string, options?: LockOptions): Promise<RegistryLock>;

  /** Removes unreferenced content. */
  garbageCollect?(options?: GarbageCollectOptions): Promise<GarbageCollectReport>;

  /** Releases pools, file handles and timers. Idempotent. A store that refuses calls afterwards does so with `UNAVAILABLE`. */
  close?(): Promise<void>;
}

/** A registry that has upload sessions (its own, or from a shared implementation): the type concrete stores declare. */
export interface RegistryWithUploads extends Omit<Registry, keyof UploadSessions>, UploadSessions {}
