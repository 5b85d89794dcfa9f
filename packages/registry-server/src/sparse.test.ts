// `Stowage-Sparse-Index: true` on a manifest PUT asks the backend for a sparse index; its refusal goes out as usual.
import { type PutManifestOptions, type Registry, RegistryError } from '@stowage/oci';
import { createMemoryRegistry, pushImage, randomImage } from '@stowage/testing';
import { afterEach, describe, expect, it } from 'vitest';
import { type Served, serve } from '../test/serve.js';

const INDEX = 'application/vnd.oci.image.index.v1+json';

/** The memory registry, recording the options of every putManifest; `refuseSparse` makes it refuse sparse pushes. */
function recording(refuseSparse: boolean): { registry: Registry; seen: PutManifestOptions[] } {
  const base = createMemoryRegistry();
  const seen: PutManifestOptions[] = [];
  const registry = new Proxy(base, {
    get(target, key, receiver) {
      if (key === 'putManifest') {
        return async (repository: string, reference: string, options: PutManifestOptions) => {
          seen.push(options);
          if (options.sparse && refuseSparse) {
            throw new RegistryError('UNSUPPORTED', 'this store keeps no sparse indexes');
          }
          return target.putManifest(repository, reference, options);
        };
      }
      return Reflect.get(target, key, receiver);
    },
  });
  return { registry, seen };
}

let served: Served | undefined;
afterEach(async () => {
  await served?.close();
  served = undefined;
});

async function putIndex(url: string, headers: Record<string, string>, bytes: Uint8Array) {
  return fetch(`${url}/v2/app/manifests/v1`, {
    method: 'PUT',
    headers: { 'content-type': INDEX, ...headers },
    body: bytes,
  });
}

describe('sparse index push', () => {
  it('passes sparse: true only when the PUT carries Stowage-Sparse-Index: true', async () => {
    const { registry, seen } = recording(false);
    served = await serve({ registry });
    const image = randomImage({ layers: 1 });
    await pushImage(registry, 'app', image, 'base');
    const index = new TextEncoder().encode(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: INDEX,
        manifests: [
          { mediaType: image.manifest.mediaType, digest: image.manifest.digest, size: image.manifest.size },
        ],
      }),
    );
    seen.length = 0;
    for (const [header, sparse] of [
      [undefined, undefined],
      ['true', true],
      ['TRUE', true],
      ['false', undefined],
      ['yes', undefined],
    ] as const) {
      const response = await putIndex(
        served.url,
        header === undefined ? {} : { 'stowage-sparse-index': header },
        index,
      );
      expect(response.status, String(header)).toBe(201);
      expect(seen.pop()?.sparse, String(header)).toBe(sparse);
    }
  });

  it("sends the backend's refusal of a sparse index as its OCI error", async () => {
    const { registry, seen } = recording(true);
    served = await serve({ registry });
    const index = new TextEncoder().encode(
      JSON.stringify({ schemaVersion: 2, mediaType: INDEX, manifests: [] }),
    );
    const refused = await putIndex(served.url, { 'stowage-sparse-index': 'true' }, index);
    expect(refused.status).toBe(405);
    expect(((await refused.json()) as { errors: { code: string; message: string }[] }).errors[0]).toEqual({
      code: 'UNSUPPORTED',
      message: 'this store keeps no sparse indexes',
    });
    expect(seen.at(-1)?.sparse).toBe(true);
    // the same index without the header is an ordinary push
    expect((await putIndex(served.url, {}, index)).status).toBe(201);
  });
});
