// `/v2/<name>/blobs/<digest>`: head, get (whole or one byte range) and delete.
import type { IncomingMessage } from 'node:http';
import { pipeline } from 'node:stream/promises';
import { isStowageError, RegistryError, type ResolvedRange, resolveRange } from '@stowage/oci';
import { HttpError } from '../errors.js';
import type { HandlerContext } from '../internal/context.js';
import { type Exchange, send } from '../internal/exchange.js';
import { digestParam, methodNotAllowed, repositoryName } from '../internal/params.js';

/** What a blob GET's `Range` header asks for. */
type RangeRequest =
  | { readonly kind: 'from'; readonly start: number; readonly end?: number }
  | { readonly kind: 'suffix'; readonly length: number }
  | { readonly kind: 'invalid' };

/**
 * Reads `Range: bytes=<first>-[<last>]` or `bytes=-<suffix>`. Per RFC 9110 a
 * header in another unit, or one asking for several ranges, is ignored
 * (`undefined`: the whole blob is served); a malformed byte range is `invalid`.
 */
function rangeHeader(request: IncomingMessage): RangeRequest | undefined {
  const header = request.headers.range;
  if (header === undefined) return undefined;
  const equals = header.indexOf('=');
  if (equals < 0 || header.slice(0, equals).trim().toLowerCase() !== 'bytes') return undefined;
  const set = header.slice(equals + 1).trim();
  if (set.includes(',')) return undefined;
  const suffix = /^-(\d{1,15})$/.exec(set);
  if (suffix) return { kind: 'suffix', length: Number(suffix[1]) };
  const match = /^(\d{1,15})-(\d{1,15})?$/.exec(set);
  if (!match) return { kind: 'invalid' };
  const start = Number(match[1]);
  if (match[2] === undefined) return { kind: 'from', start };
  const end = Number(match[2]);
  return end < start ? { kind: 'invalid' } : { kind: 'from', start, end };
}

/**
 * The inclusive byte range to serve of a blob of `size` bytes, `undefined` for
 * the whole blob; a 416 whose `Content-Range` gives the size when it cannot be met.
 */
function satisfiable(range: RangeRequest, size: number): ResolvedRange | undefined {
  const refuse = (why: string) =>
    new HttpError('BLOB_UPLOAD_INVALID', `${why} for a blob of ${size} bytes`, {
      status: 416,
      headers: { 'content-range': `bytes */${size}` },
      detail: { size },
    });
  if (range.kind === 'invalid') throw refuse('invalid Range');
  if (range.kind === 'suffix') {
    if (range.length === 0) throw refuse('an empty suffix Range');
    // an empty blob has no byte range to name: it is sent whole
    if (size === 0) return undefined;
    return { start: Math.max(0, size - range.length), end: size - 1 };
  }
  try {
    return resolveRange(range, size);
  } catch (error) {
    if (isStowageError(error, 'RANGE_INVALID')) throw refuse(`Range starting at ${range.start}`);
    throw error;
  }
}

export async function blobs(
  context: HandlerContext,
  exchange: Exchange,
  route: { readonly name: string; readonly digest: string },
): Promise<void> {
  const { registry } = context;
  const { request, response, signal } = exchange;
  const name = repositoryName(route.name);
  const digest = digestParam(route.digest, 'the blob digest');
  const method = request.method;
  if (method === 'HEAD') {
    const info = await registry.headBlob(name, digest, { signal });
    if (!info) throw new RegistryError('BLOB_UNKNOWN', `blob ${digest} is not in ${name}`);
    send(exchange, 200, {
      'content-type': 'application/octet-stream',
      'content-length': info.size,
      'docker-content-digest': digest,
      'accept-ranges': 'bytes',
      etag: `"${digest}"`,
    });
    return;
  }
  if (method === 'GET') {
    const requested = rangeHeader(request);
    let range: ResolvedRange | undefined;
    if (requested) {
      const info = await registry.headBlob(name, digest, { signal });
      if (!info) throw new RegistryError('BLOB_UNKNOWN', `blob ${digest} is not in ${name}`);
      range = satisfiable(requested, info.size);
    }
    const content = await registry.getBlob(name, digest, { signal, ...(range ? { range } : {}) });
    const headers: Record<string, string | number> = {
      'content-type': 'application/octet-stream',
      'docker-content-digest': digest,
      'accept-ranges': 'bytes',
      etag: `"${digest}"`,
    };
    let status = 200;
    let length = content.size;
    if (content.range) {
      status = 206;
      length = content.range.end - content.range.start + 1;
      headers['content-range'] = `bytes ${content.range.start}-${content.range.end}/${content.size}`;
    }
    headers['content-length'] = length;
    for (const [key, value] of Object.entries(headers)) response.setHeader(key, value);
    response.writeHead(status);
    content.stream.on('data', (chunk: Uint8Array) => {
      exchange.bytesOut += chunk.byteLength;
    });
    await pipeline(content.stream, response);
    return;
  }
  if (method === 'DELETE') {
    await registry.deleteBlob(name, digest, { signal });
    send(exchange, 202, {});
    return;
  }
  throw methodNotAllowed('GET, HEAD, DELETE');
}
