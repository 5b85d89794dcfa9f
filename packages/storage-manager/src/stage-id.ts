import { type OperationOptions, StowageError } from '@stowage/oci';
import type { StageID, StagesStorage } from '@stowage/stages-storage';
import type { LockManager } from './locks/types.js';

/** werf's creationTs is Unix ms with 13 digits: 2001-09-09 … 2286-11-20 (UTC). */
export const MIN_CREATION_TS = 1_000_000_000_000;
export const MAX_CREATION_TS = 9_999_999_999_999;

export class StageIdError extends StowageError<'OPTIONS_INVALID'> {}

export interface NewStageIDOptions extends OperationOptions {
  /** Where the stage goes: its address names the lock, its listing gives the stages that exist. */
  readonly storage: Pick<StagesStorage, 'address' | 'listStageIDs'>;
  /** The stage digest (56 lowercase hex, spec A.3). */
  readonly digest: string;
  /**
   * Serializes the making of stage IDs of one digest across processes (host
   * locks on one host, PostgreSQL locks across hosts). Without it IDs are
   * unique within this process only: two processes pushing one digest in the
   * same millisecond may collide.
   */
  readonly locks?: LockManager;
  /** UTC wall time in ms; default `Date.now`. */
  readonly clock?: { now(): number };
  /** Give up waiting for the lock after this long (`LOCK_TIMEOUT`). Default: wait. */
  readonly lockTimeoutMs?: number;
}

const DIGEST = /^[0-9a-f]{56}$/;
const ISSUED_KEY = Symbol.for('@stowage/storage-manager:issued-stage-ids');
const PRUNE_AT = 4096;

/** `<address>\0<digest>` → the last creationTs issued by this process (shared by every copy of this package). */
function issued(): Map<string, number> {
  const holder = globalThis as { [ISSUED_KEY]?: Map<string, number> };
  holder[ISSUED_KEY] ??= new Map();
  return holder[ISSUED_KEY];
}

/** The lock `withNewStageID` takes: `stage-id.<address>.<digest>`. */
export function stageIdLockName(address: string, digest: string): string {
  return `stage-id.${address}.${digest}`;
}

/**
 * Makes a new stage ID for `digest` and runs `fn` (the push) with it.
 *
 * creationTs is the largest of: now in UTC ms, the newest stage of the digest
 * in the storage + 1 (listed fresh, never from a cache), and the last one
 * this process issued for the digest + 1. So it never repeats one that
 * exists, even when several stages are made in one millisecond, which werf's
 * `GenerateStageUniqueID` meant to ensure and did not.
 *
 * With `locks`, the exclusive lock `stage-id.<address>.<digest>` is held from
 * the listing until `fn` settles, so processes sharing the lock manager (one
 * host with host locks, any host with PostgreSQL locks) see each other's
 * pushes. Without it, uniqueness holds within this process only.
 */
export async function withNewStageID<T>(
  options: NewStageIDOptions,
  fn: (stage: StageID) => Promise<T>,
): Promise<T> {
  const { storage, digest, locks, signal } = options;
  if (typeof digest !== 'string' || !DIGEST.test(digest)) {
    throw new StageIdError(
      'OPTIONS_INVALID',
      `a stage digest is 56 lowercase hex characters, not ${JSON.stringify(digest)}`,
    );
  }
  const clock = options.clock ?? { now: () => Date.now() };
  signal?.throwIfAborted();
  const lock = locks
    ? await locks.acquire(stageIdLockName(storage.address, digest), {
        ...(signal ? { signal } : {}),
        ...(options.lockTimeoutMs === undefined ? {} : { timeoutMs: options.lockTimeoutMs }),
      })
    : undefined;
  try {
    // Every stage of the digest, rejected ones included (`listStageIDsByDigest` leaves those
    // out): a new stage must not take a rejected one's timestamp and inherit its record.
    const existing = (await storage.listStageIDs(signal ? { signal } : {})).filter(
      (s) => s.digest === digest,
    );
    const creationTs = nextCreationTs({ address: storage.address, digest, existing, now: clock.now() });
    return await fn({ digest, creationTs, isMultiplatform: false });
  } finally {
    await lock?.release();
  }
}

/** Picks and records the next creationTs (synchronously, so concurrent callers in one process never share one). */
function nextCreationTs(input: {
  address: string;
  digest: string;
  existing: readonly Pick<StageID, 'creationTs'>[];
  now: number;
}): number {
  const now = Math.floor(input.now);
  if (!Number.isFinite(now) || now < MIN_CREATION_TS || now > MAX_CREATION_TS) {
    throw new StageIdError(
      'OPTIONS_INVALID',
      `the clock says ${input.now}: a 13-digit creationTs needs a time between 2001-09-09 and 2286-11-20 UTC`,
      { details: { now: input.now } },
    );
  }
  const map = issued();
  const key = `${input.address}\0${input.digest}`;
  let next = now;
  for (const { creationTs } of input.existing) {
    // a tag with more digits cannot equal a 13-digit one: it does not push us past the range
    if (creationTs <= MAX_CREATION_TS) next = Math.max(next, creationTs + 1);
  }
  const last = map.get(key);
  if (last !== undefined) next = Math.max(next, last + 1);
  if (next > MAX_CREATION_TS) {
    throw new StageIdError(
      'OPTIONS_INVALID',
      `no 13-digit creationTs is left after ${next - 1} for ${input.digest}`,
    );
  }
  if (map.size >= PRUNE_AT) {
    // entries at or before now no longer raise anything
    for (const [k, ts] of map) if (ts < now) map.delete(k);
  }
  map.set(key, next);
  return next;
}
