// Real clients pull anonymously from a public repository of a server that has
// htpasswd users: skopeo with --no-creds (it sends `Basic Og==`, empty user and
// password) and podman with no credentials, into its real containers/storage
// root. A repository no rule opens stays closed to both.
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { createImageStore, type ImageStore } from '@stowage/image-store';
import { pushImage, randomImage, requirePeers } from '@stowage/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Served, serve } from '../test/serve.js';
import { createHtpasswdAuthorizer } from './auth/htpasswd.js';

const run = promisify(execFile);

async function tool(command: string, ...args: string[]): Promise<string> {
  const { stdout } = await run(command, args, { maxBuffer: 64 << 20 });
  return stdout;
}

describe('anonymous pulls from a public repository with htpasswd on', () => {
  if (!requirePeers('skopeo', 'podman', 'htpasswd')) return;

  let work: string;
  let store: ImageStore;
  let served: Served;
  /** An auth file with nothing in it, so podman and skopeo find no stored credentials. */
  let authfile: string;
  const local = `localhost/stowage-anonymous-pull:${randomBytes(4).toString('hex')}`;
  const pulled: string[] = [];

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'stowage-anonymous-pull-'));
    store = await createImageStore({ root: join(work, 'store') });
    await run('htpasswd', ['-B', '-b', '-c', join(work, 'htpasswd'), 'admin', 'adminpw']);
    authfile = join(work, 'auth.json');
    await writeFile(authfile, '{"auths":{}}');
    served = await serve({
      registry: store,
      auth: createHtpasswdAuthorizer({
        realm: 'stowage',
        users: await readFile(join(work, 'htpasswd'), 'utf8'),
        rules: [
          { repository: 'public/**', anonymous: ['pull'], authenticated: ['*'] },
          { repository: '**', authenticated: ['*'] },
        ],
      }),
    });
  });

  afterAll(async () => {
    for (const image of [local, ...pulled]) await run('podman', ['rmi', '-f', image]).catch(() => undefined);
    await served?.close();
    await store?.close();
    if (work) await rm(work, { recursive: true, force: true });
  });

  it('skopeo --no-creds inspects and copies out of public/, and is refused elsewhere', async () => {
    const image = randomImage({ layers: 2 });
    await pushImage(store, 'public/app', image, 'v1');
    await pushImage(store, 'secure/app', image, 'v1');
    const anonymous = ['--tls-verify=false', '--no-creds', '--authfile', authfile];
    const inspected = JSON.parse(
      await tool('skopeo', 'inspect', ...anonymous, `docker://${served.host}/public/app:v1`),
    );
    expect(inspected.Digest).toBe(image.manifest.digest);
    await tool(
      'skopeo',
      'copy',
      '--quiet',
      '--preserve-digests',
      '--src-tls-verify=false',
      '--src-no-creds',
      '--src-authfile',
      authfile,
      `docker://${served.host}/public/app:v1`,
      `oci:${join(work, 'out')}:v1`,
    );
    const out = await createImageStore({ root: work });
    expect((await out.getManifest('out', 'v1')).digest).toBe(image.manifest.digest);
    await out.close();
    await expect(
      tool('skopeo', 'inspect', ...anonymous, `docker://${served.host}/secure/app:v1`),
    ).rejects.toThrow(/authentication required|unauthorized/i);
  });

  it('podman pulls anonymously what an authenticated podman pushed, into its containers/storage root', async () => {
    // a real one-layer image, made by podman from a tar of a small tree
    const tree = join(work, 'tree');
    await mkdir(join(tree, 'etc'), { recursive: true });
    await writeFile(join(tree, 'etc', 'stowage'), `${randomBytes(16).toString('hex')}\n`);
    await run('tar', ['-C', tree, '-cf', join(work, 'rootfs.tar'), '.']);
    await tool('podman', 'import', '--quiet', join(work, 'rootfs.tar'), local);
    const tls = ['--tls-verify=false', '--authfile', authfile];
    const publicRef = `${served.host}/public/podman:v1`;
    const secureRef = `${served.host}/secure/podman:v1`;
    for (const ref of [publicRef, secureRef]) {
      await tool('podman', 'push', '--quiet', ...tls, '--creds', 'admin:adminpw', local, ref);
    }
    const pushed = await store.getManifest('public/podman', 'v1');
    pulled.push(publicRef, secureRef);
    await tool('podman', 'pull', '--quiet', ...tls, publicRef);
    const digests = JSON.parse(await tool('podman', 'image', 'inspect', '--format', 'json', publicRef));
    expect(digests[0].RepoDigests).toContain(`${served.host}/public/podman@${pushed.digest}`);
    await expect(tool('podman', 'pull', '--quiet', ...tls, secureRef)).rejects.toThrow(
      /authentication required|unauthorized/i,
    );
  });
});
