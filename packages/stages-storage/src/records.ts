// Record images: managed images, image metadata by commit, custom-tag metadata, import
// metadata, client IDs, sync-server and cleanup records, rejected stages, custom tags.
// STUB: being written (issue 13); every function throws until then.
import type { OperationOptions } from '@stowage/oci';
import type { RepoContext } from './context.js';
import type {
  CleanupRecord,
  ClientIdRecord,
  CustomTagMetadata,
  ImageMetadataKey,
  ImageMetadataListing,
  ImportMetadata,
  ListingOptions,
  PutImportMetadataOptions,
  StageDesc,
  StageID,
  SyncServerRecord,
} from './types.js';

type StageRef = Pick<StageID, 'digest' | 'creationTs'>;
const todo = (name: string): never => {
  throw new Error(`not implemented: ${name}`);
};

export async function rejectStage(_ctx: RepoContext, _stage: StageRef, _o?: OperationOptions): Promise<void> {
  todo('rejectStage');
}
export async function addCustomTag(
  _ctx: RepoContext,
  _d: StageDesc,
  _t: string,
  _o?: OperationOptions,
): Promise<void> {
  todo('addCustomTag');
}
export async function checkCustomTag(
  _ctx: RepoContext,
  _d: StageDesc,
  _t: string,
  _o?: OperationOptions,
): Promise<void> {
  todo('checkCustomTag');
}
export async function deleteCustomTag(_ctx: RepoContext, _t: string, _o?: OperationOptions): Promise<void> {
  todo('deleteCustomTag');
}
export async function registerCustomTag(
  _ctx: RepoContext,
  _d: StageDesc,
  _t: string,
  _o?: OperationOptions,
): Promise<void> {
  todo('registerCustomTag');
}
export async function unregisterCustomTag(
  _ctx: RepoContext,
  _t: string,
  _o?: OperationOptions,
): Promise<void> {
  todo('unregisterCustomTag');
}
export async function getCustomTagMetadata(
  _ctx: RepoContext,
  _t: string,
  _o?: OperationOptions,
): Promise<CustomTagMetadata | null> {
  return todo('getCustomTagMetadata');
}
export async function listCustomTagMetadataIds(_ctx: RepoContext, _o?: ListingOptions): Promise<string[]> {
  return todo('listCustomTagMetadataIds');
}
export async function addManagedImage(_ctx: RepoContext, _n: string, _o?: OperationOptions): Promise<void> {
  todo('addManagedImage');
}
export async function removeManagedImage(
  _ctx: RepoContext,
  _n: string,
  _o?: OperationOptions,
): Promise<void> {
  todo('removeManagedImage');
}
export async function managedImageExists(
  _ctx: RepoContext,
  _n: string,
  _o?: ListingOptions,
): Promise<boolean> {
  return todo('managedImageExists');
}
export async function listManagedImages(_ctx: RepoContext, _o?: ListingOptions): Promise<string[]> {
  return todo('listManagedImages');
}
export async function putImageMetadata(
  _ctx: RepoContext,
  _k: ImageMetadataKey,
  _o?: OperationOptions,
): Promise<void> {
  todo('putImageMetadata');
}
export async function removeImageMetadata(
  _ctx: RepoContext,
  _k: ImageMetadataKey,
  _o?: OperationOptions,
): Promise<void> {
  todo('removeImageMetadata');
}
export async function imageMetadataExists(
  _ctx: RepoContext,
  _k: ImageMetadataKey,
  _o?: ListingOptions,
): Promise<boolean> {
  return todo('imageMetadataExists');
}
export async function listImageMetadata(
  _ctx: RepoContext,
  _names: readonly string[],
  _o?: ListingOptions,
): Promise<ImageMetadataListing> {
  return todo('listImageMetadata');
}
export async function getImportMetadata(
  _ctx: RepoContext,
  _id: string,
  _o?: OperationOptions,
): Promise<ImportMetadata | null> {
  return todo('getImportMetadata');
}
export async function putImportMetadata(
  _ctx: RepoContext,
  _m: ImportMetadata,
  _o?: PutImportMetadataOptions,
): Promise<void> {
  todo('putImportMetadata');
}
export async function removeImportMetadata(
  _ctx: RepoContext,
  _id: string,
  _o?: OperationOptions,
): Promise<void> {
  todo('removeImportMetadata');
}
export async function listImportMetadataIds(_ctx: RepoContext, _o?: ListingOptions): Promise<string[]> {
  return todo('listImportMetadataIds');
}
export async function listClientIdRecords(_ctx: RepoContext, _o?: ListingOptions): Promise<ClientIdRecord[]> {
  return todo('listClientIdRecords');
}
export async function postClientIdRecord(
  _ctx: RepoContext,
  _r: ClientIdRecord,
  _o?: OperationOptions,
): Promise<void> {
  todo('postClientIdRecord');
}
export async function getSyncServerRecord(
  _ctx: RepoContext,
  _o?: ListingOptions,
): Promise<SyncServerRecord | null> {
  return todo('getSyncServerRecord');
}
export async function postSyncServerRecord(
  _ctx: RepoContext,
  _r: SyncServerRecord,
  _o?: OperationOptions,
): Promise<void> {
  todo('postSyncServerRecord');
}
export async function getCleanupRecord(
  _ctx: RepoContext,
  _o?: ListingOptions,
): Promise<CleanupRecord | null> {
  return todo('getCleanupRecord');
}
export async function postCleanupRecord(
  _ctx: RepoContext,
  _r: CleanupRecord,
  _o?: OperationOptions,
): Promise<void> {
  todo('postCleanupRecord');
}
