import { readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { type Digest, digestHex } from '@stowage/oci';

/**
 * Deletes every file of a blob under an image-store root behind the store's
 * back: the content-addressed copy under `.stowage/blobs` and each
 * repository's hard link `<repo>/blobs/sha256/<hex>`. Answers how many went.
 */
export async function breakImageStoreBlob(root: string, digest: Digest): Promise<number> {
  const hex = digestHex(digest);
  let removed = 0;
  const walk = async (dir: string): Promise<void> => {
    for (const entry of await readdir(dir, { withFileTypes: true })) {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) await walk(path);
      else if (entry.name === hex) {
        await rm(path);
        removed++;
      }
    }
  };
  await walk(root);
  if (removed === 0) throw new Error(`no file of blob ${digest} under ${root}`);
  return removed;
}
