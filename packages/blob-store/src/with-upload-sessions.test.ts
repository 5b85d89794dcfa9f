import { randomBytes } from 'node:crypto';
import {
  type BlobBody,
  type BlobContent,
  type BlobInfo,
  type Digest,
  digestOf,
  fullCapabilities,
  hasUploadSessions,
  type PutBlobOptions,
  type Registry,
  type RegistryCapabilities,
  RegistryError,
} from '@stowage/oci';
import { describe, expect, it } from 'vitest';
import { codeOf, tempDirs } from '../test/helpers.js';
import type { BlobStore } from './blob-store.js';
import { createFileStaging } from './file-staging.js';
import { createMemoryBlobStore } from './memory-blob-store.js';
import { createMemoryStaging } from './memory-staging.js';
import { withUploadSessions } from './upload-sessions.js';

const tempDir = tempDirs('stowage-with-sessions-');

function unsupported(): never {
  throw new RegistryError('UNSUPPORTED', 'not in this test store');
}

/**
 * A store with blobs only and no upload sessions, written as a class with
 * private fields, so a member called with the wrong `this` fails loudly.
 */
class BlobsOnlyRegistry implements Registry {
  readonly origin = 'test:blobs-only';
  readonly #blobs: BlobStore = createMemoryBlobStore();
  readonly #links = new Set<string>();
  calls: string[] = [];

  async capabilities(): Promise<RegistryCapabilities> {
    return {
      ...fullCapabilities,
      referrers: 'none',
      uploadSessions: false,
      uploadStatus: false,
      outOfOrderChunkRefusal: false,
      lock: false,
      garbageCollect: false,
    };
  }
  async listRepositories(): Promise<never> {
    this.calls.push('listRepositories');
    unsupported();
  }
  async listTags(repository: string): Promise<never> {
    this.calls.push(`listTags ${repository}`);
    unsupported();
  }
  async deleteTag(): Promise<never> {
    unsupported();
  }
  async getManifest(): Promise<never> {
    unsupported();
  }
  async headManifest(): Promise<never> {
    unsupported();
  }
  async putManifest(): Promise<never> {
    unsupported();
  }
  async deleteManifest(): Promise<never> {
    unsupported();
  }
  async listReferrers(): Promise<never> {
    unsupported();
  }
  async headBlob(repository: string, digest: Digest): Promise<BlobInfo | undefined> {
    if (!this.#links.has(`${repository}@${digest}`)) return undefined;
    const info = await this.#blobs.stat(digest);
    return info && { digest, size: info.size };
  }
  async getBlob(repository: string, digest: Digest): Promise<BlobContent> {
    if (!this.#links.has(`${repository}@${digest}`)) throw new RegistryError('BLOB_UNKNOWN', 'not linked');
    return this.#blobs.read(digest);
  }
  async putBlob(repository: string, body: BlobBody, options: PutBlobOptions): Promise<BlobInfo> {
    this.calls.push(`putBlob ${repository}`);
    const info = await this.#blobs.write(body, options);
    this.#links.add(`${repository}@${info.digest}`);
    return { digest: info.digest, size: info.size };
  }
  async mountBlob(): Promise<undefined> {
    return undefined;
  }
  async deleteBlob(): Promise<never> {
    unsupported();
  }
}

class ClosableRegistry extends BlobsOnlyRegistry {
  closed = 0;
  async close(): Promise<void> {
    this.closed++;
  }
}

describe('withUploadSessions', () => {
  it('gives a store without sessions the shared ones, committing through its putBlob', async () => {
    const base = new BlobsOnlyRegistry();
    expect(hasUploadSessions(base)).toBe(false);
    const registry = withUploadSessions(base, { staging: createMemoryStaging() });
    expect(hasUploadSessions(registry)).toBe(true);
    const bytes = randomBytes(10_000);
    const digest = digestOf(bytes);
    const { id } = await registry.startUpload('demo/app');
    await registry.appendUpload('demo/app', id, { body: bytes.subarray(0, 6000), offset: 0 });
    expect(await codeOf(registry.appendUpload('demo/app', id, { body: bytes, offset: 1 }))).toBe(
      'RANGE_INVALID',
    );
    expect(
      await registry.finishUpload('demo/app', id, { digest, body: bytes.subarray(6000), offset: 6000 }),
    ).toEqual({
      digest,
      size: 10_000,
    });
    expect(base.calls).toEqual(['putBlob demo/app']);
    expect(await base.headBlob('demo/app', digest)).toEqual({ digest, size: 10_000 });
    expect(await registry.headBlob('demo/app', digest)).toEqual({ digest, size: 10_000 });
    expect(await codeOf(registry.getUpload('demo/app', id))).toBe('BLOB_UPLOAD_UNKNOWN');
  });

  it('says so in its capabilities and passes every other member and capability through', async () => {
    const base = new BlobsOnlyRegistry();
    const registry = withUploadSessions(base, { staging: createMemoryStaging() });
    expect(registry.origin).toBe('test:blobs-only');
    expect(await registry.capabilities()).toEqual({
      ...(await base.capabilities()),
      uploadSessions: true,
      uploadStatus: true,
      outOfOrderChunkRefusal: true,
    });
    expect((await registry.capabilities()).referrers).toBe('none');
    expect(await codeOf(registry.listTags('x'))).toBe('UNSUPPORTED');
    expect(await codeOf(registry.listRepositories())).toBe('UNSUPPORTED');
    expect(base.calls).toEqual(['listTags x', 'listRepositories']);
    const bytes = randomBytes(10);
    await registry.putBlob('r', bytes, { digest: digestOf(bytes) });
    expect(await base.headBlob('r', digestOf(bytes))).toEqual({ digest: digestOf(bytes), size: 10 });
    expect(await registry.mountBlob('r', digestOf(bytes))).toBeUndefined();
  });

  it('keeps optional members exactly when the store has them', async () => {
    const plain = withUploadSessions(new BlobsOnlyRegistry(), { staging: createMemoryStaging() });
    expect(plain.close).toBeUndefined();
    expect(plain.lock).toBeUndefined();
    expect(plain.garbageCollect).toBeUndefined();
    const base = new ClosableRegistry();
    const closable = withUploadSessions(base, { staging: createMemoryStaging() });
    await closable.close?.();
    expect(base.closed).toBe(1);
  });

  it('returns a store that has its own sessions as it is', async () => {
    const base = withUploadSessions(new BlobsOnlyRegistry(), { staging: createMemoryStaging() });
    expect(withUploadSessions(base, { staging: createMemoryStaging() })).toBe(base);
  });

  it('with a file staging area, a session survives a new wrapper over the same directory', async () => {
    const dir = await tempDir();
    const base = new BlobsOnlyRegistry();
    const bytes = randomBytes(5000);
    const first = withUploadSessions(base, { staging: createFileStaging({ dir }) });
    const { id } = await first.startUpload('a');
    await first.appendUpload('a', id, { body: bytes.subarray(0, 2000) });
    const second = withUploadSessions(base, { staging: createFileStaging({ dir }) });
    expect((await second.getUpload('a', id)).offset).toBe(2000);
    await second.finishUpload('a', id, { digest: digestOf(bytes), body: bytes.subarray(2000) });
    expect(await base.headBlob('a', digestOf(bytes))).toEqual({ digest: digestOf(bytes), size: 5000 });
  });
});
