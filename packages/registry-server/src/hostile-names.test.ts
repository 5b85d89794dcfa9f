// Names and references no registry accepts, sent by an anonymous client at the
// socket level, in every auth mode: the server answers each with an OCI error
// and keeps running. The server runs in a child process, so a crash is a dead
// process, not an error some test runner swallows.
import { type ChildProcess, spawn } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { createMemoryRegistry } from '@stowage/testing';
import bcrypt from 'bcryptjs';
import { afterAll, describe, expect, it } from 'vitest';
import { request } from '../test/raw.js';
import type { Authorizer } from './auth/types.js';
import { createRegistryHandler } from './handler.js';

const packageDir = join(import.meta.dirname, '..');

/** Starts the handler over a memory registry in a child process; `auth` picks the authorizer. */
async function startChild(
  auth: 'anonymous' | 'token' | 'htpasswd',
): Promise<{ port: number; child: ChildProcess; output: () => string }> {
  const { publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const script = `
    import { createServer } from 'node:http';
    import { createMemoryRegistry } from '@stowage/testing';
    import { createHtpasswdAuthorizer, createRegistryHandler, createTokenAuthorizer } from './src/index.ts';
    const mode = process.env.AUTH_MODE;
    const rules = [{ repository: 'public/**', anonymous: ['pull'] }];
    const auth =
      mode === 'token'
        ? createTokenAuthorizer({ realm: 'https://auth.example/token', service: 'registry.example',
            issuer: 'auth.example', keys: [process.env.TOKEN_KEY], rules })
        : mode === 'htpasswd'
          ? createHtpasswdAuthorizer({ realm: 'stowage', users: process.env.HTPASSWD, rules, workers: 1 })
          : undefined;
    const handler = createRegistryHandler({ registry: createMemoryRegistry(), ...(auth ? { auth } : {}) });
    const server = createServer((request, response) => void handler(request, response));
    server.listen(0, '127.0.0.1', () => process.stdout.write('port ' + server.address().port + '\\n'));
  `;
  const child = spawn(
    process.execPath,
    ['--conditions=@stowage/source', '--import', 'tsx', '--input-type=module', '-e', script],
    {
      cwd: packageDir,
      env: {
        ...process.env,
        AUTH_MODE: auth,
        TOKEN_KEY: publicKey.export({ type: 'spki', format: 'pem' }).toString(),
        HTPASSWD: `alice:${bcrypt.hashSync('secret', 4)}\n`,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let output = '';
  child.stderr?.on('data', (chunk: Buffer) => {
    output += chunk.toString();
  });
  const port = await new Promise<number>((resolve, reject) => {
    let text = '';
    child.stdout?.on('data', (chunk: Buffer) => {
      text += chunk.toString();
      const match = /port (\d+)/.exec(text);
      if (match) resolve(Number(match[1]));
    });
    child.once('exit', (code) => reject(new Error(`child exited ${code}: ${output}`)));
  });
  return { port, child, output: () => output };
}

function parse(answer: string): { status: number; headers: string; body: string } {
  const split = answer.indexOf('\r\n\r\n');
  const headers = answer.slice(0, split);
  return {
    status: Number(/^HTTP\/1\.1 (\d{3})/.exec(headers)?.[1] ?? 0),
    headers,
    body: answer.slice(split + 4),
  };
}

// What a client can put into a name or a reference: NUL, CR/LF, DEL, a control
// character, non-ASCII (UTF-8 and a lone latin-1 byte), each percent-encoded.
const BAD = [
  '%00',
  '%0d%0a',
  '%0D%0AX-Injected:%20yes',
  '%7f',
  '%01',
  '%1b',
  '%C4%80',
  '%e9',
  '%ff',
  '%E2%80%AE',
];
const DIGEST = `sha256:${'a'.repeat(64)}`;

function paths(): { method: string; path: string }[] {
  const out: { method: string; path: string }[] = [];
  for (const bad of BAD) {
    out.push(
      { method: 'GET', path: `/v2/x${bad}/tags/list` },
      { method: 'GET', path: `/v2/public/x${bad}/tags/list` },
      { method: 'GET', path: `/v2/${bad}/manifests/latest` },
      { method: 'HEAD', path: `/v2/x${bad}y/manifests/latest` },
      { method: 'GET', path: `/v2/public/app/manifests/v${bad}` },
      { method: 'DELETE', path: `/v2/x${bad}/manifests/${DIGEST}` },
      { method: 'GET', path: `/v2/x${bad}/blobs/${DIGEST}` },
      { method: 'GET', path: `/v2/public/app/blobs/sha256:${bad}` },
      { method: 'POST', path: `/v2/x${bad}/blobs/uploads/` },
      { method: 'POST', path: `/v2/public/app/blobs/uploads/?mount=${DIGEST}&from=x${bad}` },
      { method: 'PATCH', path: `/v2/public/app/blobs/uploads/id${bad}` },
      { method: 'GET', path: `/v2/x${bad}/referrers/${DIGEST}` },
      { method: 'GET', path: `/v2/_catalog?last=x${bad}&n=1` },
    );
  }
  return out;
}

const children: ChildProcess[] = [];
afterAll(() => {
  for (const child of children) child.kill('SIGKILL');
});

describe('names and references with control and non-ASCII characters', () => {
  for (const mode of ['token', 'htpasswd', 'anonymous'] as const) {
    it(`in ${mode} mode get an OCI error each, and the server keeps running`, async () => {
      const { port, child, output } = await startChild(mode);
      children.push(child);
      const failures: string[] = [];
      for (const { method, path } of paths()) {
        const answer = await request(
          port,
          `${method} ${path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`,
        );
        const { status, headers, body } = parse(answer);
        const label = `${method} ${path} -> ${status}`;
        // only the catalog may answer 200: `last` is a position in a sorted list, whatever its bytes
        const listed = path.startsWith('/v2/_catalog') && status === 200;
        if (!listed && (status < 400 || status >= 500)) {
          failures.push(`${label}: ${body.slice(0, 200)}`);
          continue;
        }
        // nothing from the path is ever echoed into a header
        if (/x-injected/i.test(headers)) failures.push(`${label}: header injected`);
        if (!/^content-type: application\/json/im.test(headers)) failures.push(`${label}: not JSON`);
        if (method === 'HEAD' || listed) continue;
        try {
          const code = (JSON.parse(body) as { errors: { code: unknown }[] }).errors[0]?.code;
          if (typeof code !== 'string') throw new Error('no code');
        } catch {
          failures.push(`${label}: not an OCI error body: ${body.slice(0, 200)}`);
        }
      }
      expect(failures, output()).toEqual([]);
      // an invalid name is refused for what it is, before any challenge for it is made
      const refused = parse(
        await request(port, 'GET /v2/x%00/tags/list HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'),
      );
      expect(refused.status).toBe(400);
      expect((JSON.parse(refused.body) as { errors: { code: string }[] }).errors[0]?.code).toBe(
        'NAME_INVALID',
      );
      // still alive, and still serving
      expect(child.exitCode).toBeNull();
      const ping = parse(await request(port, 'GET /v2/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'));
      expect(ping.status).toBe(mode === 'anonymous' ? 200 : 401);
      expect(output()).not.toMatch(/ERR_INVALID_CHAR|Unhandled|TypeError/);
    }, 60_000);
  }
});

describe('an error answer that cannot be sent as it is', () => {
  it('becomes a bare 500 OCI error, logged, and the handler never rejects', async () => {
    // an authorizer whose refusals carry header values Node refuses to send
    const bad: Authorizer = {
      async authorize(request) {
        const which = request.headers['x-which'];
        return {
          ok: false,
          status: which === 'retry' ? 429 : 401,
          code: which === 'retry' ? 'TOOMANYREQUESTS' : 'UNAUTHORIZED',
          message: 'no',
          ...(which === 'retry'
            ? { headers: { 'retry-after': '1\u0000' } }
            : { challenge: 'Basic realm="a\r\nX-Injected: yes"' }),
        };
      },
    };
    const errors: object[] = [];
    const handler = createRegistryHandler({
      registry: createMemoryRegistry(),
      auth: bad,
      logger: { info() {}, warn() {}, error: (object) => errors.push(object) },
    });
    const outcomes: Promise<'resolved' | 'rejected'>[] = [];
    const server = createServer((request, response) => {
      outcomes.push(
        handler(request, response).then(
          () => 'resolved' as const,
          () => 'rejected' as const,
        ),
      );
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as AddressInfo;
    try {
      for (const which of ['challenge', 'retry']) {
        for (const method of ['GET', 'HEAD']) {
          const answer = parse(
            await request(
              port,
              `${method} /v2/app/tags/list HTTP/1.1\r\nHost: x\r\nX-Which: ${which}\r\nConnection: close\r\n\r\n`,
            ),
          );
          expect(answer.status, `${method} ${which}`).toBe(500);
          expect(answer.headers).toMatch(/^content-type: application\/json/im);
          expect(answer.headers).toMatch(/^docker-distribution-api-version: registry\/2\.0/im);
          expect(answer.headers).not.toMatch(/x-injected|www-authenticate|retry-after/i);
          if (method === 'GET') {
            expect(JSON.parse(answer.body)).toEqual({
              errors: [{ code: 'UNKNOWN', message: 'internal error' }],
            });
          }
        }
      }
      expect(await Promise.all(outcomes)).toEqual(['resolved', 'resolved', 'resolved', 'resolved']);
      expect(errors).toHaveLength(4);
    } finally {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    }
  });
});
