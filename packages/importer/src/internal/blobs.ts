// The common-blobs step: every blob of the tree's blob store, in batches of one transaction each.
import type { Transaction } from '@stowage/metadata-db';
import type { Digest } from '@stowage/oci';
import { blobSubscribed, publishBlob } from '../diagnostics.js';
import type { ImportRun } from './run.js';

const BATCH = 500;

export async function importBlobs(run: ImportRun, dry: Transaction | undefined): Promise<void> {
  let batch: { digest: Digest; size: number }[] = [];
  const flush = async () => {
    const items = batch;
    batch = [];
    if (items.length === 0) return;
    await run.inTransaction(dry, async (tx) => {
      // one statement for the batch (existing rows are left as they are)
      await run.store.on(tx).blobs(items);
    });
    run.counters.blobs += items.length;
    if (blobSubscribed()) {
      for (const item of items) publishBlob({ ...item, dryRun: run.options.dryRun });
    }
    run.progress('blobs');
  };
  for await (const blob of run.tree.blobs()) {
    run.checkAbort();
    batch.push(blob);
    if (batch.length >= BATCH) await flush();
  }
  await flush();
}
