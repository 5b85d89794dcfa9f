// The upstream of bench/sync: 20 images, one repository each, a mix of sizes.
// biome-ignore lint/style/noRestrictedImports: the upstream fixture is a test helper of the sync package, not part of its entry point
import type { UpstreamImageSpec } from '../../packages/sync/test/upstream-fixture.js';

const MiB = 1 << 20;

/**
 * 12 small images (one ~1 MiB layer), 4 medium (10, 15, 20 and 30 MiB in two or
 * three layers), 2 large (~60 MiB in two layers) and 2 two-platform indexes
 * (linux/amd64 + linux/arm64, 5 MiB per child and a shared 2 MiB base layer).
 * About 230 MiB of blobs in all.
 */
export function benchSpecs(): UpstreamImageSpec[] {
  const two = (n: number) => String(n).padStart(2, '0');
  return [
    ...Array.from({ length: 12 }, (_, i) => ({
      repository: `bench/small-${two(i + 1)}`,
      tags: ['v1'],
      layers: 1,
      layerSize: MiB,
    })),
    { repository: 'bench/medium-10', tags: ['v1'], layers: 2, layerSize: 5 * MiB },
    { repository: 'bench/medium-15', tags: ['v1'], layers: 3, layerSize: 5 * MiB },
    { repository: 'bench/medium-20', tags: ['v1'], layers: 2, layerSize: 10 * MiB },
    { repository: 'bench/medium-30', tags: ['v1'], layers: 3, layerSize: 10 * MiB },
    { repository: 'bench/large-60a', tags: ['v1'], layers: 2, layerSize: 30 * MiB },
    { repository: 'bench/large-60b', tags: ['v1'], layers: 2, layerSize: 30 * MiB },
    ...['a', 'b'].map((x) => ({
      repository: `bench/multi-${x}`,
      tags: ['v1'],
      platforms: ['linux/amd64', 'linux/arm64'],
      layers: 1,
      layerSize: 5 * MiB,
      shared: { group: `multi-${x}`, layers: 1, layerSize: 2 * MiB },
    })),
  ];
}
