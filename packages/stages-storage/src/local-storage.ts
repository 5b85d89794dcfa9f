// werf's LocalStagesStorage (spec A.11): stages kept in the local image store under the
// project's name; records other than import metadata are not kept locally.
import type { Logger, OperationOptions, Registry } from '@stowage/oci';
import { encodeStageTag, Labels, parseStageTag, STAGE_DIGEST_LENGTH } from '@stowage/tags';
import { RepoContext } from './context.js';
import { removeImage } from './delete.js';
import { StagesStorageError } from './errors.js';
import { exportStage } from './export.js';
import { pushRecord, readRecordLabels } from './record-image.js';
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
  PostMultiplatformImageOptions,
  PutImportMetadataOptions,
  StageDesc,
  StageID,
  StagesStorage,
  StagesStorageCapabilities,
  SyncServerRecord,
} from './types.js';

/** werf's `LocalStorageAddress`: what the local storage answers for its address. */
export const LOCAL_STORAGE_ADDRESS = ':local';
/** The repository prefix of import-metadata images in the local store (`werf-import-metadata/<project>`). */
export const LOCAL_IMPORT_METADATA_REPOSITORY_PREFIX = 'werf-import-metadata/';

export interface LocalStagesStorageOptions {
  /** The local image store (werf's container backend here). */
  readonly registry: Registry;
  /** The werf project: the repository of its stages in the store. */
  readonly project: string;
  readonly logger?: Logger;
}

type StageRef = Pick<StageID, 'digest' | 'creationTs'>;

const REGULAR_STAGE_TAG_LENGTH = STAGE_DIGEST_LENGTH + 1 + 13;

/** werf's local listing filter: 70 characters with exactly one `-`, split on it. */
function localStage(tag: string): StageID | undefined {
  if (tag.length !== REGULAR_STAGE_TAG_LENGTH || tag.split('-').length !== 2) return undefined;
  try {
    return stages.stageID(parseStageTag(tag));
  } catch {
    return undefined;
  }
}

/**
 * The stages storage on the local image store (werf without `--repo`): stage
 * images `<project>:<digest>-<creationTs>`, import metadata as images
 * `werf-import-metadata/<project>:<importSourceID>`. Managed images, image
 * metadata, custom tags, rejects, client IDs, sync-server and cleanup records
 * are not kept (writes do nothing, reads are empty), as in werf; fetch and
 * store have nothing to do, the stages being local already.
 */
export function createLocalStagesStorage(options: LocalStagesStorageOptions): StagesStorage {
  if (typeof options.project !== 'string' || options.project === '') {
    throw new StagesStorageError('OPTIONS_INVALID', 'project must name the werf project');
  }
  const common = {
    registry: options.registry,
    project: options.project,
    ...(options.logger ? { logger: options.logger } : {}),
  };
  // Stage images are named `<project>:<tag>`: the project is their "address".
  const ctx = new RepoContext({ ...common, repository: options.project, address: options.project });
  const importRepository = `${LOCAL_IMPORT_METADATA_REPOSITORY_PREFIX}${options.project}`;
  const imports = new RepoContext({ ...common, repository: importRepository, address: importRepository });
  return new LocalStagesStorage(ctx, imports);
}

class LocalStagesStorage implements StagesStorage {
  readonly #ctx: RepoContext;
  readonly #imports: RepoContext;

  constructor(ctx: RepoContext, imports: RepoContext) {
    this.#ctx = ctx;
    this.#imports = imports;
  }

  get address(): string {
    return LOCAL_STORAGE_ADDRESS;
  }
  get project(): string {
    return this.#ctx.project;
  }
  get location(): ImageLocation {
    return { registry: this.#ctx.registry, repository: this.#ctx.repository };
  }
  /** Full tag listings made so far (for benches and tests). */
  get listings(): number {
    return this.#ctx.listings + this.#imports.listings;
  }

  async capabilities(options?: OperationOptions): Promise<StagesStorageCapabilities> {
    return { ...(await stages.capabilities(this.#ctx, options)), records: false };
  }
  stageImageName(stage: StageRef): string {
    return this.#ctx.imageName(encodeStageTag(stage));
  }
  stageTag(stage: StageRef): string {
    return encodeStageTag(stage);
  }

  // --- stages ---

  async listStageIDs(options?: ListingOptions): Promise<StageID[]> {
    const listing = await this.#ctx.tags(options);
    return listing.all().flatMap((tag) => localStage(tag) ?? []);
  }
  async listStageIDsByDigest(
    digest: string,
    options: ListingOptions & { parentCreationTs?: number } = {},
  ): Promise<StageID[]> {
    const listing = await this.#ctx.tags(options);
    const parent = options.parentCreationTs;
    return listing.withPrefix(digest).flatMap((tag) => {
      const stage = localStage(tag);
      if (!stage || stage.digest !== digest) return [];
      return parent !== undefined && parent > stage.creationTs ? [] : [stage];
    });
  }
  /** No rejected check: rejects are not kept locally. */
  getStageDesc(stage: StageRef, options?: ListingOptions): Promise<StageDesc | null> {
    return stages.describeStage(this.#ctx, stage, options);
  }
  deleteStage(desc: StageDesc, options?: OperationOptions): Promise<void> {
    return stages.removeStageImage(this.#ctx, desc, options);
  }
  async rejectStage(_stage: StageRef, options?: OperationOptions): Promise<void> {
    options?.signal?.throwIfAborted();
  }
  createRepo(options?: OperationOptions): Promise<void> {
    return stages.createRepo(this.#ctx, options);
  }
  /** Removes the project's stage images and its import-metadata images. */
  async deleteRepo(options?: OperationOptions): Promise<void> {
    await stages.deleteRepo(this.#ctx, options);
    await stages.deleteRepo(this.#imports, options);
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

  // --- the stages are local already ---

  async fetchImage(_stage: StageRef, options: OperationOptions): Promise<void> {
    options.signal?.throwIfAborted();
  }
  async storeImage(_stage: StageRef, options: OperationOptions): Promise<void> {
    options.signal?.throwIfAborted();
  }
  async shouldFetchImage(_stage: StageRef, options: OperationOptions): Promise<boolean> {
    options.signal?.throwIfAborted();
    return false;
  }

  // --- custom tags, managed images, image metadata: not kept locally ---

  async addCustomTag(): Promise<void> {}
  async checkCustomTag(): Promise<void> {}
  async deleteCustomTag(): Promise<void> {}
  async registerCustomTag(): Promise<void> {}
  async unregisterCustomTag(): Promise<void> {}
  async getCustomTagMetadata(): Promise<CustomTagMetadata | null> {
    return null;
  }
  async listCustomTagMetadataIds(): Promise<string[]> {
    return [];
  }

  async addManagedImage(): Promise<void> {}
  async removeManagedImage(): Promise<void> {}
  async managedImageExists(): Promise<boolean> {
    return false;
  }
  async listManagedImages(): Promise<string[]> {
    return [];
  }

  async putImageMetadata(_key: ImageMetadataKey): Promise<void> {}
  async removeImageMetadata(_key: ImageMetadataKey): Promise<void> {}
  async imageMetadataExists(_key: ImageMetadataKey): Promise<boolean> {
    return false;
  }
  async listImageMetadata(): Promise<ImageMetadataListing> {
    return { managed: new Map(), notManaged: new Map() };
  }

  // --- import metadata: images `werf-import-metadata/<project>:<id>` ---

  async getImportMetadata(id: string, options?: OperationOptions): Promise<ImportMetadata | null> {
    const labels = await readRecordLabels(this.#imports, id, options);
    if (labels === null) return null;
    return {
      importSourceId: labels[Labels.importSourceId] ?? '',
      sourceStageId: labels[Labels.sourceStageId] ?? labels[Labels.legacySourceImageId] ?? '',
      checksum: labels[Labels.checksum] ?? '',
    };
  }
  async putImportMetadata(metadata: ImportMetadata, options: PutImportMetadataOptions = {}): Promise<void> {
    const tag = metadata.importSourceId;
    const signal = options.signal ? { signal: options.signal } : {};
    if (
      !options.force &&
      (await this.#imports.registry.headManifest(this.#imports.repository, tag, signal))
    ) {
      return;
    }
    await pushRecord(
      this.#imports,
      tag,
      {
        [Labels.importSourceId]: metadata.importSourceId,
        [Labels.sourceStageId]: metadata.sourceStageId,
        [Labels.checksum]: metadata.checksum,
        [Labels.werf]: this.#imports.project,
      },
      options,
    );
  }
  async removeImportMetadata(id: string, options?: OperationOptions): Promise<void> {
    await removeImage(this.#imports, { tag: id, what: 'import-metadata image' }, options);
  }
  async listImportMetadataIds(options?: ListingOptions): Promise<string[]> {
    return (await this.#imports.tags(options)).all();
  }

  // --- client IDs, sync server, cleanup: not kept locally ---

  async listClientIdRecords(): Promise<ClientIdRecord[]> {
    return [];
  }
  async postClientIdRecord(): Promise<void> {}
  async getSyncServerRecord(): Promise<SyncServerRecord | null> {
    return null;
  }
  async postSyncServerRecord(): Promise<void> {}
  async getCleanupRecord(): Promise<CleanupRecord | null> {
    return null;
  }
  async postCleanupRecord(): Promise<void> {}

  dropCache(): void {
    this.#ctx.dropCache();
    this.#imports.dropCache();
  }
}
