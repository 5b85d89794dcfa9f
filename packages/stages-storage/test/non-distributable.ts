// An OCI stage whose second layer is non-distributable without urls (only its
// media type says so), for the export tests over a store that may lack it.
import { type Digest, MediaType, type Registry } from '@stowage/oci';
import { RepoContext } from '../src/context.js';
import { describeStage } from '../src/stages.js';
import type { StageDesc } from '../src/types.js';
import { type BuiltBlob, buildStageImage } from './images.js';

export const REPO = 'group/project';
const STAGE = {
  digest: '7d391a82ee3f0e574361c594fe737dc6db627be9667a470ab7581da7',
  creationTs: 1700000000001,
};

export interface NonDistributableStage {
  readonly ctx: RepoContext;
  readonly desc: StageDesc;
  readonly layer: BuiltBlob;
  readonly foreign: BuiltBlob;
}

/** Pushes the stage to `registry`, its non-distributable layer only when `withForeign`. */
export async function pushNonDistributableStage(
  registry: Registry,
  options: { readonly withForeign: boolean },
): Promise<NonDistributableStage> {
  const image = buildStageImage({
    labels: { werf: 'myproj', 'werf-stage-content-digest': 'abc' },
    format: 'oci',
  });
  const [layer, second] = image.layers as [BuiltBlob, BuiltBlob];
  const foreign = { ...second, mediaType: MediaType.OciLayerNonDistributableGzip };
  const bytes = new TextEncoder().encode(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: MediaType.OciManifest,
      config: { mediaType: image.config.mediaType, size: image.config.size, digest: image.config.digest },
      layers: [layer, foreign].map((l) => ({ mediaType: l.mediaType, size: l.size, digest: l.digest })),
    }),
  );
  for (const blob of options.withForeign ? [image.config, layer, foreign] : [image.config, layer]) {
    await registry.putBlob(REPO, blob.bytes, { digest: blob.digest as Digest, size: blob.size });
  }
  await registry.putManifest(REPO, `${STAGE.digest}-${STAGE.creationTs}`, {
    bytes,
    mediaType: MediaType.OciManifest,
  });
  const ctx = new RepoContext({
    registry,
    repository: REPO,
    address: `example.com/${REPO}`,
    project: 'myproj',
  });
  const desc = await describeStage(ctx, STAGE);
  if (!desc) throw new Error('stage expected');
  return { ctx, desc, layer, foreign };
}
