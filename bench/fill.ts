// Filling a registry over its HTTP API for a bench (the fill is not what is
// measured): one image's blobs and manifest, many tags of it, many
// repositories holding it. What docker-registry 2.8 takes too (a POST, then
// the bytes PUT to the session; mounts from the seeded repository).
import type { RandomImage } from '@stowage/testing';
import { Pool } from 'undici';
import { startStowageServer } from './lib.js';

export interface HttpTarget {
  readonly name: string;
  readonly port: number;
  readonly pool: Pool;
}

export async function call(
  target: HttpTarget,
  method: 'GET' | 'PUT' | 'POST' | 'HEAD',
  path: string,
  options: { body?: Uint8Array; headers?: Record<string, string>; expect: number },
): Promise<void> {
  const response = await target.pool.request({
    method,
    path,
    ...(options.body ? { body: options.body } : {}),
    ...(options.headers ? { headers: options.headers } : {}),
  });
  const text = await response.body.text();
  if (response.statusCode !== options.expect) {
    throw new Error(`${target.name} ${method} ${path}: ${response.statusCode} ${text.slice(0, 200)}`);
  }
}

export async function inParallel(
  count: number,
  limit: number,
  job: (i: number) => Promise<unknown>,
): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: limit }, async () => {
      while (next < count) await job(next++);
    }),
  );
}

/** The image's blobs into `repository`, and its manifest under `tag`. */
export async function seedImage(
  target: HttpTarget,
  repository: string,
  image: RandomImage,
  tag: string,
): Promise<void> {
  for (const blob of image.blobs) {
    const started = await target.pool.request({ method: 'POST', path: `/v2/${repository}/blobs/uploads/` });
    await started.body.text();
    const location = started.headers.location;
    if (started.statusCode !== 202 || typeof location !== 'string') {
      throw new Error(`${target.name}: starting an upload answered ${started.statusCode}`);
    }
    const url = new URL(location, `http://127.0.0.1:${target.port}`);
    url.searchParams.set('digest', blob.descriptor.digest);
    await call(target, 'PUT', `${url.pathname}${url.search}`, {
      body: blob.bytes,
      headers: { 'content-type': 'application/octet-stream' },
      expect: 201,
    });
  }
  await tagImage(target, repository, image, tag);
}

export function tagImage(
  target: HttpTarget,
  repository: string,
  image: RandomImage,
  tag: string,
): Promise<void> {
  return call(target, 'PUT', `/v2/${repository}/manifests/${tag}`, {
    body: image.manifest.bytes,
    headers: { 'content-type': image.manifest.mediaType },
    expect: 201,
  });
}

/** `count` repositories `<prefix><i>`, each holding the image (mounted from `from`) under `v1`. */
export function fillRepositories(
  target: HttpTarget,
  options: { prefix: string; count: number; from: string; image: RandomImage },
): Promise<void> {
  const { prefix, count, from, image } = options;
  return inParallel(count, 32, async (i) => {
    const repository = `${prefix}${i}`;
    for (const blob of image.blobs) {
      await call(
        target,
        'POST',
        `/v2/${repository}/blobs/uploads/?mount=${blob.descriptor.digest}&from=${from}`,
        {
          expect: 201,
        },
      );
    }
    await tagImage(target, repository, image, 'v1');
  });
}

/** A stowage-server from source in its own process, with a pool of 32 connections to fill it through. */
export interface ServerTarget extends HttpTarget {
  readonly pid?: number;
  stop(): Promise<void>;
}

export async function startServerTarget(name: string, args: readonly string[]): Promise<ServerTarget> {
  const server = await startStowageServer({ args });
  const pool = new Pool(`http://127.0.0.1:${server.port}`, { connections: 32 });
  return {
    name,
    port: server.port,
    ...(server.pid ? { pid: server.pid } : {}),
    pool,
    stop: async () => {
      await pool.close();
      await server.stop();
    },
  };
}
