// `/v2/<name>/blobs/uploads/[<id>]`: monolithic and chunked uploads, mounts, status and cancel.
import type { IncomingMessage } from 'node:http';
import type { BlobBody, Digest } from '@stowage/oci';
import { HttpError } from '../errors.js';
import type { HandlerContext } from '../internal/context.js';
import { discard, type Exchange, encodeName, send } from '../internal/exchange.js';
import { contentLength, digestParam, methodNotAllowed, repositoryName } from '../internal/params.js';

/** `Content-Range: <start>-<end>` of a PATCH (also accepts a `bytes ` or `bytes=` prefix). */
function contentRange(request: IncomingMessage): { start: number; length: number } | undefined {
  const header = request.headers['content-range'];
  if (header === undefined) return undefined;
  const match = /^(?:bytes[ =])?(\d{1,15})-(\d{1,15})(?:\/(?:\d+|\*))?$/.exec(header.trim());
  if (!match)
    throw new HttpError('BLOB_UPLOAD_INVALID', `invalid Content-Range ${header.slice(0, 100)}`, {
      status: 416,
    });
  const start = Number(match[1]);
  const end = Number(match[2]);
  if (end < start)
    throw new HttpError('BLOB_UPLOAD_INVALID', `invalid Content-Range ${header}`, { status: 416 });
  return { start, length: end - start + 1 };
}

function uploadHeaders(name: string, id: string, offset: number): Record<string, string> {
  return {
    location: `/v2/${encodeName(name)}/blobs/uploads/${encodeURIComponent(id)}`,
    range: `0-${Math.max(0, offset - 1)}`,
    'docker-upload-uuid': id,
  };
}

function blobCreated(exchange: Exchange, name: string, digest: Digest): void {
  send(exchange, 201, {
    location: `/v2/${encodeName(name)}/blobs/${digest}`,
    'docker-content-digest': digest,
  });
}

/** Whether this request may pull from `from` (the source of a mount). */
async function mayPull(context: HandlerContext, request: IncomingMessage, from: string): Promise<boolean> {
  if (context.openAccess) return true;
  const decision = await context.authorizer.authorize(request, [
    { type: 'repository', name: from, actions: ['pull'] },
  ]);
  return decision.ok;
}

/** `POST /v2/<name>/blobs/uploads/`: a mount, a whole blob (`?digest=`), or a new session. */
export async function startUpload(
  context: HandlerContext,
  exchange: Exchange,
  route: { readonly name: string },
): Promise<void> {
  const { registry, maxBlobSize } = context;
  const { request, url, signal } = exchange;
  if (request.method !== 'POST') throw methodNotAllowed('POST');
  const name = repositoryName(route.name);
  const mount = url.searchParams.get('mount');
  if (mount !== null) {
    const digest = digestParam(mount, 'mount');
    const from = url.searchParams.get('from');
    if (from !== null) repositoryName(from);
    // Without `from` the store may take the blob from any repository, so that is only
    // done when nobody's access is checked; and `from` must be one the caller may pull.
    const allowed = from === null ? context.openAccess : await mayPull(context, request, from);
    const mounted = allowed
      ? await registry.mountBlob(name, digest, { signal, ...(from !== null ? { from } : {}) })
      : undefined;
    if (mounted) {
      discard(exchange);
      blobCreated(exchange, name, digest);
      return;
    }
    // not mountable (or not for this caller): an ordinary upload session instead, as distribution does
  }
  const digestValue = url.searchParams.get('digest');
  if (digestValue !== null && mount === null) {
    const digest = digestParam(digestValue, 'digest');
    const size = contentLength(request);
    if (maxBlobSize !== undefined && size !== undefined && size > maxBlobSize) {
      throw new HttpError('SIZE_INVALID', `blob of ${size} bytes exceeds the ${maxBlobSize}-byte limit`, {
        status: 413,
      });
    }
    await registry.putBlob(name, context.body.chunks(exchange, maxBlobSize), {
      digest,
      signal,
      ...(size !== undefined ? { size } : {}),
    });
    blobCreated(exchange, name, digest);
    return;
  }
  discard(exchange);
  const status = await registry.startUpload(name, { signal });
  context.sessions.started(name, status.id);
  send(exchange, 202, uploadHeaders(name, status.id, status.offset));
}

/** An upload session named by a request. */
interface SessionRef {
  readonly name: string;
  readonly id: string;
}

/** The bytes a chunk may still add under the blob size limit. */
async function remaining(
  context: HandlerContext,
  exchange: Exchange,
  ref: SessionRef,
): Promise<number | undefined> {
  if (context.maxBlobSize === undefined) return undefined;
  const status = await context.registry.getUpload(ref.name, ref.id, { signal: exchange.signal });
  return context.maxBlobSize - status.offset;
}

/** `/v2/<name>/blobs/uploads/<id>`: status, a chunk, the last chunk and commit, or cancel. */
export async function upload(
  context: HandlerContext,
  exchange: Exchange,
  route: { readonly name: string; readonly id: string },
): Promise<void> {
  const name = repositoryName(route.name);
  try {
    await session(context, exchange, { name, id: route.id });
  } catch (error) {
    await context.sessions.afterFailure(name, route.id, error);
    throw error;
  }
}

async function session(context: HandlerContext, exchange: Exchange, ref: SessionRef): Promise<void> {
  const { registry, sessions } = context;
  const { name, id } = ref;
  const { request, url, signal } = exchange;
  const method = request.method;
  if (method === 'GET') {
    const status = await registry.getUpload(name, id, { signal });
    send(exchange, 204, uploadHeaders(name, id, status.offset));
    return;
  }
  if (method === 'PATCH') {
    const range = contentRange(request);
    const length = range?.length ?? contentLength(request);
    const left = await remaining(context, exchange, ref);
    if (left !== undefined && length !== undefined && length > left) {
      throw new HttpError('SIZE_INVALID', `the blob would exceed ${context.maxBlobSize} bytes`, {
        status: 413,
      });
    }
    const status = await registry.appendUpload(name, id, {
      body: context.body.chunks(exchange, left),
      signal,
      ...(range ? { offset: range.start } : {}),
      ...(length !== undefined ? { length } : {}),
    });
    send(exchange, 202, uploadHeaders(name, id, status.offset));
    return;
  }
  if (method === 'PUT') {
    const digest = digestParam(url.searchParams.get('digest'), 'digest');
    const range = contentRange(request);
    const length = range?.length ?? contentLength(request);
    const hasBody = (length ?? 0) > 0 || request.headers['transfer-encoding'] !== undefined;
    const left = hasBody ? await remaining(context, exchange, ref) : undefined;
    const info = await registry.finishUpload(name, id, {
      digest,
      signal,
      ...(hasBody ? { body: context.body.chunks(exchange, left) as BlobBody } : {}),
      ...(hasBody && range ? { offset: range.start } : {}),
      ...(hasBody && length !== undefined ? { length } : {}),
    });
    if (!hasBody) discard(exchange);
    sessions.ended(name, id);
    blobCreated(exchange, name, info.digest);
    return;
  }
  if (method === 'DELETE') {
    await registry.cancelUpload(name, id, { signal });
    sessions.ended(name, id);
    send(exchange, 204, {});
    return;
  }
  throw methodNotAllowed('GET, PATCH, PUT, DELETE');
}
