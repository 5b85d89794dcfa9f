// The distribution layout against the real peer: docker-registry (distribution 2.8)
// pushes a blob and the file store reads it in place; the file store writes a blob
// and docker-registry serves it. This package cannot use @stowage/testing (that
// package will depend on this one), so the launcher here is a small one of its own.
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { accessSync, constants } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { digestHex, digestOf } from '@stowage/oci';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { collect } from '../test/helpers.js';
import { createFileBlobStore } from './file-blob-store.js';

function findExecutable(name: string): string | undefined {
  for (const dir of [...(process.env.PATH ?? '').split(delimiter).filter(Boolean), '/usr/bin', '/usr/sbin']) {
    try {
      accessSync(join(dir, name), constants.X_OK);
      return join(dir, name);
    } catch {
      // not in this directory
    }
  }
  return undefined;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() =>
        typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port')),
      );
    });
  });
}

const binary = findExecutable('docker-registry');
const isCI = process.env.CI === 'true' || process.env.CI === '1';

if (!binary) {
  if (isCI) {
    it('requires docker-registry', () => {
      throw new Error('CI=true and docker-registry is not installed (apt-get install docker-registry)');
    });
  } else {
    console.warn('\n!!! SKIPPING distribution layout integration tests: docker-registry is not installed.\n');
    it.skip('[not available: docker-registry]', () => {});
  }
} else {
  describe('distribution layout against docker-registry', () => {
    let workDir = '';
    let root = '';
    let url = '';
    let child: ChildProcess | undefined;
    let output = '';

    beforeAll(async () => {
      workDir = await mkdtemp(join(tmpdir(), 'stowage-blob-store-distribution-'));
      root = join(workDir, 'data');
      const port = await freePort();
      url = `http://127.0.0.1:${port}`;
      const config = [
        'version: 0.1',
        'log:',
        '  level: warn',
        '  accesslog:',
        '    disabled: true',
        'storage:',
        '  filesystem:',
        `    rootdirectory: ${root}`,
        '  maintenance:',
        '    uploadpurging:',
        '      enabled: false',
        'http:',
        `  addr: 127.0.0.1:${port}`,
        '  secret: stowage-blob-store-test',
        '',
      ].join('\n');
      await writeFile(join(workDir, 'config.yml'), config);
      child = spawn(binary, ['serve', join(workDir, 'config.yml')], { stdio: ['ignore', 'pipe', 'pipe'] });
      child.stdout?.on('data', (chunk) => {
        output += chunk;
      });
      child.stderr?.on('data', (chunk) => {
        output += chunk;
      });
      for (let attempt = 0; ; attempt++) {
        if (child.exitCode !== null) throw new Error(`docker-registry exited: ${output}`);
        const ready = await fetch(`${url}/v2/`).then(
          (response) => response.status === 200,
          () => false,
        );
        if (ready) break;
        if (attempt > 200) throw new Error(`docker-registry did not answer: ${output}`);
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    });

    afterAll(async () => {
      if (child && child.exitCode === null) {
        const exited = new Promise((resolve) => child?.once('exit', resolve));
        child.kill('SIGTERM');
        await exited;
      }
      if (workDir) await rm(workDir, { recursive: true, force: true });
    });

    it('a blob docker-registry received is listed, stated and read in place', async () => {
      const bytes = randomBytes(100_000);
      const digest = digestOf(bytes);
      const started = await fetch(`${url}/v2/demo/app/blobs/uploads/`, { method: 'POST' });
      expect(started.status, output).toBe(202);
      const location = new URL(started.headers.get('location') ?? '', url);
      location.searchParams.set('digest', digest);
      const response = await fetch(location, {
        method: 'PUT',
        body: bytes,
        headers: { 'content-type': 'application/octet-stream' },
      });
      expect(response.status, output).toBe(201);
      const store = createFileBlobStore({ root, layout: 'distribution', readOnly: true });
      expect(await store.stat(digest)).toMatchObject({ digest, size: 100_000 });
      const listed = [];
      for await (const info of store.list()) listed.push({ digest: info.digest, size: info.size });
      expect(listed).toEqual([{ digest, size: 100_000 }]);
      expect((await collect((await store.read(digest)).stream)).equals(bytes)).toBe(true);
      const part = await store.read(digest, { range: { start: 1000, end: 1999 } });
      expect((await collect(part.stream)).equals(bytes.subarray(1000, 2000))).toBe(true);
    });

    it('a blob the store wrote is served by docker-registry once a repository links it', async () => {
      const bytes = randomBytes(50_000);
      const digest = digestOf(bytes);
      const store = createFileBlobStore({ root, layout: 'distribution', tmpDir: join(workDir, 'tmp') });
      expect((await store.write(bytes, { digest })).created).toBe(true);
      // Repository membership is distribution's `_layers` link: metadata, not the blob store's business.
      const link = join(
        root,
        'docker/registry/v2/repositories/demo/written/_layers/sha256',
        digestHex(digest),
      );
      await mkdir(link, { recursive: true });
      await writeFile(join(link, 'link'), digest);
      const response = await fetch(`${url}/v2/demo/written/blobs/${digest}`);
      expect(response.status, output).toBe(200);
      expect(Buffer.from(await response.arrayBuffer()).equals(bytes)).toBe(true);
    });
  });
}
