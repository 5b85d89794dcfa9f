// Stage operations: listing, descriptions, delete, repo create/delete, multiplatform lists.
// STUB: being written (issue 13); every function throws until then.
import type { OperationOptions } from '@stowage/oci';
import type { RepoContext } from './context.js';
import type {
  ListingOptions,
  PostMultiplatformImageOptions,
  StageDesc,
  StageID,
  StagesStorageCapabilities,
} from './types.js';

type StageRef = Pick<StageID, 'digest' | 'creationTs'>;
const todo = (name: string): never => {
  throw new Error(`not implemented: ${name}`);
};

export async function capabilities(
  _ctx: RepoContext,
  _o?: OperationOptions,
): Promise<StagesStorageCapabilities> {
  return todo('capabilities');
}
export async function listStageIDs(_ctx: RepoContext, _o?: ListingOptions): Promise<StageID[]> {
  return todo('listStageIDs');
}
export async function listStageIDsByDigest(
  _ctx: RepoContext,
  _digest: string,
  _o?: ListingOptions & { parentCreationTs?: number },
): Promise<StageID[]> {
  return todo('listStageIDsByDigest');
}
export async function getStageDesc(
  _ctx: RepoContext,
  _s: StageRef,
  _o?: ListingOptions,
): Promise<StageDesc | null> {
  return todo('getStageDesc');
}
export async function deleteStage(_ctx: RepoContext, _d: StageDesc, _o?: OperationOptions): Promise<void> {
  todo('deleteStage');
}
export async function createRepo(_ctx: RepoContext, _o?: OperationOptions): Promise<void> {
  todo('createRepo');
}
export async function deleteRepo(_ctx: RepoContext, _o?: OperationOptions): Promise<void> {
  todo('deleteRepo');
}
export async function postMultiplatformImage(
  _ctx: RepoContext,
  _o: PostMultiplatformImageOptions,
): Promise<StageDesc> {
  return todo('postMultiplatformImage');
}
