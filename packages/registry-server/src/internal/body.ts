// Reading a request body: counted, limited, and given up on when it goes idle.
import { HttpError } from '../errors.js';
import type { Exchange } from './exchange.js';
import { contentLength } from './params.js';

export interface BodyReader {
  /**
   * The request body as chunks. A stall surfaces as a 408 `HttpError` thrown to
   * whoever reads the body; the socket is left alone so the answer can still
   * be sent (then it is closed). Beyond `limit` bytes, a 413.
   */
  chunks(exchange: Exchange, limit: number | undefined): AsyncGenerator<Uint8Array>;
  /** The whole body, refused with a 413 beyond `limit` bytes (by its `Content-Length` when it says so). */
  readAll(exchange: Exchange, limit: number): Promise<Uint8Array>;
}

export function createBodyReader(idleMs: number): BodyReader {
  /** The next chunk of a body, or a 408 when none comes within the idle timeout. */
  function nextChunk<T>(exchange: Exchange, step: Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        const error = new HttpError('BLOB_UPLOAD_INVALID', 'the request body stalled and was abandoned', {
          status: 408,
        });
        exchange.bodyTimeout = error;
        reject(error);
      }, idleMs);
      timer.unref();
      step.then(
        (value) => {
          clearTimeout(timer);
          resolve(value);
        },
        (error: unknown) => {
          clearTimeout(timer);
          reject(error);
        },
      );
    });
  }

  async function* chunks(exchange: Exchange, limit: number | undefined): AsyncGenerator<Uint8Array> {
    // Not destroyed on an early stop: a refusal must still be able to answer on this socket.
    const iterator = exchange.request.iterator({ destroyOnReturn: false });
    let received = 0;
    try {
      for (;;) {
        const step = await nextChunk(exchange, iterator.next());
        if (step.done) return;
        const chunk = step.value as Uint8Array;
        received += chunk.byteLength;
        exchange.bytesIn += chunk.byteLength;
        if (limit !== undefined && received > limit) {
          throw new HttpError('SIZE_INVALID', `request body exceeds ${limit} bytes`, {
            status: 413,
            detail: { limit },
          });
        }
        yield chunk;
      }
    } finally {
      // After a stall a read is still pending, and `return` would wait for it: the
      // socket is destroyed once the 408 is sent, which ends that read.
      if (!exchange.bodyTimeout) await iterator.return?.();
    }
  }

  async function readAll(exchange: Exchange, limit: number): Promise<Uint8Array> {
    const length = contentLength(exchange.request);
    if (length !== undefined && length > limit) {
      throw new HttpError('SIZE_INVALID', `body of ${length} bytes exceeds the ${limit}-byte limit`, {
        status: 413,
        detail: { size: length, limit },
      });
    }
    const parts: Uint8Array[] = [];
    for await (const chunk of chunks(exchange, limit)) parts.push(chunk);
    return Buffer.concat(parts);
  }

  return { chunks, readAll };
}
