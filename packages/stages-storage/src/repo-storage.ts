import type { Logger, OperationOptions, Registry } from '@stowage/oci';
import { encodeStageTag } from '@stowage/tags';
import { RepoContext } from './context.js';
import { StagesStorageError } from './errors.js';
import { exportStage } from './export.js';
import * as records from './records.js';
import * as stages from './stages.js';
import * as transfer from './transfer.js';
import type {
  CleanupRecord,
  ClientIdRecord,
  CustomTagMetadata,
  ExportStageOptions,
  ExportStageResult,
  ImageLocation,
  ImageMetadataKey,
  ImageMetadataListing,
  ImportMetadata,
  ListingOptions,
  LocalImages,
  PostMultiplatformImageOptions,
  PutImportMetadataOptions,
  StageDesc,
  StageID,
  StagesStorage,
  StagesStorageCapabilities,
  SyncServerRecord,
} from './types.js';

export interface RepoStagesStorageOptions {
  /** The store the stages live in: the client for a remote registry, the image store, our server through the client. */
  readonly registry: Registry;
  /**
   * werf's `--repo` value, `host[:port]/path` (`registry.example.com/group/project`).
   * It names images (`<address>:<tag>`) and the local manifest cache.
   */
  readonly address: string;
  /**
   * The repository inside `registry`; default: `address` without its host
   * part (the first component when it has a `.` or `:` or is `localhost`).
   */
  readonly repository?: string;
  /** The werf project name: the `werf` label of every record written. */
  readonly project: string;
  readonly logger?: Logger;
}

type StageRef = Pick<StageID, 'digest' | 'creationTs'>;

/** The repository part of a werf repo address: the address without its registry host. */
export function repositoryOfAddress(address: string): string {
  const slash = address.indexOf('/');
  if (slash < 0) return address;
  const first = address.slice(0, slash);
  const isHost = first.includes('.') || first.includes(':') || first === 'localhost';
  return isHost ? address.slice(slash + 1) : address;
}

/** A stages storage over a repository of any `Registry` (werf's RepoStagesStorage). */
export function createRepoStagesStorage(options: RepoStagesStorageOptions): StagesStorage {
  if (!options.address || /\s/.test(options.address)) {
    throw new StagesStorageError(
      'OPTIONS_INVALID',
      `address must be a repository address, not ${JSON.stringify(options.address)}`,
    );
  }
  if (typeof options.project !== 'string' || options.project === '') {
    throw new StagesStorageError('OPTIONS_INVALID', 'project must name the werf project');
  }
  const ctx = new RepoContext({
    registry: options.registry,
    repository: options.repository ?? repositoryOfAddress(options.address),
    address: options.address,
    project: options.project,
    ...(options.logger ? { logger: options.logger } : {}),
  });
  return new RepoStagesStorage(ctx);
}

class RepoStagesStorage implements StagesStorage {
  readonly #ctx: RepoContext;

  constructor(ctx: RepoContext) {
    this.#ctx = ctx;
  }

  get address(): string {
    return this.#ctx.address;
  }
  get project(): string {
    return this.#ctx.project;
  }
  get location(): ImageLocation {
    return { registry: this.#ctx.registry, repository: this.#ctx.repository };
  }
  /** Full tag listings made so far (for benches and tests). */
  get listings(): number {
    return this.#ctx.listings;
  }

  capabilities(options?: OperationOptions): Promise<StagesStorageCapabilities> {
    return stages.capabilities(this.#ctx, options);
  }
  stageImageName(stage: StageRef): string {
    return this.#ctx.imageName(encodeStageTag(stage));
  }
  stageTag(stage: StageRef): string {
    return encodeStageTag(stage);
  }

  listStageIDs(options?: ListingOptions): Promise<StageID[]> {
    return stages.listStageIDs(this.#ctx, options);
  }
  listStageIDsByDigest(
    digest: string,
    options?: ListingOptions & { parentCreationTs?: number },
  ): Promise<StageID[]> {
    return stages.listStageIDsByDigest(this.#ctx, digest, options);
  }
  getStageDesc(stage: StageRef, options?: ListingOptions): Promise<StageDesc | null> {
    return stages.getStageDesc(this.#ctx, stage, options);
  }
  deleteStage(desc: StageDesc, options?: OperationOptions): Promise<void> {
    return stages.deleteStage(this.#ctx, desc, options);
  }
  rejectStage(stage: StageRef, options?: OperationOptions): Promise<void> {
    return records.rejectStage(this.#ctx, stage, options);
  }
  createRepo(options?: OperationOptions): Promise<void> {
    return stages.createRepo(this.#ctx, options);
  }
  deleteRepo(options?: OperationOptions): Promise<void> {
    return stages.deleteRepo(this.#ctx, options);
  }
  exportStage(desc: StageDesc, options: ExportStageOptions): Promise<ExportStageResult> {
    return exportStage(this.#ctx, desc, options);
  }
  postMultiplatformImage(options: PostMultiplatformImageOptions): Promise<StageDesc> {
    return stages.postMultiplatformImage(this.#ctx, options);
  }
  copyFromStorage(
    source: StagesStorage,
    stage: StageRef,
    options?: OperationOptions,
  ): Promise<StageDesc | null> {
    return transfer.copyFromStorage(this, this.#ctx, source, stage, options);
  }

  fetchImage(stage: StageRef, options: { local: LocalImages } & OperationOptions): Promise<void> {
    return transfer.fetchImage(this.#ctx, stage, options);
  }
  storeImage(stage: StageRef, options: { local: LocalImages } & OperationOptions): Promise<void> {
    return transfer.storeImage(this.#ctx, stage, options);
  }
  shouldFetchImage(stage: StageRef, options: { local: LocalImages } & OperationOptions): Promise<boolean> {
    return transfer.shouldFetchImage(this.#ctx, stage, options);
  }

  addCustomTag(desc: StageDesc, tag: string, options?: OperationOptions): Promise<void> {
    return records.addCustomTag(this.#ctx, desc, tag, options);
  }
  checkCustomTag(desc: StageDesc, tag: string, options?: OperationOptions): Promise<void> {
    return records.checkCustomTag(this.#ctx, desc, tag, options);
  }
  deleteCustomTag(tag: string, options?: OperationOptions): Promise<void> {
    return records.deleteCustomTag(this.#ctx, tag, options);
  }
  registerCustomTag(desc: StageDesc, tag: string, options?: OperationOptions): Promise<void> {
    return records.registerCustomTag(this.#ctx, desc, tag, options);
  }
  unregisterCustomTag(tagOrId: string, options?: OperationOptions): Promise<void> {
    return records.unregisterCustomTag(this.#ctx, tagOrId, options);
  }
  getCustomTagMetadata(tagOrId: string, options?: OperationOptions): Promise<CustomTagMetadata | null> {
    return records.getCustomTagMetadata(this.#ctx, tagOrId, options);
  }
  listCustomTagMetadataIds(options?: ListingOptions): Promise<string[]> {
    return records.listCustomTagMetadataIds(this.#ctx, options);
  }

  addManagedImage(imageName: string, options?: OperationOptions): Promise<void> {
    return records.addManagedImage(this.#ctx, imageName, options);
  }
  removeManagedImage(imageName: string, options?: OperationOptions): Promise<void> {
    return records.removeManagedImage(this.#ctx, imageName, options);
  }
  managedImageExists(imageName: string, options?: ListingOptions): Promise<boolean> {
    return records.managedImageExists(this.#ctx, imageName, options);
  }
  listManagedImages(options?: ListingOptions): Promise<string[]> {
    return records.listManagedImages(this.#ctx, options);
  }

  putImageMetadata(key: ImageMetadataKey, options?: OperationOptions): Promise<void> {
    return records.putImageMetadata(this.#ctx, key, options);
  }
  removeImageMetadata(key: ImageMetadataKey, options?: OperationOptions): Promise<void> {
    return records.removeImageMetadata(this.#ctx, key, options);
  }
  imageMetadataExists(key: ImageMetadataKey, options?: ListingOptions): Promise<boolean> {
    return records.imageMetadataExists(this.#ctx, key, options);
  }
  listImageMetadata(imageNames: readonly string[], options?: ListingOptions): Promise<ImageMetadataListing> {
    return records.listImageMetadata(this.#ctx, imageNames, options);
  }

  getImportMetadata(id: string, options?: OperationOptions): Promise<ImportMetadata | null> {
    return records.getImportMetadata(this.#ctx, id, options);
  }
  putImportMetadata(metadata: ImportMetadata, options?: PutImportMetadataOptions): Promise<void> {
    return records.putImportMetadata(this.#ctx, metadata, options);
  }
  removeImportMetadata(id: string, options?: OperationOptions): Promise<void> {
    return records.removeImportMetadata(this.#ctx, id, options);
  }
  listImportMetadataIds(options?: ListingOptions): Promise<string[]> {
    return records.listImportMetadataIds(this.#ctx, options);
  }

  listClientIdRecords(options?: ListingOptions): Promise<ClientIdRecord[]> {
    return records.listClientIdRecords(this.#ctx, options);
  }
  postClientIdRecord(record: ClientIdRecord, options?: OperationOptions): Promise<void> {
    return records.postClientIdRecord(this.#ctx, record, options);
  }
  getSyncServerRecord(options?: ListingOptions): Promise<SyncServerRecord | null> {
    return records.getSyncServerRecord(this.#ctx, options);
  }
  postSyncServerRecord(record: SyncServerRecord, options?: OperationOptions): Promise<void> {
    return records.postSyncServerRecord(this.#ctx, record, options);
  }
  getCleanupRecord(options?: ListingOptions): Promise<CleanupRecord | null> {
    return records.getCleanupRecord(this.#ctx, options);
  }
  postCleanupRecord(record: CleanupRecord, options?: OperationOptions): Promise<void> {
    return records.postCleanupRecord(this.#ctx, record, options);
  }

  dropCache(): void {
    this.#ctx.dropCache();
  }
}
