import { execFile, spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { request } from 'node:http';
import { get as httpsGet } from 'node:https';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { promisify } from 'node:util';
import { randomBlob, requirePeers, selfSignedCertificate } from '@stowage/testing';
import { pino } from 'pino';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { loadConfig } from './config.js';
import { connectionsWithin, openFileLimit, startServer } from './server.js';

const _run = promisify(execFile);
const dirs: string[] = [];
afterAll(async () => {
  for (const dir of dirs) await rm(dir, { recursive: true, force: true });
});

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'stowage-server-app-'));
  dirs.push(dir);
  return dir;
}

function captureLogs() {
  const lines: Record<string, unknown>[] = [];
  const stream = new Writable({
    write(chunk, _encoding, done) {
      for (const line of chunk.toString().split('\n')) if (line) lines.push(JSON.parse(line));
      done();
    },
  });
  return { lines, logger: pino({ level: 'info' }, stream) };
}

async function start(overrides: Record<string, unknown> = {}) {
  const root = await tempDir();
  const config = await loadConfig({
    overrides: { 'storage.filesystem.rootdirectory': root, 'http.addr': '127.0.0.1:0', ...overrides },
  });
  const logs = captureLogs();
  const running = await startServer(config, { logger: logs.logger });
  return { running, logs, root };
}

describe('stowage-server', () => {
  it('serves the registry, health, readiness and Prometheus metrics, logging each request as JSON', async () => {
    const { running, logs } = await start();
    try {
      expect((await fetch(`${running.url}/healthz`)).status).toBe(200);
      expect((await fetch(`${running.url}/readyz`)).status).toBe(200);
      expect((await fetch(`${running.url}/v2/`)).status).toBe(200);
      const blob = randomBlob(2048);
      const put = await fetch(`${running.url}/v2/app/blobs/uploads/?digest=${blob.descriptor.digest}`, {
        method: 'POST',
        body: blob.bytes,
      });
      expect(put.status).toBe(201);
      const got = await fetch(`${running.url}/v2/app/blobs/${blob.descriptor.digest}`);
      expect(got.status).toBe(200);
      expect((await got.arrayBuffer()).byteLength).toBe(2048);
      // a request is logged and counted when the server is done with it (for a blob, once its
      // file is closed, which can be after the client has every byte)
      await vi.waitFor(() =>
        expect(logs.lines.some((l) => l.msg === 'request' && l.route === 'blob')).toBe(true),
      );
      expect((await fetch(`${running.url}/v2/app/manifests/nope`)).status).toBe(404);
      const metrics = await (await fetch(`${running.url}/metrics`)).text();
      expect(metrics).toContain('stowage_http_requests_total{route="ping",method="GET",status="200"} 1');
      expect(metrics).toContain('stowage_http_requests_total{route="manifest",method="GET",status="404"} 1');
      expect(metrics).toContain('stowage_http_received_bytes_total{route="uploads"} 2048');
      expect(metrics).toContain('stowage_http_sent_bytes_total{route="blob"} 2048');
      expect(metrics).toMatch(
        /stowage_http_request_duration_seconds_bucket\{route="blob",method="GET",le="\+Inf"\} 1/,
      );
      const requests = logs.lines.filter((line) => line.msg === 'request');
      expect(requests.map((line) => line.route)).toEqual(['ping', 'uploads', 'blob', 'manifest']);
      for (const line of requests) expect(line.requestId).toMatch(/.+/);
      // the upload gauge follows a session from start to finish
      const gauge = async () =>
        /^stowage_uploads_in_progress (\d+)$/m.exec(
          await (await fetch(`${running.url}/metrics`)).text(),
        )?.[1];
      expect(await gauge()).toBe('0');
      const session = await fetch(`${running.url}/v2/app/blobs/uploads/`, { method: 'POST' });
      expect(session.status).toBe(202);
      expect(await gauge()).toBe('1');
      const chunked = randomBlob(512);
      const done = await fetch(
        `${running.url}${session.headers.get('location')}?digest=${chunked.descriptor.digest}`,
        {
          method: 'PUT',
          body: chunked.bytes,
        },
      );
      expect(done.status).toBe(201);
      expect(await gauge()).toBe('0');
    } finally {
      await running.close();
    }
  });

  it('lets an upload in flight finish when it shuts down, and refuses new work', async () => {
    const { running } = await start({ 'http.draintimeout': '10s' });
    const session = await fetch(`${running.url}/v2/app/blobs/uploads/`, { method: 'POST' });
    const location = session.headers.get('location') as string;
    const port = Number(new URL(running.url).port);
    const blob = randomBlob(64 * 1024);
    // a PATCH whose body arrives in two halves, with the shutdown in between
    const answered = new Promise<number>((resolve, reject) => {
      const req = request(
        {
          host: '127.0.0.1',
          port,
          method: 'PATCH',
          path: location,
          headers: { 'content-length': blob.bytes.byteLength },
        },
        (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        },
      );
      req.on('error', reject);
      req.write(blob.bytes.subarray(0, 32 * 1024));
      setTimeout(() => req.end(blob.bytes.subarray(32 * 1024)), 300);
    });
    // a readiness probe whose request line is in before the shutdown, and its end after
    const probe = connect(port, '127.0.0.1');
    let probed = '';
    probe.setEncoding('latin1');
    probe.on('data', (chunk: string) => {
      probed += chunk;
    });
    const probeClosed = new Promise<void>((resolve) => probe.once('close', () => resolve()));
    probe.on('error', () => {});
    await new Promise<void>((resolve) => probe.write('GET /readyz HTTP/1.1\r\nHost: x\r\n', () => resolve()));
    await new Promise((resolve) => setTimeout(resolve, 100));
    const closed = running.close();
    probe.write('\r\n');
    expect(await answered).toBe(202);
    await probeClosed;
    expect(probed).toMatch(/^HTTP\/1\.1 503 /);
    expect(probed).toMatch(/\r\nretry-after: 1\r\n/i);
    await closed;
    await expect(fetch(`${running.url}/v2/`)).rejects.toThrow();
  });

  it('purges stale upload sessions periodically', async () => {
    const { running } = await start({
      'storage.maintenance.uploadpurging': { enabled: true, age: '50ms', interval: '100ms' },
    });
    try {
      const started = await fetch(`${running.url}/v2/app/blobs/uploads/`, { method: 'POST' });
      const location = started.headers.get('location') as string;
      const uploads = join(running.imageStore?.root ?? '', '.stowage/uploads');
      const { readdir } = await import('node:fs/promises');
      expect((await readdir(uploads)).length).toBe(1);
      expect(running.metrics.uploadsInProgress).toBe(1);
      await new Promise((resolve) => setTimeout(resolve, 400));
      expect(await readdir(uploads)).toEqual([]);
      // the purged session left the gauge before anyone asked for it again
      expect(running.metrics.uploadsInProgress).toBe(0);
      expect((await fetch(`${running.url}${location}`)).status).toBe(404);
    } finally {
      await running.close();
    }
  });

  it('counts a session that a refused finishing PUT ends as no longer in progress', async () => {
    const { running } = await start();
    try {
      const blob = randomBlob(300);
      const session = await fetch(`${running.url}/v2/app/blobs/uploads/`, { method: 'POST' });
      const location = `${running.url}${session.headers.get('location')}`;
      expect(running.metrics.uploadsInProgress).toBe(1);
      // the image store ends a session whose content does not match the digest
      const wrong = await fetch(`${location}?digest=${randomBlob(10).descriptor.digest}`, {
        method: 'PUT',
        body: blob.bytes,
      });
      expect(wrong.status).toBe(400);
      expect(((await wrong.json()) as { errors: { code: string }[] }).errors[0]?.code).toBe('DIGEST_INVALID');
      expect(running.metrics.uploadsInProgress).toBe(0);
      expect((await fetch(location)).status).toBe(404);
      // a cancelled one too
      const cancelled = await fetch(`${running.url}/v2/app/blobs/uploads/`, { method: 'POST' });
      expect(running.metrics.uploadsInProgress).toBe(1);
      const cancel = await fetch(`${running.url}${cancelled.headers.get('location')}`, { method: 'DELETE' });
      expect(cancel.status).toBe(204);
      expect(running.metrics.uploadsInProgress).toBe(0);
      expect(await (await fetch(`${running.url}/metrics`)).text()).toContain('stowage_uploads_in_progress 0');
    } finally {
      await running.close();
    }
  });

  it('refuses writes in read-only mode and deletes when they are disabled', async () => {
    const readOnly = await start({ 'storage.maintenance.readonly.enabled': true });
    const noDelete = await start({ 'storage.delete.enabled': false });
    try {
      expect((await fetch(`${readOnly.running.url}/v2/a/blobs/uploads/`, { method: 'POST' })).status).toBe(
        405,
      );
      const refused = await fetch(`${noDelete.running.url}/v2/a/manifests/v1`, { method: 'DELETE' });
      expect(refused.status).toBe(405);
      expect(((await refused.json()) as { errors: { code: string }[] }).errors[0]?.code).toBe('UNSUPPORTED');
    } finally {
      await readOnly.running.close();
      await noDelete.running.close();
    }
  });
});

/** Raw HTTP on a fresh connection: what the server sent until it closed the connection. */
function rawExchange(
  url: string,
  data: string,
  trickleMs?: number,
): Promise<{ status: number; headers: Record<string, string>; body: string; text: string }> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = connect({ host: hostname, port: Number(port), allowHalfOpen: true });
    let text = '';
    const trickle = trickleMs
      ? setInterval(() => {
          if (socket.writable) socket.write('x');
        }, trickleMs)
      : undefined;
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`the connection was not closed; got ${JSON.stringify(text.slice(0, 200))}`));
    }, 30_000);
    socket.setEncoding('latin1');
    socket.on('data', (chunk: string) => {
      text += chunk;
    });
    socket.on('error', () => {});
    socket.on('end', () => socket.end());
    socket.on('close', () => {
      clearTimeout(timer);
      clearInterval(trickle);
      const end = text.indexOf('\r\n\r\n');
      const headers: Record<string, string> = {};
      for (const line of text.slice(0, Math.max(0, end)).split('\r\n').slice(1)) {
        const colon = line.indexOf(':');
        headers[line.slice(0, colon).toLowerCase()] = line.slice(colon + 1).trim();
      }
      const status = Number(/^HTTP\/1\.1 (\d{3}) /.exec(text)?.[1] ?? 0);
      resolve({ status, headers, body: end < 0 ? '' : text.slice(end + 4), text });
    });
    socket.write(data);
  });
}

function ociCode(body: string): string | undefined {
  return (JSON.parse(body) as { errors: { code: string }[] }).errors[0]?.code;
}

describe('stowage-server at the connection level', () => {
  it("answers what Node's parser refuses with OCI errors, accepts absolute-form targets, and keeps serving", async () => {
    const { running } = await start();
    try {
      const nul = await rawExchange(running.url, 'GET /v2/x\u0000/tags/list HTTP/1.1\r\nHost: h\r\n\r\n');
      expect(nul.status).toBe(400);
      expect(nul.headers['content-type']).toBe('application/json');
      expect(nul.headers['docker-distribution-api-version']).toBe('registry/2.0');
      expect(ociCode(nul.body)).toBe('UNSUPPORTED');
      const proxy = await rawExchange(
        running.url,
        'CONNECT example.com:443 HTTP/1.1\r\nHost: example.com\r\n\r\n',
      );
      expect(proxy.status).toBe(405);
      expect(ociCode(proxy.body)).toBe('UNSUPPORTED');
      const absolute = await rawExchange(
        running.url,
        'GET http://registry.example/healthz HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n',
      );
      expect(absolute.status).toBe(200);
      expect(absolute.body).toBe('ok\n');
      expect((await fetch(`${running.url}/v2/`)).status).toBe(200);
    } finally {
      await running.close();
    }
  });

  it('cuts a body slower than limits.minbodyrate, and serves an honest upload meanwhile', async () => {
    const { running, logs } = await start({ 'limits.minbodyrate': '1KiB', 'limits.minbodyratewindow': '1s' });
    try {
      const session = await fetch(`${running.url}/v2/app/blobs/uploads/`, { method: 'POST' });
      const location = session.headers.get('location') as string;
      const slow = rawExchange(
        running.url,
        `PATCH ${location} HTTP/1.1\r\nHost: h\r\nContent-Length: 100000\r\n\r\n`,
        200,
      );
      const blob = randomBlob(4096);
      const pushed = await fetch(`${running.url}/v2/app/blobs/uploads/?digest=${blob.descriptor.digest}`, {
        method: 'POST',
        body: blob.bytes,
      });
      expect(pushed.status).toBe(201);
      const cut = await slow;
      expect(cut.status).toBe(408);
      expect(cut.headers.connection).toBe('close');
      expect(ociCode(cut.body)).toBe('BLOB_UPLOAD_INVALID');
      expect((await fetch(`${running.url}/healthz`)).status).toBe(200);
      // the handler's read of that body ended too: the request is logged (as the 408 it got), not left hanging
      let patch: Record<string, unknown> | undefined;
      for (let i = 0; i < 200 && !patch; i++) {
        patch = logs.lines.find((line) => line.msg === 'request' && line.method === 'PATCH');
        if (!patch) await new Promise((resolve) => setTimeout(resolve, 25));
      }
      expect(patch?.status).toBe(408);
      expect(logs.lines.filter((line) => Number(line.level) >= 50)).toEqual([]);
    } finally {
      await running.close();
    }
  });

  it('closes connections beyond http.maxconnections at once, with a warning, while the others keep working', async () => {
    const { running, logs } = await start({ 'http.maxconnections': 3 });
    try {
      expect(running.server.maxConnections).toBe(3);
      const { hostname, port } = new URL(running.url);
      const held = await Promise.all(
        Array.from(
          { length: 3 },
          () =>
            new Promise<ReturnType<typeof connect>>((resolve) => {
              const socket = connect({ host: hostname, port: Number(port) }, () => resolve(socket));
            }),
        ),
      );
      // wait until the server counts all three (it accepts them asynchronously)
      for (let i = 0; i < 100; i++) {
        const count = await new Promise<number>((resolve) =>
          running.server.getConnections((_error, n) => resolve(n)),
        );
        if (count === 3) break;
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      const refused = await rawExchange(running.url, 'GET /v2/ HTTP/1.1\r\nHost: h\r\n\r\n');
      expect(refused.text).toBe('');
      const first = held[0] as ReturnType<typeof connect>;
      const answer = await new Promise<string>((resolve) => {
        first.once('data', (chunk: Buffer) => resolve(chunk.toString('latin1').split('\r\n')[0] ?? ''));
        first.write('GET /healthz HTTP/1.1\r\nHost: h\r\n\r\n');
      });
      expect(answer).toBe('HTTP/1.1 200 OK');
      expect(
        logs.lines.some((line) => line.level === 40 && String(line.msg).includes('connection cap')),
      ).toBe(true);
      for (const socket of held) socket.destroy();
    } finally {
      await running.close();
    }
  });

  it('lowers the connection cap to what the open-file limit allows, and says so', async () => {
    const limit = await openFileLimit();
    expect(limit).toBeDefined();
    const soft = limit?.soft ?? 0;
    const { running, logs } = await start({ 'http.maxconnections': soft });
    try {
      const expected = connectionsWithin(soft, soft);
      expect(expected).toBeLessThan(soft);
      expect(running.server.maxConnections).toBe(expected);
      const warning = logs.lines.find((line) => line.effectiveMaxConnections !== undefined);
      expect(warning).toMatchObject({ level: 40, maxConnections: soft, openFileLimit: soft });
      expect(warning?.effectiveMaxConnections).toBe(expected);
      expect(String(warning?.msg)).toMatch(/open-file limit .* too low/);
    } finally {
      await running.close();
    }
  });

  it('reads the open-file limit from /proc/self/limits', async () => {
    const dir = await tempDir();
    const file = join(dir, 'limits');
    await writeFile(
      file,
      'Limit                     Soft Limit           Hard Limit           Units     \n' +
        'Max processes             63413                63413                processes \n' +
        'Max open files            1024                 524288               files     \n',
    );
    expect(await openFileLimit(file)).toEqual({ soft: 1024, hard: 524288 });
    expect(await openFileLimit(join(dir, 'missing'))).toBeUndefined();
    expect(connectionsWithin(1000, 1024)).toBe(480);
    expect(connectionsWithin(1000, 524288)).toBe(1000);
  });
});

describe('stowage-server over TLS', () => {
  it('serves HTTPS with the configured certificate and key', async () => {
    if (!requirePeers('openssl')) return;
    const dir = await tempDir();
    await selfSignedCertificate({ dir, ip: '127.0.0.1' });
    const { running } = await start({
      'http.tls.certificate': join(dir, 'cert.pem'),
      'http.tls.key': join(dir, 'key.pem'),
    });
    try {
      expect(running.url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
      const ca = await readFile(join(dir, 'cert.pem'));
      const status = await new Promise<number>((resolve, reject) => {
        httpsGet(`${running.url}/v2/`, { ca }, (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        }).on('error', reject);
      });
      expect(status).toBe(200);
      // plain HTTP on the TLS port gets nothing useful
      await expect(fetch(`${running.url.replace('https:', 'http:')}/v2/`)).rejects.toThrow();
    } finally {
      await running.close();
    }
  });
});

describe('the stowage-server command', () => {
  const cli = join(import.meta.dirname, 'cli.ts');
  const repoRoot = join(import.meta.dirname, '../../..');

  function runCli(args: string[]) {
    return spawn(process.execPath, ['--conditions=@stowage/source', '--import', 'tsx', cli, ...args], {
      cwd: repoRoot,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
  }

  it('starts with --root alone (and an address), serves, and stops cleanly on SIGTERM', async () => {
    const root = await tempDir();
    const child = runCli(['--root', root, '--addr', '127.0.0.1:0']);
    let out = '';
    const url = await new Promise<string>((resolve, reject) => {
      child.stdout.on('data', (chunk: Buffer) => {
        out += chunk.toString();
        const listening = out.split('\n').find((line) => line.includes('"listening"'));
        if (listening) resolve(JSON.parse(listening).url);
      });
      child.once('exit', (code) => reject(new Error(`exited with ${code}: ${out}`)));
    });
    expect((await fetch(`${url}/v2/`)).status).toBe(200);
    const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
    child.kill('SIGTERM');
    expect(await exited).toBe(0);
  }, 30_000);

  /** Starts the CLI under `ulimit <flags>` and returns its log lines up to `listening`. */
  async function linesUnderUlimit(ulimit: string): Promise<Record<string, unknown>[]> {
    const root = await tempDir();
    const child = spawn(
      'bash',
      [
        '-c',
        `ulimit ${ulimit} && exec "$@"`,
        'bash',
        process.execPath,
        '--conditions=@stowage/source',
        '--import',
        'tsx',
        cli,
        '--root',
        root,
        '--addr',
        '127.0.0.1:0',
      ],
      { cwd: repoRoot, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let out = '';
    let err = '';
    child.stderr.on('data', (chunk: Buffer) => {
      err += chunk.toString();
    });
    const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
    try {
      return await new Promise<Record<string, unknown>[]>((resolve, reject) => {
        child.stdout.on('data', (chunk: Buffer) => {
          out += chunk.toString();
          const lines = out.split('\n').filter((line) => line.startsWith('{'));
          const parsed = lines.map((line) => JSON.parse(line) as Record<string, unknown>);
          if (parsed.some((line) => line.msg === 'listening')) resolve(parsed);
        });
        void exited.then((code) => reject(new Error(`exited with ${code}: ${out}${err}`)));
      });
    } finally {
      child.kill('SIGTERM');
      await exited;
    }
  }

  it('warns and lowers the connection cap when the hard open-file limit is too low for it', async () => {
    const lines = await linesUnderUlimit('-n 1024');
    const warning = lines.find((line) => line.effectiveMaxConnections !== undefined);
    expect(warning).toMatchObject({
      level: 40,
      maxConnections: 1000,
      openFileLimit: 1024,
      openFileHardLimit: 1024,
      effectiveMaxConnections: 480,
    });
  }, 30_000);

  it('needs no warning when only the soft limit is low: Node raises it to the hard limit', async () => {
    // (on a machine whose hard limit is itself too low, the other test covers it)
    const hard = (await openFileLimit())?.hard ?? 0;
    if (connectionsWithin(1000, hard) < 1000) return;
    const lines = await linesUnderUlimit('-Sn 256');
    expect(lines.find((line) => line.effectiveMaxConnections !== undefined)).toBeUndefined();
  }, 30_000);

  it('runs gc, dry or not, and refuses a bad config with a clear message', async () => {
    const root = await tempDir();
    const dry = runCli(['gc', '--root', root, '--dry-run']);
    let out = '';
    dry.stdout.on('data', (chunk: Buffer) => {
      out += chunk.toString();
    });
    expect(await new Promise((resolve) => dry.once('exit', resolve))).toBe(0);
    expect(JSON.parse(out) as object).toMatchObject({ dryRun: true, blobsRemoved: 0 });
    const bad = runCli(['--root', root, '--addr', 'nowhere']);
    let err = '';
    bad.stderr.on('data', (chunk: Buffer) => {
      err += chunk.toString();
    });
    // a usage error: exit code 2 and one line naming the flag (see cli.test.ts for the rest)
    expect(await new Promise((resolve) => bad.once('exit', resolve))).toBe(2);
    expect(err).toMatch(/--addr: "nowhere" is not \[host\]:port/);
  }, 30_000);
});
