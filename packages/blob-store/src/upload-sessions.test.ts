import { randomBytes } from 'node:crypto';
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { mkdir, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { type BlobBody, type Digest, digestOf, type PutBlobOptions, RegistryError } from '@stowage/oci';
import { describe, expect, it } from 'vitest';
import { blob, chunked, codeOf, collect, tempDirs } from '../test/helpers.js';
import { UPLOAD_CHANNEL, type UploadMessage } from './diagnostics.js';
import { createFileStaging } from './file-staging.js';
import { createMemoryBlobStore } from './memory-blob-store.js';
import { createMemoryStaging } from './memory-staging.js';
import { createUploadSessions } from './upload-sessions.js';
import type { UploadStaging } from './upload-staging.js';

const tempDir = tempDirs('stowage-upload-sessions-');

/** Sessions over a staging area, committing into a memory blob store; `failNext` makes the next commit fail. */
function setup(staging: UploadStaging) {
  const store = createMemoryBlobStore();
  let clock = 1_000_000;
  let failNext: Error | undefined;
  const commits: { repository: string; digest: Digest }[] = [];
  const sessions = createUploadSessions({
    staging,
    now: () => clock,
    ttlMs: 60_000,
    async putBlob(repository: string, body: BlobBody, options: PutBlobOptions) {
      if (failNext) {
        const error = failNext;
        failNext = undefined;
        // Read a little first, as a real store would before its disk or upstream fails.
        for await (const _ of body as AsyncIterable<Uint8Array>) break;
        throw error;
      }
      const info = await store.write(body, options);
      commits.push({ repository, digest: info.digest });
      return { digest: info.digest, size: info.size };
    },
  });
  return {
    sessions,
    store,
    commits,
    advance(ms: number) {
      clock += ms;
    },
    failNextCommit(error: Error) {
      failNext = error;
    },
    async stored(digest: Digest): Promise<Buffer | undefined> {
      if (!(await store.stat(digest))) return undefined;
      return collect((await store.read(digest)).stream);
    },
  };
}

function uploadSessionsContract(name: string, openStaging: () => Promise<UploadStaging>) {
  describe(`${name}: upload sessions`, () => {
    it('start, append chunks, status, finish with a last chunk; the session then ends', async () => {
      const { sessions, stored, commits } = setup(await openStaging());
      const b = blob(30_000);
      const started = await sessions.startUpload('demo/app');
      expect(started).toEqual({ id: started.id, repository: 'demo/app', offset: 0, startedAt: 1_000_000 });
      expect(started.id).toMatch(/^[0-9a-f]{32}$/);
      let status = await sessions.appendUpload('demo/app', started.id, {
        body: b.bytes.subarray(0, 10_000),
        offset: 0,
      });
      expect(status.offset).toBe(10_000);
      status = await sessions.appendUpload('demo/app', started.id, {
        body: chunked(b.bytes.subarray(10_000, 25_000), 999),
        offset: 10_000,
        length: 15_000,
      });
      expect(status.offset).toBe(25_000);
      expect((await sessions.getUpload('demo/app', started.id)).offset).toBe(25_000);
      const info = await sessions.finishUpload('demo/app', started.id, {
        digest: b.digest,
        body: chunked(b.bytes.subarray(25_000), 1000),
        offset: 25_000,
        length: 5000,
      });
      expect(info).toEqual({ digest: b.digest, size: 30_000 });
      expect((await stored(b.digest))?.equals(b.bytes)).toBe(true);
      expect(commits).toEqual([{ repository: 'demo/app', digest: b.digest }]);
      expect(await codeOf(sessions.getUpload('demo/app', started.id))).toBe('BLOB_UPLOAD_UNKNOWN');
    });

    it('appends without an offset go at the end; a finish without a body commits what is staged', async () => {
      const { sessions, stored } = setup(await openStaging());
      const b = blob(3000);
      const { id } = await sessions.startUpload('a');
      await sessions.appendUpload('a', id, { body: b.bytes.subarray(0, 1000) });
      await sessions.appendUpload('a', id, { body: b.bytes.subarray(1000) });
      expect(await sessions.finishUpload('a', id, { digest: b.digest })).toEqual({
        digest: b.digest,
        size: 3000,
      });
      expect((await stored(b.digest))?.equals(b.bytes)).toBe(true);
    });

    it('an empty upload finished in one go, and a monolithic one', async () => {
      const { sessions, stored } = setup(await openStaging());
      const empty = await sessions.startUpload('a');
      expect(await sessions.finishUpload('a', empty.id, { digest: digestOf('') })).toEqual({
        digest: digestOf(''),
        size: 0,
      });
      const b = blob(5000);
      const whole = await sessions.startUpload('a');
      expect(await sessions.finishUpload('a', whole.id, { digest: b.digest, body: b.bytes })).toEqual({
        digest: b.digest,
        size: 5000,
      });
      expect((await stored(b.digest))?.equals(b.bytes)).toBe(true);
    });

    it('a chunk at the wrong offset is refused with RANGE_INVALID and changes nothing', async () => {
      const { sessions, stored } = setup(await openStaging());
      const b = blob(2000);
      const { id } = await sessions.startUpload('a');
      await sessions.appendUpload('a', id, { body: b.bytes.subarray(0, 1000), offset: 0 });
      expect(
        await codeOf(sessions.appendUpload('a', id, { body: b.bytes.subarray(1500), offset: 1500 })),
      ).toBe('RANGE_INVALID');
      expect(await codeOf(sessions.appendUpload('a', id, { body: b.bytes.subarray(500), offset: 500 }))).toBe(
        'RANGE_INVALID',
      );
      expect(
        await codeOf(
          sessions.finishUpload('a', id, { digest: b.digest, body: b.bytes.subarray(900), offset: 900 }),
        ),
      ).toBe('RANGE_INVALID');
      expect((await sessions.getUpload('a', id)).offset).toBe(1000);
      await sessions.appendUpload('a', id, { body: b.bytes.subarray(1000), offset: 1000 });
      expect(await sessions.finishUpload('a', id, { digest: b.digest })).toEqual({
        digest: b.digest,
        size: 2000,
      });
      expect((await stored(b.digest))?.equals(b.bytes)).toBe(true);
    });

    it('a chunk whose length is not the one declared is refused with SIZE_INVALID and changes nothing', async () => {
      const { sessions, stored } = setup(await openStaging());
      const b = blob(3000);
      const { id } = await sessions.startUpload('a');
      await sessions.appendUpload('a', id, { body: b.bytes.subarray(0, 1000) });
      expect(
        await codeOf(
          sessions.appendUpload('a', id, { body: b.bytes.subarray(1000, 2000), offset: 1000, length: 999 }),
        ),
      ).toBe('SIZE_INVALID');
      expect(
        await codeOf(
          sessions.appendUpload('a', id, { body: chunked(b.bytes.subarray(1000, 2000), 100), length: 1001 }),
        ),
      ).toBe('SIZE_INVALID');
      expect((await sessions.getUpload('a', id)).offset).toBe(1000);
      // The same for a last chunk: the session stays as it was and can still be finished.
      expect(
        await codeOf(
          sessions.finishUpload('a', id, { digest: b.digest, body: b.bytes.subarray(1000), length: 1999 }),
        ),
      ).toBe('SIZE_INVALID');
      expect((await sessions.getUpload('a', id)).offset).toBe(1000);
      expect(await stored(b.digest)).toBeUndefined();
      expect(
        await sessions.finishUpload('a', id, {
          digest: b.digest,
          body: b.bytes.subarray(1000),
          length: 2000,
        }),
      ).toEqual({ digest: b.digest, size: 3000 });
    });

    it('a chunk whose body fails midway, or is aborted, leaves the session at its old offset', async () => {
      const { sessions, stored } = setup(await openStaging());
      const b = blob(4000);
      const { id } = await sessions.startUpload('a');
      await sessions.appendUpload('a', id, { body: b.bytes.subarray(0, 1000) });
      async function* breaks(): AsyncGenerator<Uint8Array> {
        yield randomBytes(1500);
        throw new Error('connection reset');
      }
      await expect(sessions.appendUpload('a', id, { body: breaks() })).rejects.toThrow('connection reset');
      expect((await sessions.getUpload('a', id)).offset).toBe(1000);
      const controller = new AbortController();
      async function* stalls(): AsyncGenerator<Uint8Array> {
        yield randomBytes(700);
        controller.abort();
        await new Promise((resolve) => setTimeout(resolve, 10));
        yield randomBytes(700);
      }
      expect(
        await codeOf(sessions.appendUpload('a', id, { body: stalls(), signal: controller.signal })),
      ).toBe('AbortError');
      expect((await sessions.getUpload('a', id)).offset).toBe(1000);
      // The bytes that did arrive before the failures are gone: the blob comes out exact.
      expect(
        await sessions.finishUpload('a', id, { digest: b.digest, body: b.bytes.subarray(1000) }),
      ).toEqual({
        digest: b.digest,
        size: 4000,
      });
      expect((await stored(b.digest))?.equals(b.bytes)).toBe(true);
    });

    it('finishing with the wrong digest commits nothing and ends the session', async () => {
      const { sessions, store, commits } = setup(await openStaging());
      const b = blob(500);
      const { id } = await sessions.startUpload('a');
      await sessions.appendUpload('a', id, { body: b.bytes });
      const wrong = digestOf('wrong');
      expect(await codeOf(sessions.finishUpload('a', id, { digest: wrong }))).toBe('DIGEST_INVALID');
      expect(await store.stat(wrong)).toBeUndefined();
      expect(await store.stat(b.digest)).toBeUndefined();
      expect(commits).toEqual([]);
      expect(await codeOf(sessions.getUpload('a', id))).toBe('BLOB_UPLOAD_UNKNOWN');
    });

    it('a finish the store fails (or an abort) leaves the session as it was, so it can be retried', async () => {
      const { sessions, stored, failNextCommit } = setup(await openStaging());
      const b = blob(2500);
      const { id } = await sessions.startUpload('a');
      await sessions.appendUpload('a', id, { body: b.bytes.subarray(0, 2000) });
      failNextCommit(new RegistryError('UNAVAILABLE', 'the store is closing', { retryable: true }));
      expect(
        await codeOf(
          sessions.finishUpload('a', id, { digest: b.digest, body: b.bytes.subarray(2000), offset: 2000 }),
        ),
      ).toBe('UNAVAILABLE');
      expect((await sessions.getUpload('a', id)).offset).toBe(2000);
      expect(
        await codeOf(
          sessions.finishUpload('a', id, {
            digest: b.digest,
            body: b.bytes.subarray(2000),
            signal: AbortSignal.abort(),
          }),
        ),
      ).toBe('AbortError');
      expect((await sessions.getUpload('a', id)).offset).toBe(2000);
      expect(
        await sessions.finishUpload('a', id, {
          digest: b.digest,
          body: b.bytes.subarray(2000),
          offset: 2000,
        }),
      ).toEqual({ digest: b.digest, size: 2500 });
      expect((await stored(b.digest))?.equals(b.bytes)).toBe(true);
    });

    it('a cancelled upload is gone', async () => {
      const { sessions } = setup(await openStaging());
      const { id } = await sessions.startUpload('a');
      await sessions.appendUpload('a', id, { body: randomBytes(10) });
      await sessions.cancelUpload('a', id);
      expect(await codeOf(sessions.getUpload('a', id))).toBe('BLOB_UPLOAD_UNKNOWN');
      expect(await codeOf(sessions.cancelUpload('a', id))).toBe('BLOB_UPLOAD_UNKNOWN');
      expect(await codeOf(sessions.appendUpload('a', id, { body: randomBytes(1) }))).toBe(
        'BLOB_UPLOAD_UNKNOWN',
      );
      expect(await codeOf(sessions.finishUpload('a', id, { digest: digestOf('') }))).toBe(
        'BLOB_UPLOAD_UNKNOWN',
      );
    });

    it('unknown ids, hostile ids and the ids of another repository are BLOB_UPLOAD_UNKNOWN', async () => {
      const { sessions } = setup(await openStaging());
      const { id } = await sessions.startUpload('a');
      const hostile = [
        randomBytes(16).toString('hex'),
        '../../etc/passwd',
        '',
        'A'.repeat(32),
        `${id}/..`,
        '.',
      ];
      for (const bad of hostile) {
        expect(await codeOf(sessions.getUpload('a', bad))).toBe('BLOB_UPLOAD_UNKNOWN');
        expect(await codeOf(sessions.appendUpload('a', bad, { body: randomBytes(1) }))).toBe(
          'BLOB_UPLOAD_UNKNOWN',
        );
        expect(await codeOf(sessions.finishUpload('a', bad, { digest: digestOf('') }))).toBe(
          'BLOB_UPLOAD_UNKNOWN',
        );
        expect(await codeOf(sessions.cancelUpload('a', bad))).toBe('BLOB_UPLOAD_UNKNOWN');
      }
      expect(await codeOf(sessions.getUpload('b', id))).toBe('BLOB_UPLOAD_UNKNOWN');
      expect(await codeOf(sessions.cancelUpload('b', id))).toBe('BLOB_UPLOAD_UNKNOWN');
      expect((await sessions.getUpload('a', id)).offset).toBe(0);
      expect(await codeOf(sessions.startUpload('Not/Valid'))).toBe('NAME_INVALID');
      expect(await codeOf(sessions.getUpload('..', id))).toBe('NAME_INVALID');
    });

    it('sessions past their age are unknown; purge removes the old ones and keeps the young', async () => {
      const { sessions, advance } = setup(await openStaging());
      const first = await sessions.startUpload('a');
      advance(61_000);
      expect(await codeOf(sessions.getUpload('a', first.id))).toBe('BLOB_UPLOAD_UNKNOWN');
      const old = await sessions.startUpload('a');
      const older = await sessions.startUpload('b');
      advance(30_000);
      const young = await sessions.startUpload('a');
      advance(1000);
      expect(await sessions.purge({ olderThanMs: 20_000 })).toBe(2);
      expect(await codeOf(sessions.getUpload('a', old.id))).toBe('BLOB_UPLOAD_UNKNOWN');
      expect(await codeOf(sessions.getUpload('b', older.id))).toBe('BLOB_UPLOAD_UNKNOWN');
      expect((await sessions.getUpload('a', young.id)).offset).toBe(0);
      expect(await sessions.purge()).toBe(0);
      advance(60_000);
      expect(await sessions.purge()).toBe(1);
    });

    it('concurrent sessions stay apart', async () => {
      const { sessions, stored } = setup(await openStaging());
      const blobs = Array.from({ length: 4 }, () => blob(20_000));
      await Promise.all(
        blobs.map(async (b) => {
          const { id } = await sessions.startUpload('a');
          for (let offset = 0; offset < 20_000; offset += 5000) {
            await sessions.appendUpload('a', id, { body: b.bytes.subarray(offset, offset + 5000), offset });
          }
          return sessions.finishUpload('a', id, { digest: b.digest });
        }),
      );
      for (const b of blobs) expect((await stored(b.digest))?.equals(b.bytes)).toBe(true);
    });
  });
}

uploadSessionsContract('memory staging', async () => createMemoryStaging());
uploadSessionsContract('file staging', async () =>
  createFileStaging({ dir: join(await tempDir(), 'uploads') }),
);

describe('file staging', () => {
  it('closes the staged bytes even when putBlob does not read them (a store that had the blob)', async () => {
    const staging = createFileStaging({ dir: join(await tempDir(), 'uploads') });
    let opened: Readable | undefined;
    const spy: UploadStaging = {
      ...staging,
      read: async (id, options) => {
        opened = await staging.read(id, options);
        return opened;
      },
    };
    const sessions = createUploadSessions({
      staging: spy,
      putBlob: async (_repository, _body, options) => ({ digest: options.digest, size: 3 }),
    });
    const { id } = await sessions.startUpload('a');
    await sessions.appendUpload('a', id, { body: new Uint8Array([1, 2, 3]) });
    await sessions.finishUpload('a', id, { digest: digestOf(new Uint8Array([1, 2, 3])) });
    expect(opened?.destroyed).toBe(true);
  });

  it('a session outlives the process that opened it', async () => {
    const dir = join(await tempDir(), 'uploads');
    const b = blob(9000);
    const first = setup(createFileStaging({ dir }));
    const { id } = await first.sessions.startUpload('a');
    await first.sessions.appendUpload('a', id, { body: b.bytes.subarray(0, 4000) });
    const second = setup(createFileStaging({ dir }));
    expect((await second.sessions.getUpload('a', id)).offset).toBe(4000);
    expect(
      await second.sessions.finishUpload('a', id, { digest: b.digest, body: b.bytes.subarray(4000) }),
    ).toEqual({
      digest: b.digest,
      size: 9000,
    });
    expect(await readdir(dir)).toEqual([]);
  });

  it('a session whose creation a crash cut short is unknown, listed, and purged', async () => {
    const dir = join(await tempDir(), 'uploads');
    const staging = createFileStaging({ dir });
    const { sessions } = setup(staging);
    await sessions.startUpload('a');
    const torn = randomBytes(16).toString('hex');
    await mkdir(join(dir, torn));
    expect(await codeOf(sessions.getUpload('a', torn))).toBe('BLOB_UPLOAD_UNKNOWN');
    const listed = [];
    for await (const entry of staging.list()) listed.push(entry);
    expect(listed.map((entry) => entry.id).sort()).toHaveLength(2);
    expect(listed.find((entry) => entry.id === torn)?.repository).toBe('');
    // Its age is its directory's mtime, real time: purge everything older than "from now on".
    const now = createUploadSessions({ staging, putBlob: async () => ({ digest: digestOf(''), size: 0 }) });
    expect(await now.purge({ olderThanMs: -60_000 })).toBe(2);
    expect(await readdir(dir)).toEqual([]);
  });

  it('keeps bytes and metadata of each session in its own directory, and removes them with it', async () => {
    const dir = join(await tempDir(), 'uploads');
    const { sessions } = setup(createFileStaging({ dir }));
    const { id } = await sessions.startUpload('a');
    await sessions.appendUpload('a', id, { body: randomBytes(10) });
    expect((await readdir(join(dir, id))).sort()).toEqual(['0000000000000000.chunk', 'meta.json']);
    await sessions.cancelUpload('a', id);
    expect(await readdir(dir)).toEqual([]);
  });

  it('shared by two processes: of two appends at one offset exactly one is accepted, and a failed one undoes nothing', async () => {
    const dir = join(await tempDir(), 'uploads');
    // two session layers over two staging areas on one directory: what two server replicas are
    const one = setup(createFileStaging({ dir }));
    const two = setup(createFileStaging({ dir }));
    const b = blob(3000);
    const { id } = await one.sessions.startUpload('a');
    await one.sessions.appendUpload('a', id, { body: b.bytes.subarray(0, 1000), offset: 0 });
    for (let round = 0; round < 20; round++) {
      const { id: raced } = await one.sessions.startUpload('a');
      const outcomes = await Promise.allSettled([
        one.sessions.appendUpload('a', raced, { body: randomBytes(500), offset: 0 }),
        two.sessions.appendUpload('a', raced, { body: randomBytes(700), offset: 0 }),
      ]);
      const accepted = outcomes.filter((o) => o.status === 'fulfilled');
      expect(accepted).toHaveLength(1);
      const refused = outcomes.find((o) => o.status === 'rejected') as PromiseRejectedResult;
      expect((refused.reason as RegistryError).code).toBe('RANGE_INVALID');
      const offset = (accepted[0] as PromiseFulfilledResult<{ offset: number }>).value.offset;
      expect((await two.sessions.getUpload('a', raced)).offset).toBe(offset);
      await one.sessions.cancelUpload('a', raced);
    }
    // a chunk whose body fails midway through one process leaves the other's acknowledged chunk alone
    const failing = (async function* () {
      yield b.bytes.subarray(1000, 1500);
      throw new Error('the client went away');
    })();
    await expect(two.sessions.appendUpload('a', id, { body: failing, offset: 1000 })).rejects.toThrow(
      'the client went away',
    );
    expect((await one.sessions.getUpload('a', id)).offset).toBe(1000);
    await two.sessions.appendUpload('a', id, { body: b.bytes.subarray(1000, 2000), offset: 1000 });
    const done = await one.sessions.finishUpload('a', id, {
      digest: b.digest,
      body: b.bytes.subarray(2000),
      offset: 2000,
    });
    expect(done).toEqual({ digest: b.digest, size: 3000 });
    expect(await readdir(dir)).toEqual([]);
  });
});

describe('diagnostics', () => {
  it(`publishes how each session ended on ${UPLOAD_CHANNEL}`, async () => {
    const messages: UploadMessage[] = [];
    const listener = (message: unknown) => messages.push(message as UploadMessage);
    subscribe(UPLOAD_CHANNEL, listener);
    try {
      const { sessions, advance } = setup(createMemoryStaging());
      const b = blob(100);
      const committed = await sessions.startUpload('a');
      await sessions.finishUpload('a', committed.id, { digest: b.digest, body: b.bytes });
      const refused = await sessions.startUpload('a');
      await sessions.appendUpload('a', refused.id, { body: b.bytes.subarray(0, 10) });
      await codeOf(sessions.finishUpload('a', refused.id, { digest: b.digest }));
      const cancelled = await sessions.startUpload('b');
      await sessions.cancelUpload('b', cancelled.id);
      const expired = await sessions.startUpload('c');
      advance(120_000);
      await sessions.purge();
      expect(messages).toEqual([
        { repository: 'a', id: committed.id, outcome: 'committed', size: 100, digest: b.digest },
        { repository: 'a', id: refused.id, outcome: 'refused', size: 10, digest: b.digest },
        { repository: 'b', id: cancelled.id, outcome: 'cancelled', size: 0 },
        { repository: 'c', id: expired.id, outcome: 'expired', size: 0 },
      ]);
    } finally {
      unsubscribe(UPLOAD_CHANNEL, listener);
    }
  });
});
