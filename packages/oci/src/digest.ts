import { createHash, type Hash } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';
import { DigestMismatchError, DigestParseError, SizeMismatchError } from './errors.js';

/** The digest algorithms Stowage accepts. */
export type DigestAlgorithm = 'sha256' | 'sha512';

/** `<algorithm>:<lowercase hex>`; obtain one from `parseDigest`, `digestOf` or a `Digester`. */
export type Digest = `sha256:${string}` | `sha512:${string}`;

const hexLength: Readonly<Record<DigestAlgorithm, number>> = { sha256: 64, sha512: 128 };
const lowerHex = /^[0-9a-f]+$/;

/** The digest algorithms this package supports, in order of preference. */
export const digestAlgorithms: readonly DigestAlgorithm[] = ['sha256', 'sha512'];

/** Parses `sha256:<64 hex>` or `sha512:<128 hex>`; anything else raises `DigestParseError`. */
export function parseDigest(input: string): Digest {
  if (typeof input !== 'string') throw new DigestParseError(String(input), 'not a string');
  const colon = input.indexOf(':');
  if (colon < 0) throw new DigestParseError(input, 'missing "<algorithm>:" prefix');
  const algorithm = input.slice(0, colon);
  const hex = input.slice(colon + 1);
  if (!isDigestAlgorithm(algorithm)) {
    throw new DigestParseError(input, `unsupported algorithm ${JSON.stringify(algorithm.slice(0, 32))}`);
  }
  if (hex.length !== hexLength[algorithm]) {
    throw new DigestParseError(
      input,
      `${algorithm} needs ${hexLength[algorithm]} hex characters, got ${hex.length}`,
    );
  }
  if (!lowerHex.test(hex)) throw new DigestParseError(input, 'encoded part is not lowercase hex');
  return input as Digest;
}

/** True when `input` is a digest `parseDigest` accepts. */
export function isDigest(input: unknown): input is Digest {
  if (typeof input !== 'string') return false;
  const colon = input.indexOf(':');
  const algorithm = input.slice(0, colon);
  if (!isDigestAlgorithm(algorithm)) return false;
  const hex = input.slice(colon + 1);
  return hex.length === hexLength[algorithm] && lowerHex.test(hex);
}

export function isDigestAlgorithm(value: string): value is DigestAlgorithm {
  return value === 'sha256' || value === 'sha512';
}

/** The algorithm part of a digest. */
export function digestAlgorithm(digest: Digest): DigestAlgorithm {
  return digest.slice(0, digest.indexOf(':')) as DigestAlgorithm;
}

/** The hex part of a digest. */
export function digestHex(digest: Digest): string {
  return digest.slice(digest.indexOf(':') + 1);
}

/** Digest of bytes or a UTF-8 string. */
export function digestOf(content: Uint8Array | string, algorithm: DigestAlgorithm = 'sha256'): Digest {
  return `${algorithm}:${createHash(algorithm).update(content).digest('hex')}` as Digest;
}

/** An incremental hasher that also counts bytes. */
export class Digester {
  readonly algorithm: DigestAlgorithm;
  #hash: Hash;
  #size = 0;
  #result: Digest | undefined;

  constructor(algorithm: DigestAlgorithm = 'sha256') {
    this.algorithm = algorithm;
    this.#hash = createHash(algorithm);
  }

  /** Bytes hashed so far. */
  get size(): number {
    return this.#size;
  }

  update(chunk: Uint8Array): this {
    if (this.#result !== undefined) throw new Error('Digester.update after digest()');
    this.#hash.update(chunk);
    this.#size += chunk.byteLength;
    return this;
  }

  /** The digest of everything hashed; later calls return the same value. */
  digest(): Digest {
    this.#result ??= `${this.algorithm}:${this.#hash.digest('hex')}` as Digest;
    return this.#result;
  }
}

/** Hashes an async iterable (a Node or web stream) to the end, with constant memory. */
export async function digestStream(
  source: AsyncIterable<Uint8Array>,
  algorithm: DigestAlgorithm = 'sha256',
): Promise<{ digest: Digest; size: number }> {
  const digester = new Digester(algorithm);
  for await (const chunk of source) digester.update(chunk);
  return { digest: digester.digest(), size: digester.size };
}

export interface VerifyOptions {
  /** The digest the content must have; its algorithm is the one used. */
  readonly digest: Digest;
  /** The exact length, when known. Going over it fails at once; falling short fails at the end. */
  readonly size?: number;
}

/**
 * A pass-through stream that hashes what flows through it and fails at
 * end-of-stream (before emitting `end`) with `DigestMismatchError` or
 * `SizeMismatchError` when the content is not what was expected. A consumer
 * that commits only after `end` (or after `pipeline` resolves) never commits
 * bad content.
 */
export class VerifyingStream extends Transform {
  readonly expected: VerifyOptions;
  readonly #digester: Digester;

  constructor(options: VerifyOptions) {
    super();
    const digest = parseDigest(options.digest);
    this.expected = options;
    this.#digester = new Digester(digestAlgorithm(digest));
    markVerified(this, digest);
  }

  /** Bytes seen so far. */
  get bytes(): number {
    return this.#digester.size;
  }

  override _transform(chunk: Uint8Array, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.#digester.update(chunk);
    const { size } = this.expected;
    if (size !== undefined && this.#digester.size > size) {
      callback(new SizeMismatchError(size, this.#digester.size));
      return;
    }
    callback(null, chunk);
  }

  override _flush(callback: TransformCallback): void {
    const { size, digest } = this.expected;
    if (size !== undefined && this.#digester.size !== size) {
      callback(new SizeMismatchError(size, this.#digester.size));
      return;
    }
    const actual = this.#digester.digest();
    callback(actual === digest ? null : new DigestMismatchError(digest, actual));
  }
}

const verifiedBodies = new WeakMap<object, Digest>();

/**
 * Declares that `body` (a stream or an async iterable) fails before its end,
 * with an error, unless every byte it yields hashes to `digest`: a
 * `VerifyingStream`, or a generator that checks its own digester after its
 * last chunk. A consumer that sees such a body end normally has bytes with
 * that digest, so a store handed one by code in the same process need not
 * hash them again (`verifiedDigestOf`). Over the wire nothing is marked: a
 * server always hashes what it receives. Returns `body`.
 */
export function markVerified<T extends object>(body: T, digest: Digest): T {
  verifiedBodies.set(body, digest);
  return body;
}

/**
 * The digest a body is known to be checked against (`markVerified`), read
 * before its first chunk is taken, or undefined: then the consumer hashes.
 */
export function verifiedDigestOf(body: unknown): Digest | undefined {
  return typeof body === 'object' && body !== null ? verifiedBodies.get(body) : undefined;
}

/**
 * The chunks of `source`, hashed as they pass: going over `size` fails at
 * once, and the last chunk is followed by a `SizeMismatchError` or
 * `DigestMismatchError` instead of the end when the content is not what was
 * expected. `VerifyingStream`'s check without a stream around it, for a
 * consumer that iterates (one layer per chunk instead of a Transform's
 * several). The generator is marked verified (`markVerified`).
 */
export function verifiedChunks(
  source: AsyncIterable<Uint8Array>,
  options: VerifyOptions,
): AsyncGenerator<Uint8Array> {
  const digest = parseDigest(options.digest);
  const { size } = options;
  async function* check(): AsyncGenerator<Uint8Array> {
    const digester = new Digester(digestAlgorithm(digest));
    for await (const chunk of source) {
      digester.update(chunk);
      if (size !== undefined && digester.size > size) throw new SizeMismatchError(size, digester.size);
      yield chunk;
    }
    if (size !== undefined && digester.size !== size) throw new SizeMismatchError(size, digester.size);
    const actual = digester.digest();
    if (actual !== digest) throw new DigestMismatchError(digest, actual);
  }
  return markVerified(check(), digest);
}

/** Shorthand for `new VerifyingStream(options)`. */
export function createVerifyingStream(options: VerifyOptions): VerifyingStream {
  return new VerifyingStream(options);
}

/**
 * Checks content already hashed elsewhere against expectations; raises the
 * same errors a `VerifyingStream` would.
 */
export function assertContent(actual: { digest: Digest; size: number }, expected: VerifyOptions): void {
  if (expected.size !== undefined && actual.size !== expected.size) {
    throw new SizeMismatchError(expected.size, actual.size);
  }
  if (actual.digest !== expected.digest) throw new DigestMismatchError(expected.digest, actual.digest);
}
