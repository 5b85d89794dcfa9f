import { systemClock } from '@stowage/oci';

/**
 * Per-host admission: at most `maxConcurrent` requests in flight (a request
 * holds its slot until its response body is consumed or destroyed) and,
 * optionally, requests started no faster than `requestsPerSecond`.
 */
export class HostLimiter {
  readonly #max: number;
  readonly #interval: number;
  #active = 0;
  #nextStart = 0;
  readonly #waiting: {
    resolve: () => void;
    reject: (e: unknown) => void;
    signal?: AbortSignal;
    onAbort: () => void;
  }[] = [];

  constructor(maxConcurrent: number, requestsPerSecond?: number) {
    this.#max = Math.max(1, maxConcurrent);
    this.#interval = requestsPerSecond && requestsPerSecond > 0 ? 1000 / requestsPerSecond : 0;
  }

  get active(): number {
    return this.#active;
  }

  get queued(): number {
    return this.#waiting.length;
  }

  /** Waits for a slot (and the pacing interval); returns the function that frees it, safe to call twice. */
  async acquire(signal?: AbortSignal): Promise<() => void> {
    signal?.throwIfAborted();
    if (this.#active >= this.#max) {
      await new Promise<void>((resolve, reject) => {
        const entry = {
          resolve,
          reject,
          signal,
          onAbort: () => {
            const at = this.#waiting.indexOf(entry);
            if (at >= 0) this.#waiting.splice(at, 1);
            reject(signal?.reason);
          },
        };
        signal?.addEventListener('abort', entry.onAbort, { once: true });
        this.#waiting.push(entry);
      });
    } else {
      this.#active++;
    }
    let released = false;
    const release = () => {
      if (released) return;
      released = true;
      this.#release();
    };
    if (this.#interval > 0) {
      const now = Date.now();
      const start = Math.max(now, this.#nextStart);
      this.#nextStart = start + this.#interval;
      try {
        if (start > now) await systemClock.sleep(start - now, signal);
      } catch (error) {
        release();
        throw error;
      }
    }
    return release;
  }

  #release(): void {
    const next = this.#waiting.shift();
    if (next) {
      next.signal?.removeEventListener('abort', next.onAbort);
      next.resolve(); // the slot passes to the waiter; #active is unchanged
    } else {
      this.#active--;
    }
  }
}
