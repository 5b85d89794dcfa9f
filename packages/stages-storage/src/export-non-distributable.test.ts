import { MediaType } from '@stowage/oci';
import { createMemoryRegistry } from '@stowage/testing';
import { describe, expect, it } from 'vitest';
import { pushNonDistributableStage } from '../test/non-distributable.js';
import { exportStage } from './export.js';

describe('exportStage with a non-distributable layer (no urls)', () => {
  it('exports the stage without the layer when the stage lacks it', async () => {
    const source = createMemoryRegistry();
    const { ctx, desc, layer, foreign } = await pushNonDistributableStage(source, { withForeign: false });
    const target = createMemoryRegistry();
    const result = await exportStage(ctx, desc, {
      destination: { registry: target, repository: 'app', tag: 'v1' },
    });
    const value = JSON.parse(Buffer.from((await target.getManifest('app', 'v1')).bytes).toString());
    expect(result.digest).toBe((await target.getManifest('app', 'v1')).digest);
    expect(value.layers.map((l: { mediaType: string }) => l.mediaType)).toEqual([
      MediaType.OciLayerGzip,
      MediaType.OciLayerNonDistributableGzip,
    ]);
    expect(await target.headBlob('app', layer.digest)).toBeDefined();
    expect(await target.headBlob('app', foreign.digest)).toBeUndefined();
  });

  it('brings the layer along when the stage holds it', async () => {
    const source = createMemoryRegistry();
    const { ctx, desc, foreign } = await pushNonDistributableStage(source, { withForeign: true });
    const target = createMemoryRegistry();
    await exportStage(ctx, desc, { destination: { registry: target, repository: 'app', tag: 'v1' } });
    expect((await target.headBlob('app', foreign.digest))?.size).toBe(foreign.size);
  });
});
