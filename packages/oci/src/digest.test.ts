import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { describe, expect, it } from 'vitest';
import {
  assertContent,
  Digester,
  digestAlgorithm,
  digestHex,
  digestOf,
  digestStream,
  isDigest,
  parseDigest,
  VerifyingStream,
  verifiedChunks,
  verifiedDigestOf,
} from './digest.js';
import { DigestMismatchError, isStowageError, SizeMismatchError } from './errors.js';

const EMPTY_SHA256 = 'sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';

describe('parseDigest', () => {
  it('accepts sha256 and sha512', () => {
    expect(parseDigest(EMPTY_SHA256)).toBe(EMPTY_SHA256);
    const sha512 = `sha512:${createHash('sha512').update('').digest('hex')}`;
    expect(parseDigest(sha512)).toBe(sha512);
    expect(digestAlgorithm(parseDigest(sha512))).toBe('sha512');
    expect(digestHex(parseDigest(EMPTY_SHA256))).toHaveLength(64);
  });

  it.each([
    ['', 'missing'],
    ['sha256', 'missing'],
    ['sha256:', 'needs 64'],
    [`sha256:${'a'.repeat(63)}`, 'needs 64'],
    [`sha256:${'a'.repeat(65)}`, 'needs 64'],
    [`sha256:${'A'.repeat(64)}`, 'lowercase hex'],
    [`sha256:${'g'.repeat(64)}`, 'lowercase hex'],
    [`sha384:${'a'.repeat(96)}`, 'unsupported algorithm'],
    [`md5:${'a'.repeat(32)}`, 'unsupported algorithm'],
    [`SHA256:${'a'.repeat(64)}`, 'unsupported algorithm'],
    [`sha512:${'a'.repeat(64)}`, 'needs 128'],
    [` sha256:${'a'.repeat(64)}`, 'unsupported algorithm'],
  ])('refuses %j with a typed error', (input, reason) => {
    try {
      parseDigest(input);
      expect.unreachable();
    } catch (error) {
      expect(isStowageError(error, 'DIGEST_INVALID')).toBe(true);
      expect((error as Error).message).toContain(reason);
    }
    expect(isDigest(input)).toBe(false);
  });

  it('refuses non-strings without crashing', () => {
    expect(() => parseDigest(42 as unknown as string)).toThrowError(/not a string/);
    expect(isDigest(undefined)).toBe(false);
  });
});

describe('computing digests', () => {
  it('digests bytes and strings alike', () => {
    expect(digestOf(new Uint8Array())).toBe(EMPTY_SHA256);
    expect(digestOf('')).toBe(EMPTY_SHA256);
    expect(digestOf('abc', 'sha512')).toMatch(/^sha512:ddaf35a1/);
  });

  it('a Digester counts bytes and agrees with digestOf', () => {
    const d = new Digester();
    d.update(Buffer.from('hello ')).update(Buffer.from('world'));
    expect(d.size).toBe(11);
    expect(d.digest()).toBe(digestOf('hello world'));
    expect(d.digest()).toBe(digestOf('hello world'));
    expect(() => d.update(Buffer.from('x'))).toThrow();
  });

  it('digestStream hashes an async iterable', async () => {
    const chunks = Array.from({ length: 100 }, (_, i) => Buffer.alloc(1000, i));
    const result = await digestStream(Readable.from(chunks));
    expect(result).toEqual({ digest: digestOf(Buffer.concat(chunks)), size: 100_000 });
  });
});

describe('VerifyingStream', () => {
  const content = Buffer.from('the quick brown fox');
  const digest = digestOf(content);

  async function run(chunks: Buffer[], options: ConstructorParameters<typeof VerifyingStream>[0]) {
    const out: Buffer[] = [];
    let ended = false;
    const verifier = new VerifyingStream(options);
    verifier.on('end', () => {
      ended = true;
    });
    await pipeline(Readable.from(chunks), verifier, async (source: AsyncIterable<Buffer>) => {
      for await (const chunk of source) out.push(chunk);
    });
    return { out: Buffer.concat(out), ended };
  }

  it('passes matching content through unchanged', async () => {
    const { out, ended } = await run([content.subarray(0, 5), content.subarray(5)], {
      digest,
      size: content.length,
    });
    expect(out.equals(content)).toBe(true);
    expect(ended).toBe(true);
  });

  it('fails at end-of-stream on a digest mismatch, before end is emitted', async () => {
    const wrong = digestOf('other');
    let ended = false;
    const verifier = new VerifyingStream({ digest: wrong });
    verifier.on('end', () => {
      ended = true;
    });
    await expect(
      pipeline(Readable.from([content]), verifier, async (s: AsyncIterable<Buffer>) => {
        for await (const _ of s);
      }),
    ).rejects.toBeInstanceOf(DigestMismatchError);
    expect(ended).toBe(false);
  });

  it('fails when the content is shorter than the expected size', async () => {
    await expect(run([content], { digest, size: content.length + 1 })).rejects.toBeInstanceOf(
      SizeMismatchError,
    );
  });

  it('fails as soon as the content exceeds the expected size', async () => {
    let pulled = 0;
    async function* endless() {
      for (;;) {
        pulled++;
        yield Buffer.alloc(1024);
      }
    }
    await expect(
      pipeline(
        Readable.from(endless()),
        new VerifyingStream({ digest, size: 4096 }),
        async (s: AsyncIterable<Buffer>) => {
          for await (const _ of s);
        },
      ),
    ).rejects.toBeInstanceOf(SizeMismatchError);
    expect(pulled).toBeLessThan(64);
  });

  it('supports sha512 expectations', async () => {
    const { out } = await run([content], { digest: digestOf(content, 'sha512') });
    expect(out.equals(content)).toBe(true);
  });

  it('refuses an invalid expected digest up front', () => {
    expect(() => new VerifyingStream({ digest: 'sha256:nope' as never })).toThrowError(/invalid digest/);
  });
});

describe('verifiedChunks', () => {
  const content = Buffer.from('the quick brown fox');
  const digest = digestOf(content);
  async function* source(...chunks: Buffer[]) {
    yield* chunks;
  }
  /** The chunks seen before the generator ended or failed, and how. */
  async function drain(chunks: AsyncIterable<Uint8Array>) {
    const seen: Uint8Array[] = [];
    try {
      for await (const chunk of chunks) seen.push(chunk);
      return { seen, error: undefined };
    } catch (error) {
      return { seen, error };
    }
  }

  it('passes the same chunks through, and is marked with its digest', async () => {
    const parts = [content.subarray(0, 5), content.subarray(5)];
    const chunks = verifiedChunks(source(...parts), { digest, size: content.length });
    expect(verifiedDigestOf(chunks)).toBe(digest);
    const { seen, error } = await drain(chunks);
    expect(error).toBeUndefined();
    expect(seen).toEqual(parts);
  });

  it('fails after the last chunk instead of ending when the digest differs', async () => {
    const other = digestOf('something else');
    const { seen, error } = await drain(verifiedChunks(source(content), { digest: other }));
    expect(seen).toHaveLength(1);
    expect(error).toBeInstanceOf(DigestMismatchError);
  });

  it('fails at once over the size, and at the end under it', async () => {
    const over = await drain(verifiedChunks(source(content, content), { digest, size: content.length }));
    expect(over.seen).toHaveLength(1);
    expect(over.error).toBeInstanceOf(SizeMismatchError);
    const under = await drain(
      verifiedChunks(source(content.subarray(0, 3)), { digest, size: content.length }),
    );
    expect(under.seen).toHaveLength(1);
    expect(under.error).toBeInstanceOf(SizeMismatchError);
  });

  it('refuses an invalid expected digest up front', () => {
    expect(() => verifiedChunks(source(content), { digest: 'md5:abc' as never })).toThrow();
  });
});

describe('assertContent', () => {
  it('checks size first, then digest', () => {
    const digest = digestOf('x');
    expect(() => assertContent({ digest, size: 1 }, { digest, size: 1 })).not.toThrow();
    expect(() => assertContent({ digest, size: 1 }, { digest, size: 2 })).toThrow(SizeMismatchError);
    expect(() => assertContent({ digest, size: 1 }, { digest: digestOf('y') })).toThrow(DigestMismatchError);
  });
});

describe('markVerified', () => {
  it('marks every VerifyingStream with its digest, and only what is marked', async () => {
    const { markVerified, verifiedDigestOf, VerifyingStream, digestOf } = await import('./digest.js');
    const digest = digestOf('x');
    expect(verifiedDigestOf(new VerifyingStream({ digest }))).toBe(digest);
    const plain = (async function* () {})();
    expect(verifiedDigestOf(plain)).toBeUndefined();
    expect(verifiedDigestOf(markVerified(plain, digest))).toBe(digest);
    expect(verifiedDigestOf(undefined)).toBeUndefined();
    expect(verifiedDigestOf('sha256:x')).toBeUndefined();
  });
});
