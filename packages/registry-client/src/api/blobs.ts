import { pipeline, Readable } from 'node:stream';
import {
  type BlobContent,
  type BlobInfo,
  type ByteRange,
  type Digest,
  type GetBlobOptions,
  markVerified,
  type OperationOptions,
  RegistryError,
  resolveRange,
  VerifyingStream,
  verifiedChunks,
} from '@stowage/oci';
import { RegistryProtocolError } from '../errors.js';
import { checkDigest, checkRepository, contentLength, signalOf } from '../internal/checks.js';
import type { ClientContext } from '../internal/context.js';
import {
  LengthStream,
  type OpenBody,
  parseContentRange,
  resumableBody,
  SliceStream,
  skipBytes,
} from '../internal/download.js';
import { deleteScope, pullScope } from '../internal/scope.js';
import { headerValue, type RegistryHost } from '../internal/transport.js';

/** `HEAD /v2/<name>/blobs/<digest>`; `undefined` when absent. */
export async function headBlob(
  context: ClientContext,
  repository: string,
  digest: Digest,
  options: OperationOptions = {},
): Promise<BlobInfo | undefined> {
  const repo = checkRepository(repository);
  const target = checkDigest(digest);
  const response = await context.sendForHeaders({
    method: 'HEAD',
    target: `/v2/${repo}/blobs/${target}`,
    endpoint: 'blob',
    accept: [200, 404],
    followRedirects: true,
    scopes: [pullScope(repo)],
    ...signalOf(options),
  });
  if (response.status === 404) return undefined;
  const size = contentLength(response.headers);
  if (size === undefined)
    throw new RegistryProtocolError('blob HEAD without a Content-Length', { digest: target });
  return { digest: target, size };
}

/** `GET /v2/<name>/blobs/<digest>`, from the mirrors first, verified while it streams and resumed when it breaks. */
export async function getBlob(
  context: ClientContext,
  repository: string,
  digest: Digest,
  options: GetBlobOptions = {},
): Promise<BlobContent> {
  const repo = checkRepository(repository);
  const target = checkDigest(digest);
  const range = options.range;
  if (range !== undefined) {
    const { start, end } = range;
    if (
      !Number.isSafeInteger(start) ||
      start < 0 ||
      (end !== undefined && (!Number.isSafeInteger(end) || end < start))
    ) {
      throw new RegistryError('RANGE_INVALID', `invalid byte range ${start}-${end ?? ''}`);
    }
  }
  return await context.fromHosts(context.pullHosts(), options.signal, (host) =>
    fetchBlob(context, { host, repo, digest: target, range, signal: options.signal }),
  );
}

interface BlobFetch {
  readonly host: RegistryHost;
  readonly repo: string;
  readonly digest: Digest;
  readonly range: ByteRange | undefined;
  readonly signal: AbortSignal | undefined;
}

async function fetchBlob(context: ClientContext, fetch: BlobFetch): Promise<BlobContent> {
  const { host, repo, digest, range, signal } = fetch;
  const path = `/v2/${repo}/blobs/${digest}`;
  const request = (start: number | undefined, end: number | undefined) =>
    context.send(
      {
        method: 'GET',
        target: path,
        headers: start !== undefined ? { range: `bytes=${start}-${end ?? ''}` } : {},
        endpoint: 'blob',
        accept: [200, 206],
        followRedirects: true,
        scopes: [pullScope(repo)],
        ...signalOf({ signal }),
      },
      host,
    );
  const describe = { method: 'GET', url: new URL(path, host.origin).toString() };
  const policy = context.options.retry;
  /** Re-requests bytes from `from` (absolute offset), positioned exactly there. */
  const reopenAt = async (from: number, end: number | undefined): Promise<OpenBody> => {
    const response = await request(from, end);
    const body = response.body;
    if (response.status === 200) return { body: skipBytes(body, from), destroy: () => body.destroy() };
    const served = parseContentRange(headerValue(response.headers, 'content-range'));
    if (served?.start !== from) {
      body.destroy();
      throw new RegistryProtocolError('the registry resumed a download at the wrong offset', { from });
    }
    return { body, destroy: () => body.destroy() };
  };
  const onResume = (received: number, error: unknown) =>
    context.logger.debug(
      { digest, received, reason: (error as { code?: unknown })?.code },
      'resuming blob download',
    );
  const sizeFromHead = async () => (await headBlob(context, repo, digest, signalOf({ signal })))?.size;

  const first = await request(range?.start, range?.end);
  const firstBody = { body: first.body, destroy: () => first.body.destroy() };
  const length = contentLength(first.headers);

  if (first.status === 206) {
    const served = parseContentRange(headerValue(first.headers, 'content-range'));
    if (range === undefined || served === undefined || served.start !== range.start) {
      first.body.destroy();
      throw new RegistryProtocolError('the registry sent a partial response that was not asked for', {
        digest,
      });
    }
    const expected = served.end - served.start + 1;
    const resumable = resumableBody(firstBody, {
      expected,
      reopen: (received) => reopenAt(served.start + received, served.end),
      policy,
      describe,
      onResume,
      ...signalOf({ signal }),
    });
    const size = served.total ?? (await sizeFromHead()) ?? served.end + 1;
    return {
      digest,
      size,
      stream: pipeline(Readable.from(resumable), new LengthStream(expected), () => {}),
      range: { start: served.start, end: served.end },
    };
  }

  // 200: the whole blob, verified against the digest (and length) while it streams.
  const size = length ?? (await sizeFromHead());
  let slice: { start: number; end: number } | undefined;
  if (range !== undefined) {
    // The registry ignored the Range header: verify everything, pass on the part asked for.
    try {
      slice =
        size === undefined
          ? { start: range.start, end: range.end ?? Number.MAX_SAFE_INTEGER }
          : resolveRange(range, size);
    } catch (error) {
      first.body.destroy();
      throw error;
    }
  }
  const resumable = resumableBody(firstBody, {
    ...(size !== undefined ? { expected: size } : {}),
    reopen: (received) => reopenAt(received, undefined),
    policy,
    describe,
    onResume,
    ...signalOf({ signal }),
  });
  const expected = { digest, ...(size !== undefined ? { size } : {}) };
  if (slice === undefined) {
    // Hashed in the one generator the stream reads (no Transform, no pipeline): an object-mode
    // stream of the socket's own chunks, never concatenated, failing before its end on a mismatch.
    const stream = Readable.from(verifiedChunks(resumable, expected));
    return { digest, size: size ?? -1, stream: markVerified(stream, digest) };
  }
  const verifier = new VerifyingStream(expected);
  return {
    digest,
    size: size ?? -1,
    stream: pipeline(Readable.from(resumable), verifier, new SliceStream(slice.start, slice.end), () => {}),
    range: slice,
  };
}

/** `DELETE /v2/<name>/blobs/<digest>`. */
export async function deleteBlob(
  context: ClientContext,
  repository: string,
  digest: Digest,
  options: OperationOptions = {},
): Promise<void> {
  const repo = checkRepository(repository);
  const target = checkDigest(digest);
  await context.sendForHeaders({
    method: 'DELETE',
    target: `/v2/${repo}/blobs/${target}`,
    endpoint: 'blob',
    accept: [200, 202, 204],
    scopes: [deleteScope(repo)],
    ...signalOf(options),
  });
}
