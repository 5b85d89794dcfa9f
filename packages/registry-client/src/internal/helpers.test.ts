import { Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import { pipeline } from 'node:stream/promises';
import { digestOf, isStowageError, StowageError } from '@stowage/oci';
import { describe, expect, it } from 'vitest';
import { RegistryNetworkError } from '../errors.js';
import { resolveOptions } from '../options.js';
import { blobSource, collect, heldBackChunks, rechunk } from './body.js';
import { LengthStream, parseContentRange, resumableBody, SliceStream, skipBytes } from './download.js';
import { credentialHostKey, isLoopback, registryApiHost, stripRegistry } from './hosts.js';
import { HostLimiter } from './limiter.js';
import { nextLink } from './link.js';
import {
  decodeUploadId,
  encodeUploadId,
  offsetFromRange,
  relativeLocation,
  sessionKey,
} from './upload-id.js';

const bytes = (text: string) => new TextEncoder().encode(text);
async function* chunks(...parts: string[]) {
  for (const part of parts) yield bytes(part);
}
async function drain(source: AsyncIterable<Uint8Array>): Promise<string> {
  return Buffer.from(await collect(source)).toString();
}

describe('hosts', () => {
  it('normalizes registry names', () => {
    expect(stripRegistry('HTTPS://user:pw@Registry.Example:5000/v2/')).toBe('registry.example:5000');
    expect(registryApiHost('docker.io')).toBe('registry-1.docker.io');
    expect(registryApiHost('index.docker.io')).toBe('registry-1.docker.io');
    expect(credentialHostKey('https://index.docker.io/v1/')).toBe('docker.io');
    expect(isLoopback('localhost:5000')).toBe(true);
    expect(isLoopback('127.0.0.2')).toBe(true);
    expect(isLoopback('[::1]:5000')).toBe(true);
    expect(isLoopback('ghcr.io')).toBe(false);
  });

  it('resolves options: http for loopback and insecure hosts, mirrors normalized', () => {
    const options = resolveOptions({
      registry: 'docker.io',
      mirrors: ['mirror.example', 'index.docker.io'],
      insecure: ['mirror.example'],
    });
    expect(options.registry).toBe('registry-1.docker.io');
    expect(options.mirrors).toEqual(['mirror.example']);
    expect([...options.insecureHosts]).toEqual(['mirror.example']);
    expect([...resolveOptions({ registry: 'http://r.example' }).insecureHosts]).toEqual(['r.example']);
    expect([...resolveOptions({ registry: '127.0.0.1:5000' }).insecureHosts]).toEqual(['127.0.0.1:5000']);
    expect(() => resolveOptions({ registry: '' })).toThrow(/registry/);
    expect(() => resolveOptions({ registry: 'r', chunkSize: 0 })).toThrow(/chunkSize/);
  });
});

describe('Link header', () => {
  it('finds rel="next" among several links', () => {
    expect(nextLink('</v2/_catalog?last=b&n=2>; rel="next"')).toBe('/v2/_catalog?last=b&n=2');
    expect(nextLink('<https://x/a>; rel="prev", <https://x/b?last=c>; rel=next')).toBe('https://x/b?last=c');
    expect(nextLink('<https://x/a>; rel="prev"')).toBeUndefined();
    expect(nextLink(undefined)).toBeUndefined();
  });
});

describe('upload ids', () => {
  it('round-trips location and start time, URL-safe', () => {
    const id = encodeUploadId({ location: '/v2/a/blobs/uploads/u1?_state=abc%3D%3D', startedAt: 1234 });
    expect(id).toMatch(/^[A-Za-z0-9_-]+$/);
    expect(decodeUploadId(id)).toEqual({
      location: '/v2/a/blobs/uploads/u1?_state=abc%3D%3D',
      startedAt: 1234,
    });
  });

  it('refuses ids it did not issue', () => {
    expect(decodeUploadId('')).toBeUndefined();
    expect(decodeUploadId('not/base64')).toBeUndefined();
    expect(decodeUploadId(Buffer.from('[1,"javascript:alert(1)"]').toString('base64url'))).toBeUndefined();
    expect(decodeUploadId(Buffer.from('{"a":1}').toString('base64url'))).toBeUndefined();
  });

  it('keeps same-origin locations relative and keys sessions without the rotating query', () => {
    expect(relativeLocation('http://r:5000/v2/a/blobs/uploads/u?_state=1', 'http://r:5000')).toBe(
      '/v2/a/blobs/uploads/u?_state=1',
    );
    expect(relativeLocation('https://uploads.example/u?x=1', 'http://r:5000')).toBe(
      'https://uploads.example/u?x=1',
    );
    expect(sessionKey('/v2/a/blobs/uploads/u?_state=1', 'http://r')).toBe(
      sessionKey('/v2/a/blobs/uploads/u?_state=2', 'http://r'),
    );
  });

  it('reads Range offsets, resolving the 0-0 ambiguity with what is known', () => {
    expect(offsetFromRange('0-99')).toBe(100);
    expect(offsetFromRange('bytes=0-9')).toBe(10);
    expect(offsetFromRange('0-0')).toBe(0);
    expect(offsetFromRange('0-0', 1)).toBe(1);
    expect(offsetFromRange('0--1')).toBe(0);
    expect(offsetFromRange('garbage')).toBeUndefined();
    expect(offsetFromRange(undefined)).toBeUndefined();
  });
});

describe('upload bodies', () => {
  it('verifies while streaming and holds the last chunk back until the digest is proven', async () => {
    const digest = digestOf('abcdef');
    expect(await drain(heldBackChunks(chunks('ab', 'cd', 'ef'), { digest, size: 6 }))).toBe('abcdef');
    const seen: string[] = [];
    const bad = heldBackChunks(chunks('ab', 'cd', 'XX'), { digest });
    const error = await (async () => {
      for await (const chunk of bad) seen.push(Buffer.from(chunk).toString());
    })().catch((e: unknown) => e);
    expect(isStowageError(error, 'DIGEST_INVALID')).toBe(true);
    expect(seen).toEqual(['ab', 'cd']); // the wrong last chunk never left
    await expect(drain(heldBackChunks(chunks('abcdefg'), { digest, size: 6 }))).rejects.toMatchObject({
      code: 'SIZE_INVALID',
    });
    await expect(drain(heldBackChunks(chunks('abc'), { digest, size: 6 }))).rejects.toMatchObject({
      code: 'SIZE_INVALID',
    });
  });

  it('regroups into fixed-size chunks', async () => {
    const out: string[] = [];
    for await (const chunk of rechunk(chunks('abc', 'defgh', '', 'ij'), 4)) out.push(chunk.toString());
    expect(out).toEqual(['abcd', 'efgh', 'ij']);
  });

  it('knows which bodies can be read again', async () => {
    expect(blobSource(bytes('x')).replayable).toBe(true);
    const factory = blobSource(() => chunks('a', 'b'));
    expect(factory.replayable).toBe(true);
    expect(await drain(factory.open())).toBe('ab');
    expect(await drain(factory.open())).toBe('ab');
    const stream = blobSource(chunks('a'));
    expect(stream.replayable).toBe(false);
    stream.open();
    expect(() => stream.open()).toThrow();
    const readable = Readable.from(['x']);
    blobSource(readable).discard();
    expect(readable.destroyed).toBe(true);
  });
});

describe('download helpers', () => {
  const slept: number[] = [];
  const clock = { now: () => 0, sleep: async (ms: number) => void slept.push(ms) };
  const policy = { retries: 2, minDelayMs: 0, maxDelayMs: 0, maxRetryAfterMs: 0, clock };
  const describeRequest = { method: 'GET', url: 'http://r/v2/a/blobs/x' };

  async function* breaking(text: string, breakAfter: number) {
    yield bytes(text.slice(0, breakAfter));
    throw Object.assign(new Error('other side closed'), { code: 'UND_ERR_SOCKET' });
  }

  it('resumes a broken body from the byte reached', async () => {
    const full = 'hello resumable world';
    const reopened: number[] = [];
    const body = resumableBody(
      { body: breaking(full, 5), destroy: () => {} },
      {
        expected: full.length,
        policy,
        describe: describeRequest,
        reopen: async (received) => {
          reopened.push(received);
          return {
            body: received < 10 ? breaking(full.slice(received), 5) : chunks(full.slice(received)),
            destroy: () => {},
          };
        },
      },
    );
    slept.length = 0;
    expect(await drain(body)).toBe(full);
    expect(reopened).toEqual([5, 10]);
    expect(slept).toEqual([0, 0]); // one wait before each resume, on the policy's clock
  });

  it('treats a body that ends short as broken, and gives up after the retries', async () => {
    const body = resumableBody(
      { body: chunks('abc'), destroy: () => {} },
      {
        expected: 10,
        policy,
        describe: describeRequest,
        reopen: async () => ({ body: chunks(), destroy: () => {} }),
      },
    );
    await expect(drain(body)).rejects.toBeInstanceOf(RegistryNetworkError);
  });

  it('does not resume errors that are not transient', async () => {
    async function* failing(): AsyncGenerator<Uint8Array> {
      yield bytes('a');
      throw new StowageError('DENIED', 'refused');
    }
    let reopened = 0;
    const body = resumableBody(
      { body: failing(), destroy: () => {} },
      {
        policy,
        describe: describeRequest,
        reopen: async () => {
          reopened++;
          return { body: chunks(), destroy: () => {} };
        },
      },
    );
    await expect(drain(body)).rejects.toMatchObject({ code: 'DENIED' });
    expect(reopened).toBe(0);
  });

  it('slices, skips and length-checks', async () => {
    expect(await drain(skipBytes(chunks('abc', 'def'), 4))).toBe('ef');
    const sliced = await buffer(
      Readable.from([Buffer.from('abc'), Buffer.from('def')]).pipe(new SliceStream(2, 3)),
    );
    expect(sliced.toString()).toBe('cd');
    await expect(
      pipeline(Readable.from([Buffer.from('abc')]), new LengthStream(4), async function* (s) {
        for await (const _ of s) yield _;
      }),
    ).rejects.toMatchObject({ code: 'SIZE_INVALID' });
    expect(parseContentRange('bytes 2-5/10')).toEqual({ start: 2, end: 5, total: 10 });
    expect(parseContentRange('bytes 2-5/*')).toEqual({ start: 2, end: 5, total: undefined });
    expect(parseContentRange('bytes 5-2/10')).toBeUndefined();
  });
});

describe('HostLimiter', () => {
  it('admits at most maxConcurrent and hands slots to waiters in order', async () => {
    const limiter = new HostLimiter(2);
    const a = await limiter.acquire();
    const b = await limiter.acquire();
    const order: string[] = [];
    const c = limiter.acquire().then((release) => {
      order.push('c');
      return release;
    });
    const d = limiter.acquire().then((release) => {
      order.push('d');
      return release;
    });
    await Promise.resolve();
    expect(limiter.active).toBe(2);
    expect(limiter.queued).toBe(2);
    a();
    a(); // releasing twice frees one slot only
    (await c)();
    b();
    (await d)();
    expect(order).toEqual(['c', 'd']);
    expect(limiter.active).toBe(0);
  });

  it('lets an aborted waiter leave the queue', async () => {
    const limiter = new HostLimiter(1);
    const held = await limiter.acquire();
    const controller = new AbortController();
    const waiting = limiter.acquire(controller.signal);
    controller.abort(new Error('cancelled'));
    await expect(waiting).rejects.toThrow('cancelled');
    expect(limiter.queued).toBe(0);
    held();
    expect(limiter.active).toBe(0);
  });
});
