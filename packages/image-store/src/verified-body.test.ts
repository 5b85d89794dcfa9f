// The one-hash handoff (markVerified): a body that checks its own digest is
// not hashed again by the store, and one that fails at its end leaves nothing.
import { randomFillSync } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { DigestMismatchError, digestOf, markVerified, VerifyingStream } from '@stowage/oci';
import { afterEach, beforeEach, expect, it } from 'vitest';
import { createImageStore, type ImageStore } from './image-store.js';

let root: string;
let store: ImageStore;
beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), 'stowage-verified-body-'));
  store = await createImageStore({ root });
});
afterEach(async () => {
  await store.close();
  await rm(root, { recursive: true, force: true });
});

const bytes = randomFillSync(Buffer.alloc(3 << 20));
const digest = digestOf(bytes);

function chunked(content: Buffer, size = 64 << 10): Readable {
  return Readable.from(
    (function* () {
      for (let i = 0; i < content.length; i += size) yield content.subarray(i, i + size);
    })(),
  );
}

it('commits a session filled by a VerifyingStream, with the digest it was checked against', async () => {
  const { id } = await store.startUpload('app');
  const body = chunked(bytes).pipe(new VerifyingStream({ digest, size: bytes.length }));
  await store.appendUpload('app', id, { body, offset: 0, length: bytes.length });
  expect(await store.finishUpload('app', id, { digest })).toEqual({ digest, size: bytes.length });
  const got = await store.getBlob('app', digest);
  const chunks: Buffer[] = [];
  for await (const chunk of got.stream) chunks.push(chunk as Buffer);
  expect(Buffer.concat(chunks).equals(bytes)).toBe(true);
});

it('a verifying body that fails at its end leaves the session empty and commits nothing', async () => {
  const { id } = await store.startUpload('app');
  const wrong = digestOf('something else');
  const body = chunked(bytes).pipe(new VerifyingStream({ digest: wrong }));
  await expect(store.appendUpload('app', id, { body, offset: 0 })).rejects.toBeInstanceOf(
    DigestMismatchError,
  );
  expect((await store.getUpload('app', id)).offset).toBe(0);
  await expect(store.finishUpload('app', id, { digest: wrong })).rejects.toBeInstanceOf(DigestMismatchError);
  expect(await store.headBlob('app', wrong)).toBeUndefined();
});

it('finishing a verified session under another digest is refused', async () => {
  const { id } = await store.startUpload('app');
  const body = chunked(bytes).pipe(new VerifyingStream({ digest }));
  await store.appendUpload('app', id, { body, offset: 0 });
  const other = digestOf('other');
  await expect(store.finishUpload('app', id, { digest: other })).rejects.toBeInstanceOf(DigestMismatchError);
  expect(await store.headBlob('app', other)).toBeUndefined();
});

it('trusts a marked body instead of hashing it again (the contract markVerified states)', async () => {
  // A body marked with a digest it does not have breaks the contract; that the store commits
  // it anyway shows the second hash is really gone. Unmarked, the same bytes are refused.
  const lying = digestOf('not these bytes');
  const unmarked = await store.startUpload('app');
  await store.appendUpload('app', unmarked.id, { body: chunked(bytes), offset: 0 });
  await expect(store.finishUpload('app', unmarked.id, { digest: lying })).rejects.toBeInstanceOf(
    DigestMismatchError,
  );
  const marked = await store.startUpload('app');
  await store.appendUpload('app', marked.id, { body: markVerified(chunked(bytes), lying), offset: 0 });
  expect(await store.finishUpload('app', marked.id, { digest: lying })).toEqual({
    digest: lying,
    size: bytes.length,
  });
});

it('a chunk after a verified body makes the store hash the whole session from disk', async () => {
  const { id } = await store.startUpload('app');
  const head = bytes.subarray(0, 1 << 20);
  await store.appendUpload('app', id, { body: markVerified(chunked(head), digestOf(head)), offset: 0 });
  await store.appendUpload('app', id, { body: chunked(bytes.subarray(1 << 20)), offset: head.length });
  await expect(store.finishUpload('app', id, { digest: digestOf(head) })).rejects.toBeInstanceOf(
    DigestMismatchError,
  );
});
