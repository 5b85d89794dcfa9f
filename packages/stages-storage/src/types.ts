import type { Digest, OperationOptions, Registry } from '@stowage/oci';

/**
 * A stage: its content digest (sha3-224 hex) and creation time in Unix ms.
 * A multiplatform stage (a manifest list over per-platform stages) has
 * `creationTs` 0 and its tag is the bare digest.
 */
export interface StageID {
  readonly digest: string;
  readonly creationTs: number;
  /** `creationTs === 0`, as werf's `NewStageID` sets it. */
  readonly isMultiplatform: boolean;
}

/**
 * What werf keeps about an image (spec A.10, werf's `image.Info`). Field names
 * are ours; `toWerfInfoJson` writes werf's JSON keys in werf's order.
 */
export interface ImageInfo {
  /** The full reference, `<address>:<tag>`. */
  readonly name: string;
  /** `<address>` (registry host and repository path). */
  readonly repository: string;
  readonly tag: string;
  /** `<repository>@<manifest digest>`. */
  readonly repoDigest: string;
  readonly onBuild: readonly string[] | null;
  readonly env: readonly string[] | null;
  /** The config digest; the index digest for a manifest list. */
  readonly id: string;
  /** `config.Image`, else the `werf.io/base-image-id` label, else ''. */
  readonly parentId: string;
  readonly labels: Readonly<Record<string, string>> | null;
  /** Sum of the compressed layer sizes (of every child for an index). */
  readonly size: number;
  /** Config `created`, truncated to seconds, in ns (an exact JS number: a multiple of 1e9). */
  readonly createdAtUnixNano: number;
  readonly volumes: Readonly<Record<string, unknown>> | null;
  readonly isIndex: boolean;
  /** One entry per child of a manifest list. */
  readonly index: readonly ImageInfo[] | null;
}

/** A stage and what the storage knows of its image (werf's `StageDesc`). */
export interface StageDesc {
  readonly stageID: StageID;
  readonly info: ImageInfo;
}

/** werf's `CustomTagMetadata`: the labels `stage-id` and `tag` of a `custom-tag-meta-…` record. */
export interface CustomTagMetadata {
  /** `StageID.String()` of the stage the tag points at. */
  readonly stageId: string;
  readonly tag: string;
}

/** werf's `ImportMetadata` (labels `import-source-id`, `source-stage-id`, `checksum`; older `source-image-id` read too). */
export interface ImportMetadata {
  readonly importSourceId: string;
  readonly sourceStageId: string;
  readonly checksum: string;
}

export interface ClientIdRecord {
  readonly clientId: string;
  /** As werf writes it (about twice the real Unix ms, spec A.5.5): treat as opaque, smaller is older. */
  readonly timestampMillisec: number;
}

export interface SyncServerRecord {
  readonly server: string;
  readonly timestampMillisec: number;
}

export interface CleanupRecord {
  readonly timestampMillisec: number;
}

/** image name → stage ID → commits, as werf's `GetAllAndGroupImageMetadataByImageName`. */
export type ImageMetadataGroups = Map<string, Map<string, string[]>>;

export interface ImageMetadataListing {
  /** Groups whose metadata ID matches one of the image names asked for, keyed by that name. */
  readonly managed: ImageMetadataGroups;
  /** The other groups, keyed by the raw metadata ID. */
  readonly notManaged: ImageMetadataGroups;
}

/** Options of every read that is answered from the repository's tag listing. */
export interface ListingOptions extends OperationOptions {
  /**
   * Answer from this storage's last tag listing (listing once if there is
   * none) instead of listing again: a batch of reads lists the repository's
   * tags once. Writes made through this storage keep the cached listing
   * current. Default false: list afresh (and refresh the cache).
   */
  readonly cache?: boolean;
}

/** Where an image lives: a repository of some `Registry`. */
export interface ImageLocation {
  readonly registry: Registry;
  readonly repository: string;
}

/** The local image store's part (werf's container backend): where fetched stages land. */
export interface LocalImages {
  readonly registry: Registry;
  /** Repository for this storage's stages; default derived from the storage's address. */
  readonly repository?: string;
}

export interface ExportStageOptions extends OperationOptions {
  /** Where the exported image goes; `tag` required. */
  readonly destination: ImageLocation & { readonly tag: string };
  /**
   * Changes the image config (the `config` object of the config blob) after
   * every `werf*` label is removed. Returning a new object is fine.
   */
  readonly mutateConfig?: (
    config: Record<string, unknown>,
  ) => Record<string, unknown> | Promise<Record<string, unknown>>;
}

export interface ExportStageResult {
  readonly digest: Digest;
  readonly mediaType: string;
}

export interface PostMultiplatformImageOptions extends OperationOptions {
  /** The tag: the multiplatform digest (spec A.3), see `multiplatformStageID`. */
  readonly tag: string;
  /** The per-platform stages, each already in this storage. */
  readonly images: readonly StageDesc[];
}

export interface PutImportMetadataOptions extends OperationOptions {
  /** Write even when the record exists (werf's `Force`, used to regenerate an empty checksum). */
  readonly force?: boolean;
}

export interface ImageMetadataKey {
  /** An image name, a managed image name, or (for removal only) a raw metadata ID. */
  readonly imageName: string;
  /** The full git commit. */
  readonly commit: string;
  /** `StageID.String()` of the image's last stage. */
  readonly stageId: string;
}

/** What a stages storage can do beyond reading and writing stages. */
export interface StagesStorageCapabilities {
  /** `createRepo`: `implicit` where a first push creates the repository (every OCI registry), `unsupported` otherwise. */
  readonly createRepo: 'implicit' | 'unsupported';
  /** `deleteRepo` removes every manifest (needs manifest deletes). */
  readonly deleteRepo: boolean;
  /** Tags can be removed directly; without it a tag is retired by pointing it at a throwaway manifest. */
  readonly deleteTag: boolean;
  /** Manifests can be deleted by digest (stages, records). */
  readonly deleteManifest: boolean;
  /** Record images (managed images, metadata, rejects, client IDs) are kept; false for the local storage. */
  readonly records: boolean;
}

/**
 * werf's stages storage: every operation of its repo stages storage, over any
 * `Registry`. Stage and record tags are byte-compatible with werf v2.
 */
export interface StagesStorage {
  /** werf's `String()`/`Address()`: the repo address, or `:local` for the local storage. */
  readonly address: string;
  /** The werf project name: the value of the `werf` label on everything written. */
  readonly project: string;
  /** Where stage images are (for copies between storages). */
  readonly location: ImageLocation;

  capabilities(options?: OperationOptions): Promise<StagesStorageCapabilities>;

  /** `<address>:<digest>-<creationTs>`, or `<address>:<digest>` when creationTs is 0 (werf's `ConstructStageImageName`). */
  stageImageName(stage: Pick<StageID, 'digest' | 'creationTs'>): string;
  /** The tag of a stage in this storage. */
  stageTag(stage: Pick<StageID, 'digest' | 'creationTs'>): string;

  // --- stages ---
  listStageIDs(options?: ListingOptions): Promise<StageID[]>;
  listStageIDsByDigest(
    digest: string,
    options?: ListingOptions & { readonly parentCreationTs?: number },
  ): Promise<StageID[]>;
  /** `null` when absent or rejected; `BROKEN_IMAGE` when a blob or child it references is gone. */
  getStageDesc(
    stage: Pick<StageID, 'digest' | 'creationTs'>,
    options?: ListingOptions,
  ): Promise<StageDesc | null>;
  /** Deletes the stage image and its rejected record; absent is success. */
  deleteStage(desc: StageDesc, options?: OperationOptions): Promise<void>;
  rejectStage(stage: Pick<StageID, 'digest' | 'creationTs'>, options?: OperationOptions): Promise<void>;
  createRepo(options?: OperationOptions): Promise<void>;
  deleteRepo(options?: OperationOptions): Promise<void>;
  exportStage(desc: StageDesc, options: ExportStageOptions): Promise<ExportStageResult>;
  postMultiplatformImage(options: PostMultiplatformImageOptions): Promise<StageDesc>;
  /** Copies a stage from another storage unless it is here already; answers its description here. */
  copyFromStorage(
    source: StagesStorage,
    stage: Pick<StageID, 'digest' | 'creationTs'>,
    options?: OperationOptions,
  ): Promise<StageDesc | null>;

  // --- between this storage and the local image store ---
  /** Pulls the stage image into the local store. `BROKEN_IMAGE` when a blob is gone. */
  fetchImage(
    stage: Pick<StageID, 'digest' | 'creationTs'>,
    options: { readonly local: LocalImages } & OperationOptions,
  ): Promise<void>;
  /** Pushes the stage image from the local store. */
  storeImage(
    stage: Pick<StageID, 'digest' | 'creationTs'>,
    options: { readonly local: LocalImages } & OperationOptions,
  ): Promise<void>;
  /** False when the local store already has the stage image. */
  shouldFetchImage(
    stage: Pick<StageID, 'digest' | 'creationTs'>,
    options: { readonly local: LocalImages } & OperationOptions,
  ): Promise<boolean>;

  // --- custom tags ---
  addCustomTag(desc: StageDesc, tag: string, options?: OperationOptions): Promise<void>;
  /** Throws `CUSTOM_TAG_NOT_FOUND` or `CUSTOM_TAG_MISMATCH`. */
  checkCustomTag(desc: StageDesc, tag: string, options?: OperationOptions): Promise<void>;
  /** Removes the tag only: the stage (same digest) stays. Absent is success. */
  deleteCustomTag(tag: string, options?: OperationOptions): Promise<void>;
  registerCustomTag(desc: StageDesc, tag: string, options?: OperationOptions): Promise<void>;
  unregisterCustomTag(tagOrId: string, options?: OperationOptions): Promise<void>;
  /** `null` when there is no such record. */
  getCustomTagMetadata(tagOrId: string, options?: OperationOptions): Promise<CustomTagMetadata | null>;
  listCustomTagMetadataIds(options?: ListingOptions): Promise<string[]>;

  // --- managed images ---
  addManagedImage(imageName: string, options?: OperationOptions): Promise<void>;
  removeManagedImage(imageName: string, options?: OperationOptions): Promise<void>;
  managedImageExists(imageName: string, options?: ListingOptions): Promise<boolean>;
  listManagedImages(options?: ListingOptions): Promise<string[]>;

  // --- image metadata by commit ---
  putImageMetadata(key: ImageMetadataKey, options?: OperationOptions): Promise<void>;
  /** By image name, falling back to a raw metadata ID as werf does; absent is success. */
  removeImageMetadata(key: ImageMetadataKey, options?: OperationOptions): Promise<void>;
  imageMetadataExists(key: ImageMetadataKey, options?: ListingOptions): Promise<boolean>;
  listImageMetadata(imageNames: readonly string[], options?: ListingOptions): Promise<ImageMetadataListing>;

  // --- import metadata ---
  getImportMetadata(id: string, options?: OperationOptions): Promise<ImportMetadata | null>;
  putImportMetadata(metadata: ImportMetadata, options?: PutImportMetadataOptions): Promise<void>;
  removeImportMetadata(id: string, options?: OperationOptions): Promise<void>;
  listImportMetadataIds(options?: ListingOptions): Promise<string[]>;

  // --- client IDs, sync server, cleanup ---
  listClientIdRecords(options?: ListingOptions): Promise<ClientIdRecord[]>;
  postClientIdRecord(record: ClientIdRecord, options?: OperationOptions): Promise<void>;
  getSyncServerRecord(options?: ListingOptions): Promise<SyncServerRecord | null>;
  postSyncServerRecord(record: SyncServerRecord, options?: OperationOptions): Promise<void>;
  getCleanupRecord(options?: ListingOptions): Promise<CleanupRecord | null>;
  postCleanupRecord(record: CleanupRecord, options?: OperationOptions): Promise<void>;

  /** Forgets the cached tag listing. */
  dropCache(): void;
}
