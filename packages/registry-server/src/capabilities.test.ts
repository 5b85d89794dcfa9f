// `Stowage-Capabilities` on the wire: every answer to `/v2/` carries what the server serves over its
// backend, asked of the backend once per handler.
import { createServer } from 'node:http';
import { fullCapabilities, type Registry, type RegistryCapabilities } from '@stowage/oci';
import { createMemoryRegistry } from '@stowage/testing';
import { afterEach, describe, expect, it } from 'vitest';
import { close, listen, parseAnswer, request } from '../test/raw.js';
import { createRulesAuthorizer } from './auth/anonymous.js';
import { createHtpasswdAuthorizer } from './auth/htpasswd.js';
import type { Authorizer } from './auth/types.js';
import { encodeCapabilities, servedCapabilities } from './capabilities.js';
import { createRegistryHandler, type RegistryHandlerOptions } from './handler.js';

/** A backend that claims `claimed`, counting how often it is asked. */
function claiming(claimed: RegistryCapabilities): { registry: Registry; asked: () => number } {
  const base = createMemoryRegistry();
  let count = 0;
  const registry = new Proxy(base, {
    get(target, key, receiver) {
      if (key === 'capabilities') {
        return async () => {
          count++;
          return claimed;
        };
      }
      return Reflect.get(target, key, receiver);
    },
  });
  return { registry, asked: () => count };
}

const servers: ReturnType<typeof createServer>[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((server) => close(server)));
});

async function start(options: RegistryHandlerOptions): Promise<number> {
  const handler = createRegistryHandler(options);
  const server = createServer((req, res) => void handler(req, res));
  servers.push(server);
  return listen(server);
}

async function raw(port: number, head: string) {
  return parseAnswer(await request(port, `${head}\r\nHost: x\r\nConnection: close\r\n\r\n`));
}

/** The names the header lists, and its referrers entry. */
function parse(header: string | undefined): { names: string[]; referrers: string | undefined } {
  const parts = (header ?? '').split(', ');
  return {
    names: parts.filter((part) => !part.includes('=')),
    referrers: parts.find((part) => part.startsWith('referrers='))?.slice('referrers='.length),
  };
}

describe('Stowage-Capabilities', () => {
  it('is sent with every answer to /v2/, in the exact format, without lock or garbageCollect', async () => {
    const port = await start({ registry: claiming(fullCapabilities).registry });
    const expected =
      'catalog, catalogPaging, tagPaging, deleteTag, deleteManifest, deleteBlob, mount, anonymousMount, ' +
      'uploadSessions, uploadStatus, outOfOrderChunkRefusal, ranges, sha512, sparseIndex, referrers=api';
    for (const head of [
      'GET /v2/ HTTP/1.1',
      'HEAD /v2/ HTTP/1.1',
      'GET /v2 HTTP/1.1',
      'POST /v2/ HTTP/1.1',
    ]) {
      const answer = await raw(port, head);
      expect(answer.headers['stowage-capabilities'], head).toBe(expected);
    }
    expect((await raw(port, 'GET /v2/ HTTP/1.1')).status).toBe(200);
    expect((await raw(port, 'POST /v2/ HTTP/1.1')).status).toBe(405);
    // only the ping says it
    expect((await raw(port, 'GET /v2/_catalog HTTP/1.1')).headers['stowage-capabilities']).toBeUndefined();
    expect((await raw(port, 'GET /v2/a/tags/list HTTP/1.1')).headers['stowage-capabilities']).toBeUndefined();
  });

  it('is sent with a 401 challenge too, and with a 429 of the authorizer', async () => {
    const basic = createHtpasswdAuthorizer({ realm: 'test', users: '' });
    const port = await start({ registry: createMemoryRegistry(), auth: basic });
    const challenge = await raw(port, 'GET /v2/ HTTP/1.1');
    expect(challenge.status).toBe(401);
    expect(challenge.headers['www-authenticate']).toMatch(/^Basic realm="test"/);
    expect(JSON.parse(challenge.body).errors[0].code).toBe('UNAUTHORIZED');
    const header = challenge.headers['stowage-capabilities'];
    expect(header).toBeDefined();
    // behind access control a mount without `from` is never done
    expect(parse(header).names).not.toContain('anonymousMount');
    expect(parse(header).names).toContain('mount');

    const busy: Authorizer = {
      async authorize() {
        return { ok: false, status: 429, code: 'TOOMANYREQUESTS', message: 'busy', retryAfterMs: 2500 };
      },
    };
    const limited = await raw(
      await start({ registry: createMemoryRegistry(), auth: busy }),
      'GET /v2/ HTTP/1.1',
    );
    expect(limited.status).toBe(429);
    expect(limited.headers['retry-after']).toBe('3');
    expect(limited.headers['stowage-capabilities']).toMatch(/referrers=/);
  });

  it('asks the backend once per handler, when first needed, and asks again after a failure', async () => {
    const { registry, asked } = claiming(fullCapabilities);
    const port = await start({ registry });
    expect(asked()).toBe(0);
    await raw(port, 'GET /v2/a/tags/list HTTP/1.1');
    expect(asked()).toBe(0);
    await Promise.all([raw(port, 'GET /v2/ HTTP/1.1'), raw(port, 'GET /v2/ HTTP/1.1')]);
    await raw(port, 'HEAD /v2/ HTTP/1.1');
    expect(asked()).toBe(1);

    let failures = 1;
    const flaky = new Proxy(createMemoryRegistry(), {
      get(target, key, receiver) {
        if (key === 'capabilities') {
          return async () => {
            if (failures-- > 0) throw new Error('not yet');
            return fullCapabilities;
          };
        }
        return Reflect.get(target, key, receiver);
      },
    });
    const flakyPort = await start({ registry: flaky });
    const failed = await raw(flakyPort, 'GET /v2/ HTTP/1.1');
    expect(failed.status).toBe(500);
    expect(JSON.parse(failed.body)).toEqual({ errors: [{ code: 'UNKNOWN', message: 'internal error' }] });
    const answered = await raw(flakyPort, 'GET /v2/ HTTP/1.1');
    expect(answered.status).toBe(200);
    expect(answered.headers['stowage-capabilities']).toMatch(/referrers=api$/);
  });

  it("follows the backend and the server's switches", async () => {
    const tagSchema: RegistryCapabilities = {
      ...fullCapabilities,
      referrers: 'tag-schema',
      deleteTag: false,
      ranges: false,
      sparseIndex: false,
    };
    const header = (await raw(await start({ registry: claiming(tagSchema).registry }), 'GET /v2/ HTTP/1.1'))
      .headers['stowage-capabilities'];
    // the server answers the referrers API itself, from the backend's listReferrers
    expect(parse(header).referrers).toBe('api');
    expect(parse(header).names).not.toContain('deleteTag');
    expect(parse(header).names).not.toContain('ranges');
    expect(parse(header).names).not.toContain('sparseIndex');
    expect(parse(header).names).toContain('deleteManifest');

    const none = { ...fullCapabilities, referrers: 'none' } as const;
    expect(
      (await raw(await start({ registry: claiming(none).registry }), 'GET /v2/ HTTP/1.1')).headers[
        'stowage-capabilities'
      ],
    ).toMatch(/referrers=none$/);

    const noDeletes = await raw(
      await start({ registry: claiming(fullCapabilities).registry, allowDelete: false }),
      'GET /v2/ HTTP/1.1',
    );
    for (const name of ['deleteTag', 'deleteManifest', 'deleteBlob']) {
      expect(parse(noDeletes.headers['stowage-capabilities']).names, name).not.toContain(name);
    }
    const readOnly = parse(
      (
        await raw(
          await start({ registry: claiming(fullCapabilities).registry, readOnly: true }),
          'GET /v2/ HTTP/1.1',
        )
      ).headers['stowage-capabilities'],
    ).names;
    for (const name of [
      'deleteTag',
      'deleteManifest',
      'deleteBlob',
      'mount',
      'anonymousMount',
      'sparseIndex',
    ]) {
      expect(readOnly, name).not.toContain(name);
    }
    expect(readOnly).toContain('catalog');
    // rules without credentials are access control too
    const ruled = parse(
      (
        await raw(
          await start({ registry: claiming(fullCapabilities).registry, auth: createRulesAuthorizer([]) }),
          'GET /v2/ HTTP/1.1',
        )
      ).headers['stowage-capabilities'],
    ).names;
    expect(ruled).not.toContain('anonymousMount');
  });

  it('lists a backend without upload sessions as having them (the shared ones)', async () => {
    const bare = {
      ...fullCapabilities,
      uploadSessions: false,
      uploadStatus: false,
      outOfOrderChunkRefusal: false,
    };
    const base = createMemoryRegistry();
    const registry = new Proxy(base, {
      get(target, key, receiver) {
        if (key === 'capabilities') return async () => bare;
        if (
          ['startUpload', 'appendUpload', 'getUpload', 'finishUpload', 'cancelUpload'].includes(String(key))
        )
          return undefined;
        return Reflect.get(target, key, receiver);
      },
    });
    const names = parse(
      (await raw(await start({ registry }), 'GET /v2/ HTTP/1.1')).headers['stowage-capabilities'],
    ).names;
    expect(names).toEqual(
      expect.arrayContaining(['uploadSessions', 'uploadStatus', 'outOfOrderChunkRefusal']),
    );
  });

  it('encodes exactly the true booleans in declaration order, then referrers', () => {
    const none = Object.fromEntries(
      Object.entries(fullCapabilities).map(([key, value]) => [
        key,
        typeof value === 'boolean' ? false : 'none',
      ]),
    ) as unknown as RegistryCapabilities;
    expect(encodeCapabilities(none)).toBe('referrers=none');
    expect(encodeCapabilities({ ...none, sha512: true, catalog: true, referrers: 'tag-schema' })).toBe(
      'catalog, sha512, referrers=tag-schema',
    );
    expect(
      servedCapabilities(fullCapabilities, { openAccess: true, readOnly: false, allowDelete: true }),
    ).toEqual({ ...fullCapabilities, lock: false, garbageCollect: false });
  });
});
