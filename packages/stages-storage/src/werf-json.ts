import { type GoStruct, goStruct } from '@stowage/oci';
import { StagesStorageError } from './errors.js';
import type { ImageInfo, StageDesc, StageID } from './types.js';

/**
 * werf's JSON for `image.Info` (spec A.10): Go's encoding of the struct, keys
 * in field order, nil slices and maps as `null`, `IsIndex`/`Index` under their
 * Go names. Pass the result to `goJson`.
 */
export function werfImageInfo(info: ImageInfo): GoStruct {
  return goStruct([
    ['name', info.name],
    ['repository', info.repository],
    ['tag', info.tag],
    ['repoDigest', info.repoDigest],
    ['onBuild', info.onBuild],
    ['env', info.env],
    ['ID', info.id],
    ['parentID', info.parentId],
    ['labels', info.labels],
    ['size', info.size],
    ['createdAtUnixNano', info.createdAtUnixNano],
    ['volumes', info.volumes],
    ['IsIndex', info.isIndex],
    ['Index', info.index === null ? null : info.index.map(werfImageInfo)],
  ]);
}

/** werf's JSON for `StageID`: `digest`, `uniqueID` (still so named), `isMultiplatform`. */
export function werfStageId(stage: StageID): GoStruct {
  return goStruct([
    ['digest', stage.digest],
    ['uniqueID', stage.creationTs],
    ['isMultiplatform', stage.isMultiplatform],
  ]);
}

/** werf's JSON for `StageDesc`: `stageID`, `info`. */
export function werfStageDesc(desc: StageDesc): GoStruct {
  return goStruct([
    ['stageID', werfStageId(desc.stageID)],
    ['info', werfImageInfo(desc.info)],
  ]);
}

const isRecord = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

function stringList(value: unknown, key: string): readonly string[] | null {
  if (value === null || value === undefined) return null;
  if (Array.isArray(value) && value.every((v) => typeof v === 'string')) return value as string[];
  throw new StagesStorageError('OPTIONS_INVALID', `image info: ${key} must be a list of strings`);
}

/**
 * Reads werf's `image.Info` JSON (already parsed), tolerating what older werf
 * versions leave out (`volumes` before v2.1, `Index` on single images).
 * Throws `OPTIONS_INVALID` for a value that is not such an object.
 */
export function imageInfoFromWerf(value: unknown): ImageInfo {
  if (!isRecord(value)) throw new StagesStorageError('OPTIONS_INVALID', 'image info must be an object');
  const str = (key: string): string => {
    const v = value[key];
    if (v === undefined || v === null) return '';
    if (typeof v !== 'string')
      throw new StagesStorageError('OPTIONS_INVALID', `image info: ${key} must be a string`);
    return v;
  };
  const num = (key: string): number => {
    const v = value[key];
    if (v === undefined || v === null) return 0;
    if (typeof v !== 'number' || !Number.isFinite(v))
      throw new StagesStorageError('OPTIONS_INVALID', `image info: ${key} must be a number`);
    return v;
  };
  const labels = value.labels;
  if (labels !== undefined && labels !== null && !isRecord(labels))
    throw new StagesStorageError('OPTIONS_INVALID', 'image info: labels must be an object');
  const volumes = value.volumes;
  if (volumes !== undefined && volumes !== null && !isRecord(volumes))
    throw new StagesStorageError('OPTIONS_INVALID', 'image info: volumes must be an object');
  const index = value.Index;
  if (index !== undefined && index !== null && !Array.isArray(index))
    throw new StagesStorageError('OPTIONS_INVALID', 'image info: Index must be a list');
  return {
    name: str('name'),
    repository: str('repository'),
    tag: str('tag'),
    repoDigest: str('repoDigest'),
    onBuild: stringList(value.onBuild, 'onBuild'),
    env: stringList(value.env, 'env'),
    id: str('ID'),
    parentId: str('parentID'),
    labels: labels ? Object.fromEntries(Object.entries(labels).map(([k, v]) => [k, String(v)])) : null,
    size: num('size'),
    createdAtUnixNano: num('createdAtUnixNano'),
    volumes: volumes ? (volumes as Record<string, unknown>) : null,
    isIndex: value.IsIndex === true,
    index: Array.isArray(index) ? index.map(imageInfoFromWerf) : null,
  };
}
