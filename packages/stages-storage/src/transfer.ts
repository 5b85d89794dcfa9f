// Moving stages: between storages (copyFromStorage) and between a storage and the local
// image store (fetch, store, should-fetch). STUB: being written (issue 13).
import type { OperationOptions } from '@stowage/oci';
import type { RepoContext } from './context.js';
import type { LocalImages, StageDesc, StageID, StagesStorage } from './types.js';

type StageRef = Pick<StageID, 'digest' | 'creationTs'>;
const todo = (name: string): never => {
  throw new Error(`not implemented: ${name}`);
};

export async function copyFromStorage(
  _self: StagesStorage,
  _ctx: RepoContext,
  _source: StagesStorage,
  _stage: StageRef,
  _o?: OperationOptions,
): Promise<StageDesc | null> {
  return todo('copyFromStorage');
}
export async function fetchImage(
  _ctx: RepoContext,
  _s: StageRef,
  _o: { local: LocalImages } & OperationOptions,
): Promise<void> {
  todo('fetchImage');
}
export async function storeImage(
  _ctx: RepoContext,
  _s: StageRef,
  _o: { local: LocalImages } & OperationOptions,
): Promise<void> {
  todo('storeImage');
}
export async function shouldFetchImage(
  _ctx: RepoContext,
  _s: StageRef,
  _o: { local: LocalImages } & OperationOptions,
): Promise<boolean> {
  return todo('shouldFetchImage');
}
