import { digestOf } from '@stowage/oci';
import { collect, pushImage, randomBlob, randomImage } from '../random.js';
import { type Conformance, chunked, codeOf, enc } from './suite.js';

/** The five members of a chunked upload session, for the stores that have them. */
export function uploadCases(c: Conformance): void {
  const { describe, expect, test, registry, repo, sessions } = c;
  describe('upload sessions', () => {
    test('start, append chunks, status, finish', ['uploadSessions'], async () => {
      const r = sessions();
      const name = repo();
      const blob = randomBlob(30_000);
      const started = await r.startUpload(name);
      expect(started.offset).toBe(0);
      let status = await r.appendUpload(name, started.id, {
        body: blob.bytes.subarray(0, 10_000),
        offset: 0,
      });
      expect(status.offset).toBe(10_000);
      status = await r.appendUpload(name, status.id, {
        body: chunked(blob.bytes.subarray(10_000, 25_000), 1000),
        offset: 10_000,
        length: 15_000,
      });
      expect(status.offset).toBe(25_000);
      const info = await r.finishUpload(name, status.id, {
        digest: blob.descriptor.digest,
        body: blob.bytes.subarray(25_000),
        offset: 25_000,
      });
      expect(info).toEqual({ digest: blob.descriptor.digest, size: 30_000 });
      const got = await collect((await r.getBlob(name, blob.descriptor.digest)).stream);
      expect(digestOf(got)).toBe(blob.descriptor.digest);
    });

    test('status reports the offset', ['uploadSessions', 'uploadStatus'], async () => {
      const r = sessions();
      const name = repo();
      const started = await r.startUpload(name);
      const status = await r.appendUpload(name, started.id, { body: randomBlob(1234).bytes });
      expect((await r.getUpload(name, status.id)).offset).toBe(1234);
      await r.cancelUpload(name, status.id);
    });

    test(
      'a chunk at the wrong offset is refused and changes nothing',
      ['uploadSessions', 'outOfOrderChunkRefusal', 'uploadStatus'],
      async () => {
        const r = sessions();
        const name = repo();
        const blob = randomBlob(2000);
        const started = await r.startUpload(name);
        const status = await r.appendUpload(name, started.id, {
          body: blob.bytes.subarray(0, 1000),
          offset: 0,
        });
        expect(
          await codeOf(r.appendUpload(name, status.id, { body: blob.bytes.subarray(1500), offset: 1500 })),
        ).toBe('RANGE_INVALID');
        expect(
          await codeOf(r.appendUpload(name, status.id, { body: blob.bytes.subarray(500), offset: 500 })),
        ).toBe('RANGE_INVALID');
        const current = await r.getUpload(name, status.id);
        expect(current.offset).toBe(1000);
        const done = await r.appendUpload(name, current.id, {
          body: blob.bytes.subarray(1000),
          offset: 1000,
        });
        expect(await r.finishUpload(name, done.id, { digest: blob.descriptor.digest })).toEqual({
          digest: blob.descriptor.digest,
          size: 2000,
        });
      },
    );

    test('finishing with the wrong digest commits nothing', ['uploadSessions'], async () => {
      const r = sessions();
      const name = repo();
      const blob = randomBlob(500);
      const started = await r.startUpload(name);
      const status = await r.appendUpload(name, started.id, { body: blob.bytes });
      const wrong = digestOf('wrong');
      expect(await codeOf(r.finishUpload(name, status.id, { digest: wrong }))).toBe('DIGEST_INVALID');
      expect(await r.headBlob(name, wrong)).toBeUndefined();
      expect(await r.headBlob(name, blob.descriptor.digest)).toBeUndefined();
    });

    test('a cancelled upload is gone', ['uploadSessions', 'uploadStatus'], async () => {
      const r = sessions();
      const name = repo();
      const started = await r.startUpload(name);
      await r.appendUpload(name, started.id, { body: randomBlob(10).bytes });
      await r.cancelUpload(name, started.id);
      expect(await codeOf(r.getUpload(name, started.id))).toBe('BLOB_UPLOAD_UNKNOWN');
    });

    test('unknown upload sessions', ['uploadSessions', 'uploadStatus'], async () => {
      const r = sessions();
      const name = repo();
      await pushImage(r, name, randomImage(), 'v1');
      const started = await r.startUpload(name);
      await r.cancelUpload(name, started.id);
      expect(await codeOf(r.appendUpload(name, started.id, { body: enc.encode('x') }))).toBe(
        'BLOB_UPLOAD_UNKNOWN',
      );
      expect(await codeOf(r.finishUpload(name, started.id, { digest: digestOf('x') }))).toBe(
        'BLOB_UPLOAD_UNKNOWN',
      );
    });

    test('an empty upload finished in one go', ['uploadSessions'], async () => {
      const r = sessions();
      const name = repo();
      const started = await r.startUpload(name);
      const digest = digestOf('');
      expect(await r.finishUpload(name, started.id, { digest })).toEqual({ digest, size: 0 });
    });
    test('a store without upload sessions has none of their members', ['!uploadSessions'], async () => {
      const r = registry() as unknown as Record<string, unknown>;
      for (const member of ['startUpload', 'appendUpload', 'getUpload', 'finishUpload', 'cancelUpload'])
        expect(r[member], member).toBeUndefined();
    });
  });
}
