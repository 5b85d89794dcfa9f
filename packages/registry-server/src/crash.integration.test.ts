// Crash safety: SIGKILL the server while 50 pushes run at once, restart it on the
// same root: every acknowledged push is complete and verifies, nothing partial
// is visible, and chunked uploads in progress resume or are cleanly gone.
import type { ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createImageStore } from '@stowage/image-store';
import { type Digest, digestOf, isStowageError } from '@stowage/oci';
import { createRegistryClient, type RegistryClient } from '@stowage/registry-client';
import {
  collect,
  pushImage,
  type RandomImage,
  randomBytes,
  randomImage,
  spawnSource,
} from '@stowage/testing';
import { afterAll, expect, it } from 'vitest';

const work = await mkdtemp(join(tmpdir(), 'stowage-server-crash-'));
afterAll(() => rm(work, { recursive: true, force: true }));

function startServer(root: string, port = 0): Promise<{ child: ChildProcess; port: number }> {
  const child = spawnSource(join(import.meta.dirname, '../test/server-child.ts'), [root, String(port)], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  return new Promise((resolve, reject) => {
    let out = '';
    child.stdout?.on('data', (chunk: Buffer) => {
      out += chunk.toString();
      const match = /port (\d+)/.exec(out);
      if (match) resolve({ child, port: Number(match[1]) });
    });
    child.once('exit', (code) => reject(new Error(`server exited with ${code}`)));
  });
}

function clientFor(port: number): RegistryClient {
  return createRegistryClient({
    registry: `127.0.0.1:${port}`,
    auth: { useConfigFiles: false },
    retry: { retries: 0 },
    // small chunks, so many pushes are chunked uploads when the kill comes
    monolithicMaxBytes: 64 * 1024,
    singleRequestMaxBytes: 0,
    chunkSize: 32 * 1024,
  });
}

it('a server killed during 50 concurrent pushes keeps every acknowledged push and nothing partial', async () => {
  const root = join(work, 'root');
  const first = await startServer(root);
  const client = clientFor(first.port);
  const acknowledged: { repository: string; tag: string; image: RandomImage }[] = [];
  // sessions with some chunks acknowledged, to resume after the restart
  const sessions: { id: string; repository: string; offset: number; bytes: Uint8Array }[] = [];
  let killed = false;
  const pushes = Array.from({ length: 50 }, async (_, i) => {
    const repository = `crash/r${i % 10}`;
    const tag = `t${i}`;
    if (i % 10 === 9) {
      const bytes = randomBytes(256 * 1024);
      const session = await client.startUpload(repository);
      let offset = 0;
      for (; offset < bytes.byteLength / 2; offset += 16 * 1024) {
        await client.appendUpload(repository, session.id, {
          body: bytes.subarray(offset, offset + 16 * 1024),
          offset,
        });
        sessions[i] = { id: session.id, repository, offset: offset + 16 * 1024, bytes };
      }
      return;
    }
    for (let round = 0; !killed; round++) {
      const image = randomImage({ layers: 3, layerSize: 40 * 1024 + i * 997 });
      await pushImage(client, repository, image, `${tag}-${round}`);
      acknowledged.push({ repository, tag: `${tag}-${round}`, image });
    }
  });
  const settled = Promise.allSettled(pushes);
  // kill once pushes are well under way, at a random moment
  for (let waited = 0; acknowledged.length < 10 && waited < 30_000; waited += 20) {
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  await new Promise((resolve) => setTimeout(resolve, Math.floor(Math.random() * 500)));
  killed = true;
  first.child.kill('SIGKILL');
  const outcomes = await settled;
  await client.close();
  // every push either finished or failed with the connection
  for (const outcome of outcomes) {
    if (outcome.status === 'rejected') expect(isStowageError(outcome.reason, 'NETWORK_ERROR')).toBe(true);
  }
  expect(acknowledged.length).toBeGreaterThan(0);

  // restart on the same root (and port, so upload locations stay valid)
  const second = await startServer(root, first.port);
  const after = clientFor(second.port);
  try {
    for (const { repository, tag, image } of acknowledged) {
      const manifest = await after.getManifest(repository, tag);
      expect(manifest.digest).toBe(image.manifest.digest);
      for (const blob of image.blobs) {
        const content = await after.getBlob(repository, blob.descriptor.digest);
        expect(digestOf(await collect(content.stream))).toBe(blob.descriptor.digest);
      }
    }
    // sessions in progress: resumed from the offset the server reports, or cleanly gone
    let resumed = 0;
    for (const session of sessions.filter(Boolean)) {
      let offset: number;
      try {
        offset = (await after.getUpload(session.repository, session.id)).offset;
      } catch (error) {
        expect(isStowageError(error, 'BLOB_UPLOAD_UNKNOWN')).toBe(true);
        continue;
      }
      expect(offset).toBeGreaterThanOrEqual(session.offset);
      const info = await after.finishUpload(session.repository, session.id, {
        digest: digestOf(session.bytes) as Digest,
        body: session.bytes.subarray(offset),
        offset,
      });
      expect(info.size).toBe(session.bytes.byteLength);
      resumed++;
    }
    expect(resumed).toBeGreaterThan(0);
  } finally {
    await after.close();
    second.child.kill('SIGKILL');
  }
  // nothing partial or corrupt anywhere in the store
  const store = await createImageStore({ root });
  const report = await store.fsck();
  expect(report.problems).toEqual([]);
  for (const repository of (await store.listRepositories()).items) {
    for (const tag of (await store.listTags(repository)).items) {
      const manifest = await store.getManifest(repository, tag);
      expect(digestOf(manifest.bytes)).toBe(manifest.digest);
    }
  }
  await store.close();
}, 120_000);
