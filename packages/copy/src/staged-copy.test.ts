import { Readable } from 'node:stream';
import { isStowageError, type Registry } from '@stowage/oci';
import {
  createMemoryRegistry,
  pushImage,
  pushIndex,
  randomImage,
  randomIndex,
  spyRegistry,
} from '@stowage/testing';
import { describe, expect, it } from 'vitest';
import { copyImage } from './index.js';

async function rejection(promise: Promise<unknown>): Promise<unknown> {
  return await promise.then(
    () => {
      throw new Error('expected a rejection');
    },
    (e: unknown) => e,
  );
}

/** A source whose `getBlob` serves other bytes (same length) for one digest: a corrupted upstream. */
function corrupting(registry: Registry, digest: string): Registry {
  return spyRegistry(registry, {
    hooks: {
      getBlob: (async (repository: string, wanted: string, options: never) => {
        const content = await registry.getBlob(repository, wanted as never, options);
        if (wanted !== digest) return content;
        const chunks: Buffer[] = [];
        for await (const chunk of content.stream) chunks.push(chunk as Buffer);
        const bytes = Buffer.concat(chunks);
        bytes[0] = (bytes[0] ?? 0) ^ 0xff;
        return { ...content, stream: Readable.from([bytes]) };
      }) as never,
    },
  });
}

describe('copyImage with staged: true', () => {
  it('finishes no session before every blob is streamed and verified, and pushes manifests last', async () => {
    const from = createMemoryRegistry();
    const to = spyRegistry(createMemoryRegistry());
    const index = randomIndex({ platforms: ['linux/amd64', 'linux/arm64'] });
    await pushIndex(from, 'src', index, 'v1');
    const opened: string[] = [];
    const closed: string[] = [];
    const result = await copyImage(
      { registry: from, repository: 'src', reference: 'v1' },
      { registry: to, repository: 'dst', tag: 'v1' },
      {
        staged: {
          onSessionOpened: (_r, id) => void opened.push(id),
          onSessionClosed: (_r, id) => void closed.push(id),
        },
      },
    );
    expect(result.digest).toBe(index.index.digest);
    const methods = to.calls.map((c) => c.method);
    const lastAppend = methods.lastIndexOf('appendUpload');
    const firstFinish = methods.indexOf('finishUpload');
    const firstManifest = methods.indexOf('putManifest');
    const blobs = new Set(index.images.flatMap((image) => image.blobs.map((b) => b.descriptor.digest)));
    expect(methods.filter((m) => m === 'appendUpload')).toHaveLength(blobs.size);
    expect(methods).not.toContain('putBlob');
    expect(lastAppend).toBeLessThan(firstFinish);
    expect(methods.lastIndexOf('finishUpload')).toBeLessThan(firstManifest);
    expect(opened.sort()).toEqual(closed.sort());
    expect(opened).toHaveLength(blobs.size);
    for (const digest of blobs) expect(await to.headBlob('dst', digest)).toBeDefined();
  });

  it('commits nothing of an image when one blob is corrupt, and cancels every session', async () => {
    const upstream = createMemoryRegistry();
    const image = randomImage({ layers: 4 });
    await pushImage(upstream, 'src', image, 'v1');
    const bad = image.layers[2]?.descriptor.digest as string;
    const to = createMemoryRegistry();
    const opened: string[] = [];
    const closed: string[] = [];
    const error = await rejection(
      copyImage(
        { registry: corrupting(upstream, bad), repository: 'src', reference: 'v1' },
        { registry: to, repository: 'dst', tag: 'v1' },
        {
          staged: {
            onSessionOpened: (_r, id) => void opened.push(id),
            onSessionClosed: (_r, id) => void closed.push(id),
          },
          concurrency: 1,
        },
      ),
    );
    expect(isStowageError(error, 'DIGEST_INVALID')).toBe(true);
    // Blobs verified before the corrupt one were streamed too, and are not committed either.
    expect(opened.length).toBeGreaterThan(1);
    for (const blob of image.blobs) expect(await to.headBlob('dst', blob.descriptor.digest)).toBeUndefined();
    expect(await to.headManifest('dst', 'v1')).toBeUndefined();
    expect(closed.sort()).toEqual(opened.sort());
    for (const id of opened) {
      expect(isStowageError(await rejection(to.getUpload('dst', id)), 'BLOB_UPLOAD_UNKNOWN')).toBe(true);
    }
  });

  it('without staging, the blobs verified before a corrupt one are committed (the difference staging makes)', async () => {
    const upstream = createMemoryRegistry();
    const image = randomImage({ layers: 4 });
    await pushImage(upstream, 'src', image, 'v1');
    const bad = image.layers[2]?.descriptor.digest as string;
    const to = createMemoryRegistry();
    await rejection(
      copyImage(
        { registry: corrupting(upstream, bad), repository: 'src', reference: 'v1' },
        { registry: to, repository: 'dst', tag: 'v1' },
        { concurrency: 1 },
      ),
    );
    const present = await Promise.all(image.blobs.map((b) => to.headBlob('dst', b.descriptor.digest)));
    expect(present.some((info) => info !== undefined)).toBe(true);
  });

  it('cancels the sessions of an aborted copy', async () => {
    const upstream = createMemoryRegistry();
    const image = randomImage({ layers: 3 });
    await pushImage(upstream, 'src', image, 'v1');
    const to = createMemoryRegistry();
    const controller = new AbortController();
    const opened: string[] = [];
    const error = await rejection(
      copyImage(
        { registry: upstream, repository: 'src', reference: 'v1' },
        { registry: to, repository: 'dst', tag: 'v1' },
        {
          signal: controller.signal,
          concurrency: 1,
          staged: {
            onSessionOpened: (_r, id) => {
              opened.push(id);
              if (opened.length === 2) controller.abort(new Error('stop'));
            },
          },
        },
      ),
    );
    expect((error as Error).message).toBe('stop');
    for (const id of opened) {
      expect(isStowageError(await rejection(to.getUpload('dst', id)), 'BLOB_UPLOAD_UNKNOWN')).toBe(true);
    }
    for (const blob of image.blobs) expect(await to.headBlob('dst', blob.descriptor.digest)).toBeUndefined();
  });

  it('refuses a destination without upload sessions before reading anything', async () => {
    const from = spyRegistry(createMemoryRegistry());
    const to = createMemoryRegistry({ uploadSessions: false });
    const error = await rejection(
      copyImage(
        { registry: from, repository: 'src', reference: 'v1' },
        { registry: to, repository: 'dst' },
        { staged: true },
      ),
    );
    expect(isStowageError(error, 'OPTIONS_INVALID')).toBe(true);
    expect(from.calls).toHaveLength(0);
  });
});
