import { createRequire } from 'node:module';
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { StowageError } from '@stowage/oci';

/** A verification worker that died or could not start; the request it served fails (a 500), the next one starts a new worker. */
export class BcryptWorkerError extends StowageError<'AUTH_WORKER_FAILED'> {
  constructor(message: string, cause?: unknown) {
    super('AUTH_WORKER_FAILED', message, cause === undefined ? {} : { cause });
  }
}

export interface BcryptPoolOptions {
  /** Worker threads at most; started when first needed. Default `max(1, availableParallelism() - 1)`. */
  readonly workers?: number;
  /**
   * Verifications that may wait for a free worker; beyond them `tryCompare`
   * refuses at once. Default `4 × workers`.
   */
  readonly maxQueued?: number;
}

export interface BcryptPool {
  /**
   * Compares a password with a bcrypt hash in a worker thread. Resolves false
   * for a wrong password or an unusable hash; returns `undefined`, at once and
   * without queueing, when `workers + maxQueued` verifications are already in flight.
   */
  tryCompare(password: string, hash: string): Promise<boolean> | undefined;
  /** Verifications running or waiting now. */
  readonly inFlight: number;
  /** `workers + maxQueued`: the most `inFlight` can be. */
  readonly capacity: number;
  /** Terminates the workers; what is in flight fails. A later `tryCompare` starts new ones. */
  close(): Promise<void>;
}

interface Job {
  readonly password: string;
  readonly hash: string;
  resolve(ok: boolean): void;
  reject(error: unknown): void;
}

interface Slot {
  readonly worker: Worker;
  job: Job | undefined;
}

// Inline worker code (CommonJS, as `eval` workers are): nothing to build or locate
// besides bcryptjs itself, so the pool runs the same from src (tsx, vitest) and dist.
const WORKER_CODE = `
const { parentPort, workerData } = require('node:worker_threads');
const bcrypt = require(workerData.bcryptjs);
parentPort.on('message', (job) => {
  let ok = false;
  try {
    ok = bcrypt.compareSync(job.password, job.hash);
  } catch {
    ok = false;
  }
  parentPort.postMessage(ok);
});
`;

let bcryptjsPath: string | undefined;

function positiveInteger(value: number, name: string, min: number): number {
  if (!Number.isInteger(value) || value < min) {
    throw new RangeError(`${name} must be an integer of at least ${min}, got ${value}`);
  }
  return value;
}

/**
 * A small pool of worker threads running bcryptjs, so password checks never
 * block the event loop. Workers start lazily, one per concurrent verification
 * up to `workers`, and are `unref()`ed while idle: an idle pool never keeps a
 * process alive, and `close()` is only needed to free the threads early.
 */
export function createBcryptPool(options: BcryptPoolOptions = {}): BcryptPool {
  const size = positiveInteger(options.workers ?? Math.max(1, availableParallelism() - 1), 'workers', 1);
  const maxQueued = positiveInteger(options.maxQueued ?? 4 * size, 'maxQueued', 0);
  const slots = new Set<Slot>();
  const queue: Job[] = [];
  let running = 0;

  function retire(slot: Slot, error: unknown): void {
    if (!slots.delete(slot)) return;
    const job = slot.job;
    slot.job = undefined;
    if (job) {
      running--;
      job.reject(
        error instanceof BcryptWorkerError ? error : new BcryptWorkerError('a bcrypt worker failed', error),
      );
    }
    void slot.worker.terminate();
    pump();
  }

  function spawn(): Slot {
    bcryptjsPath ??= createRequire(import.meta.url).resolve('bcryptjs');
    // no execArgv: the parent's loaders (tsx, say) have nothing to do in this worker
    const worker = new Worker(WORKER_CODE, {
      eval: true,
      workerData: { bcryptjs: bcryptjsPath },
      execArgv: [],
    });
    const slot: Slot = { worker, job: undefined };
    worker.on('message', (ok: unknown) => {
      const job = slot.job;
      if (!job) return;
      slot.job = undefined;
      running--;
      worker.unref();
      job.resolve(ok === true);
      pump();
    });
    worker.on('error', (error) => retire(slot, error));
    worker.on('exit', (code) =>
      retire(slot, new BcryptWorkerError(`a bcrypt worker exited with code ${code}`)),
    );
    worker.unref();
    slots.add(slot);
    return slot;
  }

  function pump(): void {
    while (queue.length > 0) {
      let slot: Slot | undefined;
      for (const candidate of slots) {
        if (!candidate.job) {
          slot = candidate;
          break;
        }
      }
      if (!slot) {
        if (slots.size >= size) return;
        try {
          slot = spawn();
        } catch (error) {
          const job = queue.shift() as Job;
          job.reject(new BcryptWorkerError('a bcrypt worker could not start', error));
          continue;
        }
      }
      const job = queue.shift() as Job;
      slot.job = job;
      running++;
      slot.worker.ref(); // a verification in progress keeps the process alive until it answers
      slot.worker.postMessage({ password: job.password, hash: job.hash });
    }
  }

  return {
    tryCompare(password, hash) {
      if (running + queue.length >= size + maxQueued) return undefined;
      return new Promise<boolean>((resolve, reject) => {
        queue.push({ password, hash, resolve, reject });
        pump();
      });
    },
    get inFlight() {
      return running + queue.length;
    },
    capacity: size + maxQueued,
    async close() {
      const closing = new BcryptWorkerError('the bcrypt pool was closed');
      for (const job of queue.splice(0)) job.reject(closing);
      const workers = [...slots].map((slot) => slot.worker);
      for (const slot of [...slots]) retire(slot, closing);
      await Promise.all(workers.map((worker) => worker.terminate()));
    },
  };
}
