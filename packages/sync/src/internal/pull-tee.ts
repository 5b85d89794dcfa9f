/**
 * One upstream blob, stored locally and streamed to a client at once. The
 * store pulls the bytes (its pace); each chunk goes to the client one chunk
 * late, so the last one is released only after the store has verified and
 * committed the blob. A mismatch destroys the client's stream with the
 * store's error (the HTTP response is aborted, never ended cleanly); a client
 * that goes away stops receiving and the store carries on.
 */
import { Readable } from 'node:stream';
import type { BlobInfo } from '@stowage/oci';

/** A readable fed by `send`, which waits while the reader is not reading (unless it is gone). */
export class HeldBackStream extends Readable {
  #wake: (() => void) | undefined;

  override _read(): void {
    this.#release();
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    this.#release();
    callback(error);
  }

  #release(): void {
    const wake = this.#wake;
    this.#wake = undefined;
    wake?.();
  }

  /** Queues a chunk; resolves when the reader wants more, or at once when the reader is gone. */
  async send(chunk: Uint8Array): Promise<void> {
    if (this.destroyed) return;
    if (this.push(chunk)) return;
    await new Promise<void>((resolve) => {
      this.#wake = resolve;
    });
  }

  /** Ends the stream cleanly (when the reader is still there). */
  finish(): void {
    if (!this.destroyed) this.push(null);
  }
}

export interface TeeOptions {
  /** The upstream bytes. */
  readonly source: AsyncIterable<Uint8Array>;
  /** Stores a body (the local `putBlob`): resolves once verified and committed, rejects on a mismatch. */
  readonly store: (body: AsyncIterable<Uint8Array>) => Promise<BlobInfo>;
  /** Aborts the transfer: the client's stream is destroyed so nothing waits for a reader any more. */
  readonly signal?: AbortSignal;
  /** The client went away (its request aborted): it stops receiving, the store carries on. */
  readonly clientSignal?: AbortSignal;
}

export interface Tee {
  /** What the client reads. */
  readonly client: HeldBackStream;
  /** Settles when the store has finished (committed or failed), whatever the client did. */
  readonly stored: Promise<BlobInfo>;
}

/** Starts storing `source` and returns the client's side of it. */
export function teeToClient(options: TeeOptions): Tee {
  const client = new HeldBackStream();
  // Destroyed without an error (a reader sees a premature close): nobody may be listening any more.
  const stop = (signal: AbortSignal | undefined) => {
    if (!signal) return;
    const onAbort = () => client.destroy();
    if (signal.aborted) onAbort();
    else {
      signal.addEventListener('abort', onAbort, { once: true });
      client.once('close', () => signal.removeEventListener('abort', onAbort));
    }
  };
  stop(options.signal);
  stop(options.clientSignal);
  let held: Uint8Array | undefined;
  async function* feed(): AsyncGenerator<Uint8Array> {
    for await (const chunk of options.source) {
      if (held) await client.send(held);
      held = chunk;
      yield chunk;
    }
  }
  const stored = options.store(feed()).then(
    (info) => {
      // Committed: the last chunk is released without waiting for the reader, so a slow
      // client never holds up those waiting for the blob.
      if (held && !client.destroyed) client.push(held);
      client.finish();
      return info;
    },
    (error: unknown) => {
      // A store that refused before reading to the end leaves the upstream response open: free it.
      (options.source as Partial<Readable>).destroy?.();
      client.destroy(error instanceof Error ? error : new Error(String(error)));
      throw error;
    },
  );
  // The caller awaits `stored` where it cares; an unobserved failure is not an unhandled rejection.
  stored.catch(() => {});
  return { client, stored };
}
