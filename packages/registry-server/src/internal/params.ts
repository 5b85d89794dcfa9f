// What a request names in its path, query and headers, checked: each refusal is the OCI error the spec asks for.
import type { IncomingMessage } from 'node:http';
import { type Digest, isDigest, isValidRepositoryName, parseDigest } from '@stowage/oci';
import { HttpError } from '../errors.js';

/** How much of a refused input an error message or detail repeats. */
const SHOWN = 300;

export function repositoryName(input: string): string {
  const name = input.slice(0, SHOWN);
  if (!isValidRepositoryName(input)) {
    throw new HttpError('NAME_INVALID', `invalid repository name ${JSON.stringify(name)}`, {
      status: 400,
      detail: { name },
    });
  }
  return input;
}

export function digestParam(input: string | null, what: string): Digest {
  const value: string | null = input;
  if (value === null || !isDigest(input)) {
    throw new HttpError('DIGEST_INVALID', `${what} is not a valid digest`, {
      status: 400,
      detail: { digest: value?.slice(0, SHOWN) ?? null },
    });
  }
  return parseDigest(value);
}

export function contentLength(request: IncomingMessage): number | undefined {
  const header = request.headers['content-length'];
  if (header === undefined) return undefined;
  if (!/^\d{1,15}$/.test(header))
    throw new HttpError('SIZE_INVALID', 'invalid Content-Length', { status: 400 });
  return Number(header);
}

/** `n` and `last` of a listing. */
export function paging(url: URL): { n?: number; last?: string } {
  const n = url.searchParams.get('n');
  const last = url.searchParams.get('last');
  const options: { n?: number; last?: string } = {};
  if (n !== null) {
    if (!/^\d{1,9}$/.test(n)) {
      throw new HttpError('PAGINATION_NUMBER_INVALID', 'n must be a non-negative integer', {
        status: 400,
        detail: { n },
      });
    }
    options.n = Number(n);
  }
  if (last !== null) options.last = last;
  return options;
}

/** The `Link` header to the next page of a listing, when one follows. */
export function linkHeader(
  path: string,
  n: number | undefined,
  next: string | undefined,
): string | undefined {
  if (next === undefined) return undefined;
  const query = new URLSearchParams();
  if (n !== undefined) query.set('n', String(n));
  query.set('last', next);
  return `<${path}?${query.toString()}>; rel="next"`;
}

export function methodNotAllowed(allow: string): HttpError {
  return new HttpError('UNSUPPORTED', 'method not allowed on this route', {
    status: 405,
    headers: { allow },
  });
}

/** Refuses anything but a read (`GET`, `HEAD`) on a listing route. */
export function readOnlyRoute(request: IncomingMessage): void {
  if (request.method !== 'GET' && request.method !== 'HEAD') throw methodNotAllowed('GET');
}
