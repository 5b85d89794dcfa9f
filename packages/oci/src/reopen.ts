/**
 * A blob body that can be read again from its start: a stream of a blob that
 * its producer can fetch anew (the copy engine's GET from the source). A
 * consumer that may have to restart (a registry client whose one-request upload
 * broke) calls the reopener instead of sending the blob in buffered chunks to
 * survive a failure. Like `markVerified`, a side channel: the body is an
 * ordinary async iterable to everyone else.
 */
export type Reopener = () => AsyncIterable<Uint8Array> | Promise<AsyncIterable<Uint8Array>>;

const reopeners = new WeakMap<object, Reopener>();

/** Declares that `reopen()` gives the same bytes as `body`, from the start. Returns `body`. */
export function markReopenable<T extends object>(body: T, reopen: Reopener): T {
  reopeners.set(body, reopen);
  return body;
}

/** How to read `body` again from its start (`markReopenable`), or undefined. */
export function reopenerOf(body: unknown): Reopener | undefined {
  return typeof body === 'object' && body !== null ? reopeners.get(body) : undefined;
}
