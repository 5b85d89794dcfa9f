import { createHash, type Hash } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import {
  type AppendUploadOptions,
  type BlobBody,
  type BlobInfo,
  type Digest,
  DigestMismatchError,
  digestAlgorithm,
  type FinishUploadOptions,
  isStowageError,
  type OperationOptions,
  RegistryError,
  SizeMismatchError,
  type UploadStatus,
} from '@stowage/oci';
import { RegistryProtocolError } from '../errors.js';
import { rechunk } from '../internal/body.js';
import { appendQuery, checkDigest, checkRepository, optionalDigest, signalOf } from '../internal/checks.js';
import type { ClientContext } from '../internal/context.js';
import { isRetryable, retryWith } from '../internal/retry.js';
import { pushScope } from '../internal/scope.js';
import { headerValue } from '../internal/transport.js';
import {
  decodeUploadId,
  encodeUploadId,
  offsetFromRange,
  relativeLocation,
  sessionKey,
} from '../internal/upload-id.js';
import { headBlob } from './blobs.js';

/** One upload session as this client knows it. */
export interface Session {
  readonly key: string;
  readonly repository: string;
  /** Absolute URL of the latest `Location`. */
  location: string;
  readonly startedAt: number;
  /** Bytes the registry holds, when known. */
  offset: number | undefined;
  /** `OCI-Chunk-Min-Length`, when the registry sent it. */
  chunkMin: number | undefined;
  /** sha256 of every byte sent through this client, while it has seen them all in order. */
  hash: Hash | undefined;
  hashed: number;
}

/** Sessions remembered per client; the oldest are forgotten first. */
const MAX_SESSIONS = 512;

/** A session from the `Location` (and `OCI-Chunk-Min-Length`) of a response that opened one. */
export function newSession(
  context: ClientContext,
  repository: string,
  headers: IncomingHttpHeaders,
): Session {
  const location = headerValue(headers, 'location');
  if (location === undefined) throw new RegistryProtocolError('upload session opened without a Location');
  const origin = context.registry.origin;
  const absolute = new URL(location, origin).toString();
  const chunkMin = Number(headerValue(headers, 'oci-chunk-min-length'));
  const session: Session = {
    key: sessionKey(absolute, origin),
    repository,
    location: absolute,
    startedAt: Date.now(),
    offset: 0,
    chunkMin: Number.isSafeInteger(chunkMin) && chunkMin > 0 ? chunkMin : undefined,
    hash: createHash('sha256'),
    hashed: 0,
  };
  remember(context, session);
  return session;
}

function remember(context: ClientContext, session: Session): void {
  const { sessions } = context;
  sessions.delete(session.key);
  sessions.set(session.key, session);
  while (sessions.size > MAX_SESSIONS) {
    const oldest = sessions.keys().next().value;
    if (oldest === undefined) break;
    sessions.delete(oldest);
  }
}

function forget(context: ClientContext, session: Session): void {
  context.sessions.delete(session.key);
}

/** The session an id names: the latest state this client has for it, or the id's own location. */
function sessionOf(context: ClientContext, repository: string, id: string): Session {
  const decoded = decodeUploadId(id);
  const unknown = () =>
    new RegistryError('BLOB_UPLOAD_UNKNOWN', 'unknown upload session', { details: { repository } });
  if (decoded === undefined) throw unknown();
  const origin = context.registry.origin;
  const absolute = new URL(decoded.location, origin);
  if (absolute.origin === origin && !absolute.pathname.startsWith(`/v2/${repository}/blobs/uploads/`)) {
    throw unknown();
  }
  const key = sessionKey(absolute.toString(), origin);
  const known = context.sessions.get(key);
  if (known !== undefined && known.repository === repository) return known;
  const session: Session = {
    key,
    repository,
    location: absolute.toString(),
    startedAt: decoded.startedAt,
    offset: undefined,
    chunkMin: undefined,
    hash: undefined,
    hashed: 0,
  };
  remember(context, session);
  return session;
}

function statusOf(context: ClientContext, session: Session): UploadStatus {
  return {
    id: encodeUploadId({
      location: relativeLocation(session.location, context.registry.origin),
      startedAt: session.startedAt,
    }),
    repository: session.repository,
    offset: session.offset ?? 0,
    startedAt: session.startedAt,
  };
}

/** Takes the new `Location` and `Range` of an upload response. */
function advance(
  session: Session,
  headers: IncomingHttpHeaders,
  expected: number,
  sent?: { readonly chunk: Uint8Array; readonly start: number },
): void {
  const location = headerValue(headers, 'location');
  if (location !== undefined) session.location = new URL(location, session.location).toString();
  const reported = offsetFromRange(headerValue(headers, 'range'), expected);
  session.offset = reported ?? expected;
  if (sent !== undefined) hashAppend(session, sent.chunk, sent.start);
  if (session.offset !== expected) session.hash = undefined;
}

function hashAppend(session: Session, chunk: Uint8Array, start: number): void {
  if (session.hash !== undefined && session.hashed === start) {
    session.hash.update(chunk);
    session.hashed += chunk.byteLength;
  } else {
    session.hash = undefined;
  }
}

/** `POST /v2/<name>/blobs/uploads/`: a new session. */
export async function openSession(
  context: ClientContext,
  repo: string,
  signal: AbortSignal | undefined,
): Promise<Session> {
  const response = await context.sendForHeaders({
    method: 'POST',
    target: `/v2/${repo}/blobs/uploads/`,
    endpoint: 'upload',
    accept: [202],
    idempotent: true,
    scopes: [pushScope(repo)],
    codeFor: (status) => (status === 404 ? 'NAME_UNKNOWN' : undefined),
    ...signalOf({ signal }),
  });
  return newSession(context, repo, response.headers);
}

/** `GET` on the session: the registry's offset and the latest `Location`. */
async function refreshSession(
  context: ClientContext,
  session: Session,
  signal: AbortSignal | undefined,
): Promise<Session> {
  const response = await context.sendForHeaders({
    method: 'GET',
    target: session.location,
    endpoint: 'upload',
    accept: [200, 204],
    scopes: [pushScope(session.repository)],
    ...signalOf({ signal }),
  });
  const location = headerValue(response.headers, 'location');
  if (location !== undefined) session.location = new URL(location, session.location).toString();
  const offset = offsetFromRange(headerValue(response.headers, 'range'), session.offset);
  if (offset !== undefined) {
    if (session.offset !== undefined && offset !== session.offset) session.hash = undefined;
    session.offset = offset;
  }
  return session;
}

/** `DELETE` on the session; the client forgets it whatever the answer. */
export async function cancelSession(
  context: ClientContext,
  session: Session,
  signal?: AbortSignal,
): Promise<void> {
  try {
    await context.sendForHeaders({
      method: 'DELETE',
      target: session.location,
      endpoint: 'upload',
      accept: [200, 202, 204],
      scopes: [pushScope(session.repository)],
      ...signalOf({ signal }),
    });
  } finally {
    forget(context, session);
  }
}

/** What the final `PUT ?digest=` carries: the whole body (monolithic), or nothing after chunks. */
export interface Commit {
  readonly session: Session;
  readonly digest: Digest;
  readonly size: number;
  readonly body?: Uint8Array | { readonly stream: AsyncIterable<Uint8Array>; readonly length: number };
  readonly signal: AbortSignal | undefined;
}

/** The final `PUT ?digest=`. */
export async function commit(context: ClientContext, put: Commit): Promise<BlobInfo> {
  const { session, digest, size, body, signal } = put;
  let response: Awaited<ReturnType<ClientContext['sendForHeaders']>>;
  try {
    response = await context.sendForHeaders({
      method: 'PUT',
      target: appendQuery(session.location, 'digest', digest),
      headers: { 'content-type': 'application/octet-stream' },
      body: body ?? new Uint8Array(0),
      endpoint: 'upload',
      accept: [201, 204],
      // Without a body the commit can be repeated; a lost answer shows as an unknown session below.
      idempotent: body === undefined,
      scopes: [pushScope(session.repository)],
      codeFor: (status, diagnostics) =>
        diagnostics.some((d) => d.code === 'DIGEST_INVALID')
          ? 'DIGEST_INVALID'
          : status === 404
            ? 'BLOB_UPLOAD_UNKNOWN'
            : undefined,
      ...signalOf({ signal }),
    });
  } catch (error) {
    if (body === undefined && isStowageError(error, 'BLOB_UPLOAD_UNKNOWN')) {
      const existing = await headBlob(context, session.repository, digest, signalOf({ signal }));
      if (existing !== undefined) {
        forget(context, session);
        return existing;
      }
    }
    throw error;
  }
  forget(context, session);
  checkEchoedDigest(response.headers, digest);
  return { digest, size };
}

/**
 * Sends one chunk with `Content-Range`. When the request fails on the way,
 * asks the registry how much it holds and sends the rest of the chunk (the
 * chunk is in memory, so this needs no help from the caller's stream).
 */
export async function patchChunk(
  context: ClientContext,
  session: Session,
  chunk: Uint8Array,
  start: number,
  signal: AbortSignal | undefined,
): Promise<void> {
  let sent = 0;
  await retryWith(
    async (attempt) => {
      if (attempt > 1) {
        const held = (await refreshSession(context, session, signal)).offset ?? start;
        if (held < start || held > start + chunk.byteLength) {
          throw new RegistryProtocolError('the registry lost part of an upload', { held, start });
        }
        context.logger.debug({ offset: held }, 'resuming chunk upload');
        sent = held - start;
        if (sent === chunk.byteLength) {
          hashAppend(session, chunk, start);
          return;
        }
      }
      const response = await context.sendForHeaders({
        method: 'PATCH',
        target: session.location,
        headers: {
          'content-type': 'application/octet-stream',
          'content-range': `${start + sent}-${start + chunk.byteLength - 1}`,
        },
        body: chunk.subarray(sent),
        endpoint: 'upload',
        accept: [202, 204],
        idempotent: false,
        scopes: [pushScope(session.repository)],
        ...signalOf({ signal }),
      });
      advance(session, response.headers, start + chunk.byteLength, { chunk, start });
    },
    { policy: context.options.retry, signal, shouldRetry: isRetryable },
  );
}

export function checkEchoedDigest(headers: IncomingHttpHeaders, digest: Digest): void {
  const echoed = optionalDigest(headerValue(headers, 'docker-content-digest'));
  if (echoed !== undefined && digestAlgorithm(echoed) === digestAlgorithm(digest) && echoed !== digest) {
    throw new DigestMismatchError(digest, echoed);
  }
}

// --- the UploadSessions members ---

export async function startUpload(
  context: ClientContext,
  repository: string,
  options: OperationOptions = {},
): Promise<UploadStatus> {
  const repo = checkRepository(repository);
  return statusOf(context, await openSession(context, repo, options.signal));
}

export async function getUpload(
  context: ClientContext,
  repository: string,
  id: string,
  options: OperationOptions = {},
): Promise<UploadStatus> {
  const repo = checkRepository(repository);
  const session = sessionOf(context, repo, id);
  return statusOf(context, await refreshSession(context, session, options.signal));
}

/**
 * Appends a chunk. With `offset`, the session's offset is checked first (by
 * this client, since some registries ignore `Content-Range`) and a mismatch is
 * refused with `RANGE_INVALID` without sending anything.
 */
export async function appendUpload(
  context: ClientContext,
  repository: string,
  id: string,
  options: AppendUploadOptions,
): Promise<UploadStatus> {
  const repo = checkRepository(repository);
  const session = sessionOf(context, repo, id);
  await append(context, session, options);
  return statusOf(context, session);
}

async function append(
  context: ClientContext,
  session: Session,
  options: {
    body: BlobBody;
    offset?: number | undefined;
    length?: number | undefined;
    signal?: AbortSignal | undefined;
  },
): Promise<void> {
  const { body, offset, length, signal } = options;
  if (session.offset === undefined) await refreshSession(context, session, signal);
  const current = session.offset ?? 0;
  if (offset !== undefined && offset !== current) {
    throw new RegistryError(
      'RANGE_INVALID',
      `the upload is at offset ${current}, the chunk starts at ${offset}`,
      {
        details: { offset: current, requested: offset },
      },
    );
  }
  if (body instanceof Uint8Array) {
    if (length !== undefined && length !== body.byteLength)
      throw new SizeMismatchError(length, body.byteLength);
    if (body.byteLength > 0) await patchChunk(context, session, body, current, signal);
    return;
  }
  // A stream goes in chunks, each held in memory only while it is sent (so it can be resent from the
  // registry's offset). Reading one chunk ahead tells which chunk is the last, so a declared length
  // is checked before the chunk that would break it leaves.
  const chunks = rechunk(body, context.options.chunkSize)[Symbol.asyncIterator]();
  let sent = 0;
  let next = await chunks.next();
  while (!next.done) {
    const chunk = next.value;
    next = await chunks.next();
    const total = sent + chunk.byteLength;
    if (length !== undefined && (total > length || (next.done && total !== length))) {
      await chunks.return(undefined);
      throw new SizeMismatchError(length, next.done ? total : Math.max(total, length + 1));
    }
    await patchChunk(context, session, chunk, current + sent, signal);
    sent = total;
  }
  if (length !== undefined && sent !== length) throw new SizeMismatchError(length, sent);
}

export async function finishUpload(
  context: ClientContext,
  repository: string,
  id: string,
  options: FinishUploadOptions,
): Promise<BlobInfo> {
  const repo = checkRepository(repository);
  const digest = checkDigest(options.digest);
  const session = sessionOf(context, repo, id);
  if (options.body !== undefined) {
    await append(context, session, { ...options, body: options.body });
  } else if (session.offset === undefined) {
    await refreshSession(context, session, options.signal);
  }
  // Every byte went through this client in order: check the digest before committing anything.
  if (
    session.hash !== undefined &&
    session.hashed === session.offset &&
    digestAlgorithm(digest) === 'sha256'
  ) {
    const actual = `sha256:${session.hash.copy().digest('hex')}` as Digest;
    if (actual !== digest) throw new DigestMismatchError(digest, actual);
  }
  return await commit(context, { session, digest, size: session.offset ?? 0, signal: options.signal });
}

export async function cancelUpload(
  context: ClientContext,
  repository: string,
  id: string,
  options: OperationOptions = {},
): Promise<void> {
  const repo = checkRepository(repository);
  await cancelSession(context, sessionOf(context, repo, id), options.signal);
}
