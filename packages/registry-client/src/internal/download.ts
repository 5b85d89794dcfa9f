import { Transform, type TransformCallback } from 'node:stream';
import { isStowageError, retryDelay, SizeMismatchError } from '@stowage/oci';
import { RegistryNetworkError } from '../errors.js';
import { isRetryable, type RetryPolicy } from './retry.js';

/** An open response body and how to let go of it. */
export interface OpenBody {
  readonly body: AsyncIterable<Uint8Array>;
  destroy(): void;
}

export interface ResumeOptions {
  /** Bytes the first body should deliver, when known: ending short of it counts as a break. */
  readonly expected?: number;
  /** Re-requests the content from `received` bytes past the first byte of the first body. */
  readonly reopen: (received: number) => Promise<OpenBody>;
  readonly policy: RetryPolicy;
  readonly signal?: AbortSignal;
  readonly describe: { readonly method: string; readonly url: string };
  readonly onResume?: (received: number, error: unknown) => void;
}

/**
 * Yields a response body and, when the connection breaks mid-way (reset,
 * idle timeout, premature end), asks for the rest with a `Range` request and
 * carries on from the byte reached, up to `policy.retries` times. The
 * consumer sees one uninterrupted stream, so a hash over it stays valid.
 */
export async function* resumableBody(first: OpenBody, options: ResumeOptions): AsyncGenerator<Uint8Array> {
  let current = first;
  let received = 0;
  let resumes = 0;
  try {
    for (;;) {
      try {
        for await (const chunk of current.body) {
          received += chunk.byteLength;
          yield chunk;
        }
        if (options.expected === undefined || received >= options.expected) return;
        throw new RegistryNetworkError({
          ...options.describe,
          cause: new Error(`body ended after ${received} of ${options.expected} bytes`),
        });
      } catch (error) {
        if (options.signal?.aborted) throw options.signal.reason;
        const wrapped = isStowageError(error)
          ? error
          : new RegistryNetworkError({ ...options.describe, cause: error });
        if (!isRetryable(wrapped) || resumes >= options.policy.retries) throw wrapped;
        current.destroy();
        options.onResume?.(received, error);
        resumes++;
        const { minDelayMs: baseDelayMs, maxDelayMs } = options.policy;
        await options.policy.clock.sleep(
          retryDelay(wrapped, resumes, { baseDelayMs, maxDelayMs }),
          options.signal,
        );
        current = await options.reopen(received);
      }
    }
  } finally {
    current.destroy();
  }
}

/** Drops the first `count` bytes of a body (a server that ignored a `Range` header). */
export async function* skipBytes(
  source: AsyncIterable<Uint8Array>,
  count: number,
): AsyncGenerator<Uint8Array> {
  let left = count;
  for await (const chunk of source) {
    if (left >= chunk.byteLength) {
      left -= chunk.byteLength;
      continue;
    }
    yield left > 0 ? chunk.subarray(left) : chunk;
    left = 0;
  }
}

/** Passes bytes `[start, end]` (inclusive) of what flows through, drops the rest but keeps reading. */
export class SliceStream extends Transform {
  readonly #start: number;
  readonly #end: number;
  #position = 0;

  constructor(start: number, end: number) {
    super();
    this.#start = start;
    this.#end = end;
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    const from = this.#position;
    const to = from + chunk.byteLength;
    this.#position = to;
    const lo = Math.max(from, this.#start);
    const hi = Math.min(to, this.#end + 1);
    callback(null, hi > lo ? chunk.subarray(lo - from, hi - from) : undefined);
  }
}

/** Fails with `SizeMismatchError` when what flows through is not exactly `size` bytes. */
export class LengthStream extends Transform {
  readonly #size: number;
  #seen = 0;

  constructor(size: number) {
    super();
    this.#size = size;
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.#seen += chunk.byteLength;
    if (this.#seen > this.#size) callback(new SizeMismatchError(this.#size, this.#seen));
    else callback(null, chunk);
  }

  override _flush(callback: TransformCallback): void {
    callback(this.#seen === this.#size ? null : new SizeMismatchError(this.#size, this.#seen));
  }
}

/** `Content-Range: bytes <start>-<end>/<total|*>` */
export function parseContentRange(
  header: string | undefined,
): { start: number; end: number; total: number | undefined } | undefined {
  const match = header === undefined ? null : /^bytes\s+(\d+)-(\d+)\/(\d+|\*)$/i.exec(header.trim());
  if (!match) return undefined;
  const start = Number(match[1]);
  const end = Number(match[2]);
  if (end < start) return undefined;
  return { start, end, total: match[3] === '*' ? undefined : Number(match[3]) };
}
