import {
  assertContent,
  type BlobInfo,
  type Digest,
  digestAlgorithm,
  digestOf,
  isStowageError,
  type MountBlobOptions,
  type PutBlobOptions,
  SizeMismatchError,
} from '@stowage/oci';
import {
  type BlobSource,
  blobSource,
  type ClientBlobBody,
  heldBackChunks,
  rechunk,
} from '../internal/body.js';
import { checkDigest, checkRepository, signalOf } from '../internal/checks.js';
import type { ClientContext } from '../internal/context.js';
import { isRetryable, retryWith } from '../internal/retry.js';
import { pullScope, pushScope } from '../internal/scope.js';
import { headerValue } from '../internal/transport.js';
import { headBlob } from './blobs.js';
import {
  cancelSession,
  checkEchoedDigest,
  commit,
  newSession,
  openSession,
  patchChunk,
  type Session,
} from './uploads.js';

/** `putBlob` options of the client: the `Registry` ones plus repositories to try a cross-repository mount from. */
export interface ClientPutBlobOptions extends PutBlobOptions {
  /** Repositories that may hold the blob: a mount is tried from each before any byte is sent. */
  readonly mountFrom?: string | readonly string[];
}

/** `POST ?mount=&from=`: the blob linked into `repository` without moving bytes, or `undefined`. */
export async function mountBlob(
  context: ClientContext,
  repository: string,
  digest: Digest,
  options: MountBlobOptions = {},
): Promise<BlobInfo | undefined> {
  const repo = checkRepository(repository);
  const target = checkDigest(digest);
  const from = options.from === undefined ? undefined : checkRepository(options.from);
  if (from === repo) return await headBlob(context, repo, target, options);
  const result = await mount(context, { repo, digest: target, from, signal: options.signal });
  if (result.mounted) return await headBlob(context, repo, target, options);
  // The registry opened an upload session instead of mounting: close it so nothing leaks.
  if (result.session !== undefined)
    await cancelSession(context, result.session, options.signal).catch(() => {});
  return undefined;
}

interface Mount {
  readonly repo: string;
  readonly digest: Digest;
  readonly from: string | undefined;
  readonly signal: AbortSignal | undefined;
}

/** `POST ?mount=`: 201 is a mount, 202 an upload session the registry opened instead. */
async function mount(
  context: ClientContext,
  request: Mount,
): Promise<{ mounted: true } | { mounted: false; session?: Session }> {
  const { repo, digest, from, signal } = request;
  const query = `?mount=${digest}${from !== undefined ? `&from=${encodeURIComponent(from)}` : ''}`;
  let response: Awaited<ReturnType<ClientContext['sendForHeaders']>>;
  try {
    response = await context.sendForHeaders({
      method: 'POST',
      target: `/v2/${repo}/blobs/uploads/${query}`,
      endpoint: 'upload',
      accept: [201, 202],
      idempotent: true,
      scopes: from !== undefined ? [pushScope(repo), pullScope(from)] : [pushScope(repo)],
      ...signalOf({ signal }),
    });
  } catch (error) {
    // No read access to the source, or no such source: not mountable, the caller uploads.
    if (from !== undefined && (isStowageError(error, 'UNAUTHORIZED') || isStowageError(error, 'DENIED'))) {
      return { mounted: false };
    }
    if (isStowageError(error, 'NAME_UNKNOWN') || isStowageError(error, 'BLOB_UNKNOWN'))
      return { mounted: false };
    throw error;
  }
  if (response.status === 201) return { mounted: true };
  const location = headerValue(response.headers, 'location');
  return location === undefined
    ? { mounted: false }
    : { mounted: false, session: newSession(context, repo, response.headers) };
}

/** Uploads a blob: nothing when it is there, a mount when a `mountFrom` holds it, else its bytes. */
export async function putBlob(
  context: ClientContext,
  repository: string,
  body: ClientBlobBody,
  options: ClientPutBlobOptions,
): Promise<BlobInfo> {
  const source = blobSource(body);
  try {
    const repo = checkRepository(repository);
    const digest = checkDigest(options.digest);
    const { size, signal } = options;
    if (size !== undefined && (!Number.isSafeInteger(size) || size < 0)) {
      throw new SizeMismatchError(size, source.bytes?.byteLength ?? -1);
    }
    if (source.bytes !== undefined) {
      assertContent(
        { digest: digestOf(source.bytes, digestAlgorithm(digest)), size: source.bytes.byteLength },
        { digest, ...(size !== undefined ? { size } : {}) },
      );
    }
    const existing = options.knownAbsent
      ? undefined
      : await headBlob(context, repo, digest, signalOf(options));
    if (existing !== undefined) {
      source.discard();
      return existing;
    }
    let session: Session | undefined;
    const mountFrom =
      options.mountFrom === undefined
        ? []
        : typeof options.mountFrom === 'string'
          ? [options.mountFrom]
          : options.mountFrom;
    for (const from of mountFrom) {
      if (from === repo) continue;
      const result = await mount(context, { repo, digest, from: checkRepository(from), signal });
      if (result.mounted) {
        source.discard();
        if (session !== undefined) await cancelSession(context, session, signal).catch(() => {});
        return (await headBlob(context, repo, digest, signalOf(options))) ?? { digest, size: size ?? 0 };
      }
      if (session === undefined) session = result.session;
      else if (result.session !== undefined)
        await cancelSession(context, result.session, signal).catch(() => {});
    }
    return await upload(context, { repo, digest, size, source, session, signal });
  } catch (error) {
    source.discard();
    throw error;
  }
}

/** Every chunk of a body of known size, in one buffer. */
async function readWhole(chunks: AsyncIterable<Uint8Array>, size: number): Promise<Uint8Array> {
  const whole = new Uint8Array(size);
  let offset = 0;
  for await (const chunk of chunks) {
    // heldBackChunks fails past `size`: the set below never overflows.
    whole.set(chunk, offset);
    offset += chunk.byteLength;
  }
  return offset === size ? whole : whole.subarray(0, offset);
}

interface Upload {
  readonly repo: string;
  readonly digest: Digest;
  readonly size: number | undefined;
  readonly source: BlobSource;
  /** A session a refused mount opened, used by the first attempt. */
  readonly session: Session | undefined;
  readonly signal: AbortSignal | undefined;
}

/**
 * Uploads with restarts: when an attempt fails in a way a new try may fix
 * (network, 5xx, a session the registry dropped), the session is cancelled
 * and, if the body can be read again (bytes or a factory), the upload starts
 * over in a new session.
 */
async function upload(context: ClientContext, request: Upload): Promise<BlobInfo> {
  const { source, signal } = request;
  let first: Session | undefined = request.session;
  return await retryWith(
    async () => {
      const state: { session: Session | undefined } = { session: first };
      first = undefined;
      try {
        return await uploadOnce(context, request, state);
      } catch (error) {
        if (state.session !== undefined) await cancelSession(context, state.session).catch(() => {});
        throw error;
      }
    },
    {
      policy: context.options.retry,
      signal,
      shouldRetry: (error) =>
        source.replayable &&
        (isRetryable(error) ||
          isStowageError(error, 'BLOB_UPLOAD_UNKNOWN') ||
          isStowageError(error, 'BLOB_UPLOAD_INVALID')),
      onRetry: ({ attempt }) =>
        context.logger.debug({ digest: request.digest, attempt }, 'restarting blob upload'),
    },
  );
}

async function uploadOnce(
  context: ClientContext,
  request: Upload,
  state: { session: Session | undefined },
): Promise<BlobInfo> {
  const { repo, digest, size, source, signal } = request;
  let bytes = source.bytes;
  if (
    bytes === undefined &&
    size !== undefined &&
    size <= context.options.singleRequestMaxBytes &&
    state.session === undefined &&
    context.singlePost !== false
  ) {
    // A small streamed blob is read whole first (bounded by singleRequestMaxBytes, checked on
    // the way), so it can go in one POST, and stay at hand when the registry opens a session instead.
    bytes = await readWhole(heldBackChunks(source.open(), { digest, size }), size);
  }
  if (
    bytes !== undefined &&
    state.session === undefined &&
    context.singlePost !== false &&
    bytes.byteLength <= context.options.singleRequestMaxBytes
  ) {
    // One request: POST with ?digest= and the body. Registries without it open a session (202) and drop the body.
    const response = await context.sendForHeaders({
      method: 'POST',
      target: `/v2/${repo}/blobs/uploads/?digest=${digest}`,
      headers: { 'content-type': 'application/octet-stream' },
      body: bytes,
      endpoint: 'upload',
      accept: [201, 202],
      idempotent: true,
      scopes: [pushScope(repo)],
      ...signalOf({ signal }),
    });
    if (response.status === 201) {
      context.singlePost = true;
      checkEchoedDigest(response.headers, digest);
      return { digest, size: bytes.byteLength };
    }
    context.singlePost = false;
    state.session = newSession(context, repo, response.headers);
  }
  state.session ??= await openSession(context, repo, signal);
  const session = state.session;
  const chunkSize = Math.max(context.options.chunkSize, session.chunkMin ?? 0);
  const monolithic = context.options.monolithicMaxBytes;

  let chunks: AsyncIterable<Uint8Array>;
  if (bytes !== undefined) {
    if (bytes.byteLength <= monolithic) {
      return await commit(context, { session, digest, size: bytes.byteLength, body: bytes, signal });
    }
    const whole = bytes;
    chunks = rechunk(
      (async function* () {
        yield whole;
      })(),
      chunkSize,
    );
  } else {
    const verified = heldBackChunks(source.open(), { digest, ...(size !== undefined ? { size } : {}) });
    // A re-openable source of known size streams in one request whatever its size: a
    // failure restarts it from the source, and one long PUT is much faster than many PATCHes.
    if (size !== undefined && (size <= monolithic || source.replayable)) {
      return await commit(context, {
        session,
        digest,
        size,
        body: { stream: verified, length: size },
        signal,
      });
    }
    chunks = rechunk(verified, chunkSize);
  }
  let offset = 0;
  for await (const chunk of chunks) {
    await patchChunk(context, session, chunk, offset, signal);
    offset += chunk.byteLength;
  }
  return await commit(context, { session, digest, size: offset, signal });
}
