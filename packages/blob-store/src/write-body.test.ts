import { mkdtemp, open, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { SizeMismatchError } from '@stowage/oci';
import { afterEach, beforeEach, expect, it } from 'vitest';
import { writeBody } from './internal/body.js';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'stowage-write-body-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** `count` chunks of `size` bytes, chunk i filled with i % 251. */
function pattern(count: number, size: number): Buffer[] {
  return Array.from({ length: count }, (_, i) => Buffer.alloc(size, i % 251));
}

it('writes many small chunks in order, gathered into a few writes, and counts them', async () => {
  const chunks = pattern(5000, 333); // more chunks per batch than one writev takes
  const path = join(dir, 'a');
  const handle = await open(path, 'w');
  const seen: number[] = [];
  try {
    const written = await writeBody(handle, Readable.from(chunks), {
      onChunk: (c) => seen.push(c.byteLength),
    });
    expect(written).toBe(5000 * 333);
  } finally {
    await handle.close();
  }
  expect((await readFile(path)).equals(Buffer.concat(chunks))).toBe(true);
  expect(seen).toHaveLength(5000);
});

it('writes at a position, and a byte array body is one chunk', async () => {
  const path = join(dir, 'b');
  const handle = await open(path, 'w+');
  try {
    await writeBody(handle, Buffer.from('hello world'));
    await writeBody(handle, Buffer.from('WORLD'), { position: 6 });
  } finally {
    await handle.close();
  }
  expect(await readFile(path, 'utf8')).toBe('hello WORLD');
});

it('refuses a body longer than its length at once and a shorter one at the end', async () => {
  const handle = await open(join(dir, 'c'), 'w');
  try {
    await expect(writeBody(handle, Readable.from(pattern(4, 10)), { length: 25 })).rejects.toBeInstanceOf(
      SizeMismatchError,
    );
    await expect(writeBody(handle, Readable.from(pattern(2, 10)), { length: 25 })).rejects.toBeInstanceOf(
      SizeMismatchError,
    );
  } finally {
    await handle.close();
  }
});

it('an abort destroys a stream body that stalls', async () => {
  const handle = await open(join(dir, 'd'), 'w');
  const body = new Readable({ read() {} });
  body.push(Buffer.from('first'));
  const controller = new AbortController();
  try {
    const writing = writeBody(handle, body, { signal: controller.signal });
    setTimeout(() => controller.abort(), 20);
    await expect(writing).rejects.toMatchObject({ name: 'AbortError' });
    expect(body.destroyed).toBe(true);
  } finally {
    await handle.close();
  }
});
