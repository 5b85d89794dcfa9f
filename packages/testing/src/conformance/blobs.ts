import { randomBytes as cryptoRandomBytes } from 'node:crypto';
import type { Digest } from '@stowage/oci';
import { digestOf } from '@stowage/oci';
import { collect, emptyConfig, pushImage, randomBlob, randomImage } from '../random.js';
import { type Conformance, chunked, codeOf, enc } from './suite.js';

/** Blobs: push, read, ranges, digests, mounts, deletes. */
export function blobCases(c: Conformance): void {
  const { describe, expect, test, registry, repo } = c;
  describe('blobs', () => {
    test('put, head and get round-trip a blob', [], async () => {
      const r = registry();
      const name = repo();
      const blob = randomBlob(4096);
      const info = await r.putBlob(name, blob.bytes, { digest: blob.descriptor.digest, size: 4096 });
      expect(info).toEqual({ digest: blob.descriptor.digest, size: 4096 });
      expect(await r.headBlob(name, blob.descriptor.digest)).toEqual({
        digest: blob.descriptor.digest,
        size: 4096,
      });
      const content = await r.getBlob(name, blob.descriptor.digest);
      expect(content.size).toBe(4096);
      expect(Buffer.from(await collect(content.stream)).equals(Buffer.from(blob.bytes))).toBe(true);
    });

    test('an empty blob', [], async () => {
      const r = registry();
      const name = repo();
      const digest = digestOf(new Uint8Array());
      await r.putBlob(name, new Uint8Array(), { digest, size: 0 });
      expect(await r.headBlob(name, digest)).toEqual({ digest, size: 0 });
      expect((await collect((await r.getBlob(name, digest)).stream)).byteLength).toBe(0);
    });

    test('a streamed body of many small chunks, without a size', [], async () => {
      const r = registry();
      const name = repo();
      const blob = randomBlob(100_000);
      await r.putBlob(name, chunked(blob.bytes, 777), { digest: blob.descriptor.digest });
      expect(await r.headBlob(name, blob.descriptor.digest)).toEqual({
        digest: blob.descriptor.digest,
        size: 100_000,
      });
    });

    test(
      'an 8 MiB streamed blob',
      [],
      async () => {
        const r = registry();
        const name = repo();
        const blob = randomBlob(8 * 1024 * 1024);
        await r.putBlob(name, chunked(blob.bytes, 64 * 1024), {
          digest: blob.descriptor.digest,
          size: blob.bytes.byteLength,
        });
        const got = await collect((await r.getBlob(name, blob.descriptor.digest)).stream);
        expect(digestOf(got)).toBe(blob.descriptor.digest);
      },
      60_000,
    );

    test('sha512 blobs', ['sha512'], async () => {
      const r = registry();
      const name = repo();
      const bytes = cryptoRandomBytes(1000);
      const digest = digestOf(bytes, 'sha512');
      await r.putBlob(name, bytes, { digest, size: 1000 });
      expect(await r.headBlob(name, digest)).toEqual({ digest, size: 1000 });
      expect(Buffer.from(await collect((await r.getBlob(name, digest)).stream)).equals(bytes)).toBe(true);
    });

    test('a wrong digest is refused and nothing is stored', [], async () => {
      const r = registry();
      const name = repo();
      const blob = randomBlob(512);
      const claimed = digestOf('something else');
      expect(await codeOf(r.putBlob(name, blob.bytes, { digest: claimed }))).toBe('DIGEST_INVALID');
      expect(await r.headBlob(name, claimed)).toBeUndefined();
      expect(await r.headBlob(name, blob.descriptor.digest)).toBeUndefined();
    });

    test('a wrong size is refused and nothing is stored', [], async () => {
      const r = registry();
      const name = repo();
      const blob = randomBlob(512);
      const code = await codeOf(r.putBlob(name, blob.bytes, { digest: blob.descriptor.digest, size: 511 }));
      expect(['SIZE_INVALID', 'DIGEST_INVALID']).toContain(code);
      expect(await r.headBlob(name, blob.descriptor.digest)).toBeUndefined();
      const short = await codeOf(r.putBlob(name, blob.bytes, { digest: blob.descriptor.digest, size: 513 }));
      expect(['SIZE_INVALID', 'DIGEST_INVALID']).toContain(short);
      expect(await r.headBlob(name, blob.descriptor.digest)).toBeUndefined();
    });

    test('invalid digests are refused', [], async () => {
      const r = registry();
      const name = repo();
      for (const bad of ['sha256:abc', `md5:${'a'.repeat(32)}`, 'nonsense', `sha256:${'A'.repeat(64)}`]) {
        expect(await codeOf(r.putBlob(name, enc.encode('x'), { digest: bad as Digest }))).toBe(
          'DIGEST_INVALID',
        );
        expect(await codeOf(r.headBlob(name, bad as Digest))).toBe('DIGEST_INVALID');
      }
    });

    test('an unknown blob', [], async () => {
      const r = registry();
      const name = repo();
      await pushImage(r, name, randomImage(), 'v1');
      const unknown = digestOf(`unknown ${Math.random()}`);
      expect(await r.headBlob(name, unknown)).toBeUndefined();
      expect(await codeOf(r.getBlob(name, unknown))).toBe('BLOB_UNKNOWN');
    });

    test('a blob is linked per repository', [], async () => {
      const r = registry();
      const a = repo('a');
      const b = repo('b');
      const blob = randomBlob(300);
      await r.putBlob(a, blob.bytes, { digest: blob.descriptor.digest });
      await pushImage(r, b, randomImage(), 'v1');
      expect(await r.headBlob(b, blob.descriptor.digest)).toBeUndefined();
    });

    test('ranges: start-end, open end, last byte, clamped end', ['ranges'], async () => {
      const r = registry();
      const name = repo();
      const blob = randomBlob(1000);
      const { digest } = blob.descriptor;
      await r.putBlob(name, blob.bytes, { digest });
      const slice = async (start: number, end?: number) => {
        const content = await r.getBlob(name, digest, {
          range: end === undefined ? { start } : { start, end },
        });
        return { range: content.range, bytes: Buffer.from(await collect(content.stream)) };
      };
      expect(await slice(10, 19)).toEqual({
        range: { start: 10, end: 19 },
        bytes: Buffer.from(blob.bytes.subarray(10, 20)),
      });
      expect(await slice(990)).toEqual({
        range: { start: 990, end: 999 },
        bytes: Buffer.from(blob.bytes.subarray(990)),
      });
      expect(await slice(999, 999)).toEqual({
        range: { start: 999, end: 999 },
        bytes: Buffer.from(blob.bytes.subarray(999)),
      });
      expect(await slice(0, 5000)).toEqual({
        range: { start: 0, end: 999 },
        bytes: Buffer.from(blob.bytes),
      });
    });

    test('a range outside the blob is refused', ['ranges'], async () => {
      const r = registry();
      const name = repo();
      const blob = randomBlob(100);
      await r.putBlob(name, blob.bytes, { digest: blob.descriptor.digest });
      expect(await codeOf(r.getBlob(name, blob.descriptor.digest, { range: { start: 100 } }))).toBe(
        'RANGE_INVALID',
      );
      expect(await codeOf(r.getBlob(name, blob.descriptor.digest, { range: { start: 50, end: 10 } }))).toBe(
        'RANGE_INVALID',
      );
    });

    test('mount from another repository', ['mount'], async () => {
      const r = registry();
      const from = repo('from');
      const to = repo('to');
      const blob = randomBlob(2048);
      await r.putBlob(from, blob.bytes, { digest: blob.descriptor.digest });
      expect(await r.mountBlob(to, blob.descriptor.digest, { from })).toEqual({
        digest: blob.descriptor.digest,
        size: 2048,
      });
      expect(await r.headBlob(to, blob.descriptor.digest)).toEqual({
        digest: blob.descriptor.digest,
        size: 2048,
      });
    });

    test('mounting a blob the source does not have answers undefined', [], async () => {
      const r = registry();
      const from = repo('from');
      const to = repo('to');
      await pushImage(r, from, randomImage(), 'v1');
      const missing = digestOf(`missing ${Math.random()}`);
      expect(await r.mountBlob(to, missing, { from })).toBeUndefined();
      expect(await r.headBlob(to, missing)).toBeUndefined();
    });

    test('anonymous mount finds the blob in any repository', ['anonymousMount'], async () => {
      const r = registry();
      const blob = randomBlob(128);
      await r.putBlob(repo('somewhere'), blob.bytes, { digest: blob.descriptor.digest });
      const to = repo('to');
      expect(await r.mountBlob(to, blob.descriptor.digest)).toEqual({
        digest: blob.descriptor.digest,
        size: 128,
      });
    });

    test('delete a blob', ['deleteBlob'], async () => {
      const r = registry();
      const name = repo();
      const blob = randomBlob(64);
      await r.putBlob(name, blob.bytes, { digest: blob.descriptor.digest });
      await r.deleteBlob(name, blob.descriptor.digest);
      expect(await r.headBlob(name, blob.descriptor.digest)).toBeUndefined();
      expect(await codeOf(r.deleteBlob(name, blob.descriptor.digest))).toBe('BLOB_UNKNOWN');
    });

    test('an aborted signal stops a push and commits nothing', [], async () => {
      const r = registry();
      const name = repo();
      const blob = randomBlob(256);
      const controller = new AbortController();
      controller.abort(new Error('stop'));
      await expect(
        r.putBlob(name, blob.bytes, { digest: blob.descriptor.digest, signal: controller.signal }),
      ).rejects.toThrow();
      const midway = new AbortController();
      const body = (async function* () {
        yield blob.bytes.subarray(0, 100);
        midway.abort(new Error('stop midway'));
        yield blob.bytes.subarray(100);
      })();
      await expect(
        r.putBlob(name, body, { digest: blob.descriptor.digest, signal: midway.signal }),
      ).rejects.toThrow();
      expect(await r.headBlob(name, blob.descriptor.digest)).toBeUndefined();
    });
    test('the empty config blob used by artifacts round-trips', [], async () => {
      const r = registry();
      const name = repo();
      await r.putBlob(name, emptyConfig.bytes, { digest: emptyConfig.descriptor.digest, size: 2 });
      expect(
        Buffer.from(await collect((await r.getBlob(name, emptyConfig.descriptor.digest)).stream)).toString(),
      ).toBe('{}');
    });

    test('a store without sha512 refuses sha512 blobs and stores nothing', ['!sha512'], async () => {
      const r = registry();
      const name = repo();
      const bytes = cryptoRandomBytes(100);
      const digest = digestOf(bytes, 'sha512');
      expect(['DIGEST_INVALID', 'UNSUPPORTED']).toContain(await codeOf(r.putBlob(name, bytes, { digest })));
      expect(await r.headBlob(name, digest).catch(() => undefined)).toBeUndefined();
    });

    test(
      'a store without mount answers undefined to a mount with from and links nothing',
      ['!mount'],
      async () => {
        const r = registry();
        const from = repo('from');
        const to = repo('to');
        const blob = randomBlob(256);
        await r.putBlob(from, blob.bytes, { digest: blob.descriptor.digest });
        expect(await r.mountBlob(to, blob.descriptor.digest, { from })).toBeUndefined();
        expect(await r.headBlob(to, blob.descriptor.digest)).toBeUndefined();
      },
    );

    test(
      'a store without anonymous mount answers undefined to a mount without from',
      ['!anonymousMount'],
      async () => {
        const r = registry();
        const blob = randomBlob(128);
        await r.putBlob(repo('somewhere'), blob.bytes, { digest: blob.descriptor.digest });
        const to = repo('to');
        expect(await r.mountBlob(to, blob.descriptor.digest)).toBeUndefined();
        expect(await r.headBlob(to, blob.descriptor.digest)).toBeUndefined();
      },
    );

    test(
      'a store without blob deletes refuses them with UNSUPPORTED and keeps the blob',
      ['!deleteBlob'],
      async () => {
        const r = registry();
        const name = repo();
        const blob = randomBlob(64);
        await r.putBlob(name, blob.bytes, { digest: blob.descriptor.digest });
        expect(await codeOf(r.deleteBlob(name, blob.descriptor.digest))).toBe('UNSUPPORTED');
        expect(await r.headBlob(name, blob.descriptor.digest)).toEqual({
          digest: blob.descriptor.digest,
          size: 64,
        });
      },
    );
  });
}
