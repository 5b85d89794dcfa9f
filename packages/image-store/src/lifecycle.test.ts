import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pushImage, randomBlob, randomImage } from '@stowage/testing';
import { describe, expect, it } from 'vitest';
import { refusalCode, tempRoots } from '../test/temp-roots.js';
import { GC_CHANNEL, type ImageStoreGcMessage } from './diagnostics.js';
import { createImageStore } from './image-store.js';

const freshRoot = tempRoots('stowage-image-store-lifecycle-');
const code = refusalCode;
const REF_NAME = 'org.opencontainers.image.ref.name';

describe('closing', () => {
  it('closes with await using, writing the pending index.json first', async () => {
    const root = await freshRoot();
    const blob = randomBlob(16);
    {
      await using store = await createImageStore({ root, indexFlushDelayMs: 1e9 });
      await store.putBlob('closing/app', blob.bytes, { digest: blob.descriptor.digest });
      await pushImage(store, 'closing/app', randomImage(), 'v1');
    }
    const layout = JSON.parse(await readFile(join(root, 'closing/app/index.json'), 'utf8'));
    expect(
      layout.manifests.map((m: { annotations: Record<string, string> }) => m.annotations[REF_NAME]),
    ).toEqual(['v1']);
  });

  it('refuses calls after close with UNAVAILABLE', async () => {
    const store = await createImageStore({ root: await freshRoot() });
    await store.close();
    expect(await code(store.listRepositories())).toBe('UNAVAILABLE');
  });
});

describe('diagnostics', () => {
  it(`publishes one report per garbage collection run on ${GC_CHANNEL}`, async () => {
    const root = await freshRoot();
    const store = await createImageStore({ root });
    const orphan = randomBlob(32);
    await store.putBlob('diag/app', orphan.bytes, { digest: orphan.descriptor.digest });
    const seen: ImageStoreGcMessage[] = [];
    const listener = (message: unknown) => {
      seen.push(message as ImageStoreGcMessage);
    };
    subscribe(GC_CHANNEL, listener);
    try {
      await store.garbageCollect({ gracePeriodMs: 0, dryRun: true });
      await store.garbageCollect({ gracePeriodMs: 0 });
    } finally {
      unsubscribe(GC_CHANNEL, listener);
    }
    expect(seen.map((m) => [m.root, m.report.dryRun, m.report.blobsRemoved])).toEqual([
      [store.root, true, [orphan.descriptor.digest]],
      [store.root, false, [orphan.descriptor.digest]],
    ]);
    await store.close();
  });

  it("tells a garbage collection's progress: each repository marked, each stored blob looked at", async () => {
    const root = await freshRoot();
    const store = await createImageStore({ root });
    await pushImage(store, 'progress/a', randomImage(), 'v1');
    await pushImage(store, 'progress/b', randomImage(), 'v1');
    const orphan = randomBlob(32);
    await store.putBlob('progress/b', orphan.bytes, { digest: orphan.descriptor.digest });
    const events: unknown[] = [];
    const report = await store.garbageCollect({ gracePeriodMs: 0, onProgress: (e) => events.push(e) });
    expect(report.blobsRemoved).toEqual([orphan.descriptor.digest]);
    // two repositories; seven stored blobs (two manifests, two configs, two layers, the orphan)
    expect(events.slice(0, 2)).toEqual([
      { phase: 'mark', repositories: 1, total: 2 },
      { phase: 'mark', repositories: 2, total: 2 },
    ]);
    const sweep = events.slice(2) as { phase: string; blobs: number; removed: number }[];
    expect(sweep.map((e) => [e.phase, e.blobs])).toEqual([1, 2, 3, 4, 5, 6, 7].map((n) => ['sweep', n]));
    expect(sweep.at(-1)?.removed).toBe(1);
    await store.close();
  });

  it('logs through the logger it is given, and only there', async () => {
    const root = await freshRoot();
    const lines: { level: string; fields: object; message?: string }[] = [];
    const logger = {
      info: (fields: object, message?: string) => lines.push({ level: 'info', fields, message }),
    };
    const store = await createImageStore({ root, logger });
    await store.garbageCollect({ gracePeriodMs: 0 });
    expect(lines).toEqual([
      expect.objectContaining({
        level: 'info',
        message: 'garbage collection done',
        fields: expect.objectContaining({ root: store.root, dryRun: false }),
      }),
    ]);
    await store.close();
  });
});
