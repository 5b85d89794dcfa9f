// The werf build-stage commands (stowage stages ..., stowage managed-images ...) run as the
// built binary against a real docker-registry and a stowage-server. Stages and records are
// seeded through @stowage/stages-storage itself (stage images pushed under werf's tags, records
// written by the package), then every command is run and its --json checked against what was
// seeded: reject hides a stage from by-digest, rm takes it out of ls, copy-to-final puts it in
// the final repo once, managed images go in and out; bad input is one line and a documented
// exit code.
import { createHash } from 'node:crypto';
import { mkdtemp, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { createRegistryClient, type RegistryClient } from '@stowage/registry-client';
import { createRepoStagesStorage } from '@stowage/stages-storage';
import { pushImage, type RandomImage, randomImage, requirePeers } from '@stowage/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureBinary, stowage } from './binary.js';
import { startRegistries, type TestRegistries } from './registries.js';

const sha3 = (text: string) => createHash('sha3-224').update(text).digest('hex');
const PROJECT = 'app';
const A = sha3('stage a');
const B = sha3('stage b');
const C = sha3('stage c');
const A1 = `${A}-1700000000001`;
const A2 = `${A}-1700000000002`;
const B3 = `${B}-1700000000003`;
const C4 = `${C}-1700000000004`;
const COMMIT = 'c0ffee0000000000000000000000000000000001';
const IMPORT_ID = sha3('import source');

interface Seeded {
  readonly host: string;
  /** stage ID to the image pushed under it */
  readonly images: ReadonlyMap<string, RandomImage>;
}

describe('stowage stages and managed-images', () => {
  if (!requirePeers('docker-registry')) return;
  let started: TestRegistries | undefined;
  let work: string;
  let env: Record<string, string>;
  const clients: RegistryClient[] = [];
  const seeded: Seeded[] = [];

  async function seed(host: string, seedBase: number): Promise<Seeded> {
    const client = createRegistryClient({ registry: host, auth: { useConfigFiles: false } });
    clients.push(client);
    const images = new Map<string, RandomImage>();
    const put = async (repository: string, id: string, n: number) => {
      const image = randomImage({ format: 'docker', seed: seedBase + n });
      await pushImage(client, repository, image, id);
      images.set(id, image);
    };
    await put('werf/app', A1, 1);
    await put('werf/app', A2, 2);
    await put('werf/app', B3, 3);
    await put('werf/base', C4, 4);
    const storage = createRepoStagesStorage({
      registry: client,
      address: `${host}/werf/app`,
      project: PROJECT,
    });
    await storage.addManagedImage('backend');
    await storage.addManagedImage('');
    await storage.putImageMetadata({ imageName: 'backend', commit: COMMIT, stageId: A1 });
    await storage.putImageMetadata({ imageName: 'other', commit: COMMIT, stageId: B3 });
    const desc = await storage.getStageDesc({ digest: A, creationTs: 1700000000001 });
    if (!desc) throw new Error('the seeded stage has no description');
    await storage.registerCustomTag(desc, 'v1.0');
    await storage.putImportMetadata({ importSourceId: IMPORT_ID, sourceStageId: A1, checksum: 'abc123' });
    return { host, images };
  }

  beforeAll(async () => {
    await ensureBinary();
    started = await startRegistries('stages');
    work = started.work;
    // werf's home (the LRU record of copies) inside the scratch directory, never ~/.werf
    env = { WERF_HOME: join(work, 'werf-home') };
    seeded.push(await seed(started.upstream.host, 100), await seed(started.ours, 200));
  }, 300_000);

  afterAll(async () => {
    for (const client of clients) await client.close();
    await started?.stop();
  });

  const run = (args: string[]) => stowage(args, { cwd: work, env });
  /** The same checks against both registries at once (their runs are independent). */
  const eachRegistry = async (check: (registry: Seeded) => Promise<void>) => {
    await Promise.all(seeded.map(check));
  };
  const json = async (args: string[]) => {
    const result = await run([...args, '--json']);
    expect([result.code, result.err], args.join(' ')).toEqual([0, '']);
    return JSON.parse(result.out);
  };
  const entry = (repo: string, id: string) => {
    const [digest, ts] = id.split('-') as [string, string];
    return { id, digest, creationTs: Number(ts), name: `${repo}:${id}` };
  };

  it('stages ls lists every stage oldest first; show gives werf image.Info of one', async () => {
    await eachRegistry(async ({ host, images }) => {
      const repo = `${host}/werf/app`;
      expect(await json(['stages', 'ls', '--repo', repo]), host).toEqual({
        repo,
        stages: [entry(repo, A1), entry(repo, A2), entry(repo, B3)],
      });
      const plain = await run(['stages', 'ls', '--repo', repo]);
      expect([plain.code, plain.out], host).toEqual([0, `${A1}\n${A2}\n${B3}\n`]);

      const image = images.get(A1) as RandomImage;
      const shown = await json(['stages', 'show', A1, '--repo', repo]);
      expect(Object.keys(shown), host).toEqual(['stageID', 'info']);
      expect(shown.stageID, host).toEqual({ digest: A, uniqueID: 1700000000001, isMultiplatform: false });
      expect(Object.keys(shown.info), host).toEqual([
        'name',
        'repository',
        'tag',
        'repoDigest',
        'onBuild',
        'env',
        'ID',
        'parentID',
        'labels',
        'size',
        'createdAtUnixNano',
        'volumes',
        'IsIndex',
        'Index',
      ]);
      expect(shown.info, host).toMatchObject({
        name: `${repo}:${A1}`,
        repository: repo,
        tag: A1,
        repoDigest: `${repo}@${image.manifest.digest}`,
        ID: image.config.descriptor.digest,
        size: image.layers.reduce((n, l) => n + l.descriptor.size, 0),
        IsIndex: false,
      });
      const lines = await run(['stages', 'show', A1, '--repo', repo]);
      expect(lines.code, host).toBe(0);
      expect(lines.out.split('\n').slice(0, 4), host).toEqual([
        `stageID: ${A1}`,
        `name: ${repo}:${A1}`,
        `repoDigest: ${repo}@${image.manifest.digest}`,
        `ID: ${image.config.descriptor.digest}`,
      ]);
    });
  }, 60_000);

  it('by-digest leaves out a rejected stage, and looks in the secondary repo only when --repo has none', async () => {
    await eachRegistry(async ({ host }) => {
      const repo = `${host}/werf/app`;
      const base = `${host}/werf/base`;
      const byA = ['stages', 'by-digest', A, '--repo', repo];
      expect(await json(byA), host).toEqual({
        repo,
        digest: A,
        foundIn: repo,
        stages: [entry(repo, A1), entry(repo, A2)],
      });

      const rejected = await run(['stages', 'reject', A2, '--repo', repo, '--project', PROJECT]);
      expect([rejected.code, rejected.out], host).toEqual([0, `rejected ${A2}\n`]);
      const again = await run(['stages', 'reject', A2, '--repo', repo, '--project', PROJECT]);
      expect([again.code, again.out], host).toEqual([0, `${A2} is rejected already\n`]);
      const plain = await run(byA);
      expect([plain.code, plain.out], host).toEqual([0, `${A1}\n`]);
      // still a stage of the repository, but no description any more
      expect(
        (await json(['stages', 'ls', '--repo', repo])).stages.map((s: { id: string }) => s.id),
      ).toContain(A2);
      const gone = await run(['stages', 'show', A2, '--repo', repo]);
      expect([gone.code, gone.lines], host).toEqual([
        6,
        [`stowage: STAGE_NOT_FOUND: stage ${A2} is not in ${repo}, or is rejected`],
      ]);

      // a digest only the secondary repo has; an empty cache repo changes nothing
      const byC = ['stages', 'by-digest', C, '--repo', repo, '--cache-repo', `${host}/werf/cache`];
      expect(await json(byC), host).toEqual({ repo, digest: C, foundIn: null, stages: [] });
      expect(
        await json([...byC, '--secondary-repo', `${host}/werf/none`, '--secondary-repo', base]),
        host,
      ).toEqual({ repo, digest: C, foundIn: base, stages: [entry(base, C4)] });
    });
  }, 60_000);

  it('rm deletes stages (not-found is success), copy-to-final copies once', async () => {
    await eachRegistry(async ({ host, images }) => {
      const repo = `${host}/werf/app`;
      const final = `${host}/final/app`;
      const rm = await run(['stages', 'rm', B3, '--repo', repo, '--project', PROJECT]);
      expect([rm.code, rm.out, rm.err], host).toEqual([0, `removed ${B3}\n`, '']);
      expect(
        (await json(['stages', 'ls', '--repo', repo])).stages.map((s: { id: string }) => s.id),
        host,
      ).toEqual([A1, A2]);
      expect(await json(['stages', 'rm', B3, '--repo', repo, '--project', PROJECT]), host).toEqual({
        repo,
        removed: [],
        absent: [B3],
      });

      const copy = ['stages', 'copy-to-final', A1, '--repo', repo, '--final-repo', final];
      const first = await run([...copy, '--parallel-tasks-limit', '2']);
      expect([first.code, first.out, first.err], host).toEqual([0, `copied ${A1} to ${final}:${A1}\n`, '']);
      const shown = await json(['stages', 'show', A1, '--repo', final]);
      expect(shown.info.repoDigest, host).toBe(`${final}@${(images.get(A1) as RandomImage).manifest.digest}`);
      expect(await json(copy), host).toEqual({
        repo,
        finalRepo: final,
        stages: [{ id: A1, name: `${final}:${A1}`, action: 'skipped' }],
      });
      // a stage --repo lacks is refused before anything is copied
      const missing = await run(['stages', 'copy-to-final', A1, B3, '--repo', repo, '--final-repo', final]);
      expect([missing.code, missing.lines], host).toEqual([
        6,
        [`stowage: STAGE_NOT_FOUND: stage ${B3} is not in ${repo}`],
      ]);
    });
    // werf's LRU image record of the copies, under WERF_HOME
    expect(await readdir(join(work, 'werf-home', 'local_cache', 'lru_images', '1'))).not.toEqual([]);
  }, 60_000);

  it('managed-images add, ls and rm round-trip, named as werf names them', async () => {
    await eachRegistry(async ({ host }) => {
      const repo = `${host}/werf/app`;
      const names = async () => (await json(['managed-images', 'ls', '--repo', repo])).images.sort();
      expect(await names(), host).toEqual(['', 'backend']);
      const plain = await run(['managed-images', 'ls', '--repo', repo]);
      expect(plain.out.split('\n').sort(), host).toEqual(['', 'backend', '~']);

      const write = ['--repo', repo, '--project', PROJECT];
      const added = await run(['managed-images', 'add', 'frontend', ...write]);
      expect([added.code, added.out], host).toEqual([0, 'added frontend\n']);
      expect((await run(['managed-images', 'add', 'frontend', ...write])).out, host).toBe(
        'frontend is a managed image already\n',
      );
      expect(await names(), host).toEqual(['', 'backend', 'frontend']);
      const removed = await run(['managed-images', 'rm', 'frontend', ...write]);
      expect([removed.code, removed.out], host).toEqual([0, 'removed frontend\n']);
      expect(await names(), host).toEqual(['', 'backend']);
      expect((await run(['managed-images', 'rm', 'frontend', ...write])).out, host).toBe(
        'frontend is not a managed image\n',
      );
    });
  }, 60_000);

  it('metadata, custom-tags and import-metadata list the records the package wrote', async () => {
    await eachRegistry(async ({ host }) => {
      const repo = `${host}/werf/app`;
      const byManaged = await json(['stages', 'metadata', 'ls', '--repo', repo]);
      expect(byManaged.repo, host).toBe(repo);
      expect(
        [...byManaged.images].sort((a: { name: string }, b: { name: string }) =>
          a.name.localeCompare(b.name),
        ),
        host,
      ).toEqual([
        { name: '', stages: [] },
        { name: 'backend', stages: [{ stageId: A1, commits: [COMMIT] }] },
      ]);
      expect(byManaged.notManaged, host).toEqual([
        { id: expect.any(String), stages: [{ stageId: B3, commits: [COMMIT] }] },
      ]);
      const byName = await json(['stages', 'metadata', 'ls', 'other', '--repo', repo]);
      expect(byName.images, host).toEqual([{ name: 'other', stages: [{ stageId: B3, commits: [COMMIT] }] }]);
      const lines = await run(['stages', 'metadata', 'ls', 'backend', 'other', '--repo', repo]);
      expect(lines.out.split('\n').filter(Boolean).sort(), host).toEqual([
        `backend ${COMMIT} ${A1}`,
        `other ${COMMIT} ${B3}`,
      ]);

      expect(await json(['stages', 'custom-tags', 'ls', '--repo', repo]), host).toEqual({
        repo,
        customTags: [{ id: expect.stringMatching(/^v1-0/), tag: 'v1.0', stageId: A1 }],
      });
      expect((await run(['stages', 'custom-tags', 'ls', '--repo', repo])).out, host).toBe(`v1.0 ${A1}\n`);

      expect(await json(['stages', 'import-metadata', 'ls', '--repo', repo]), host).toEqual({
        repo,
        ids: [IMPORT_ID],
      });
      expect(await json(['stages', 'import-metadata', 'show', IMPORT_ID, '--repo', repo]), host).toEqual({
        id: IMPORT_ID,
        importSourceId: IMPORT_ID,
        sourceStageId: A1,
        checksum: 'abc123',
      });
      const none = await run(['stages', 'import-metadata', 'show', 'nothing', '--repo', repo]);
      expect([none.code, none.lines], host).toEqual([
        6,
        [`stowage: MANIFEST_UNKNOWN: no import metadata record nothing in ${repo}`],
      ]);
    });
  }, 60_000);

  it('bad input and unreachable registries are one line and a documented exit code, never a stack trace', async () => {
    const repo = `${started?.ours}/werf/app`;
    const unknown = `${sha3('never built')}-1700000000009`;
    const cases: [string[], number, RegExp][] = [
      [
        ['stages', 'ls'],
        2,
        /^stowage: stages ls needs --repo <host\/path> .*\(see stowage stages ls --help\)$/,
      ],
      [
        ['stages', 'ls', '--repo', `${started?.ours}`],
        2,
        /^stowage: --repo is a registry host\[:port\] and a repository path/,
      ],
      [['stages', 'ls', '--repo', `${repo}:v1`], 2, /^stowage: --repo is a registry host/],
      [['stages', 'ls', '--repo', 'werf/app'], 2, /^stowage: --repo is a registry host/],
      [
        ['stages', 'ls', '--repo', repo, '--project', 'x'],
        2,
        /^stowage: --project is not an option of stages ls/,
      ],
      [['stages', 'show', 'not-a-stage', '--repo', repo], 2, /^stowage: "not-a-stage" is not a stage ID: /],
      [['stages', 'show', A, A1, '--repo', repo], 2, /^stowage: stages show takes one stage ID, not 2/],
      [['stages', 'by-digest', 'abc', '--repo', repo], 2, /^stowage: "abc" is not a stage digest/],
      [['stages', 'reject', A1, '--repo', repo], 2, /^stowage: stages reject needs --project <name>/],
      [
        ['stages', 'rm', '--repo', repo, '--project', PROJECT],
        2,
        /^stowage: stages rm needs one stage ID or more/,
      ],
      [
        ['stages', 'copy-to-final', A1, '--repo', repo],
        2,
        /^stowage: stages copy-to-final needs --final-repo/,
      ],
      [
        [
          'stages',
          'copy-to-final',
          A1,
          '--repo',
          repo,
          '--final-repo',
          `${repo}-final`,
          '--parallel-tasks-limit',
          '0',
        ],
        2,
        /^stowage: --parallel-tasks-limit is a whole number from 1 to 1024, not "0"/,
      ],
      [
        ['managed-images', 'add', '--repo', repo, '--project', PROJECT],
        2,
        /^stowage: managed-images add needs an image name/,
      ],
      [['stages', 'metadata'], 2, /^stowage: unknown command "stages metadata": stages has ls, show, /],
      [['stages', 'show', unknown, '--repo', repo], 6, /^stowage: STAGE_NOT_FOUND: stage .* is not in /],
      [['stages', 'reject', unknown, '--repo', repo, '--project', PROJECT], 6, /^stowage: STAGE_NOT_FOUND: /],
      [
        ['stages', 'ls', '--repo', '127.0.0.1:1/werf/app'],
        8,
        /^stowage: NETWORK_ERROR: .*: check the registry's address and that it is up/,
      ],
    ];
    const cwd = await mkdtemp(join(work, 'mistakes-'));
    const check = async ([args, code, line]: (typeof cases)[number]) => {
      const result = await stowage(args, { cwd, env });
      expect(result.code, args.join(' ')).toBe(code);
      expect(result.lines[0], args.join(' ')).toMatch(line);
      expect(result.err, args.join(' ')).not.toMatch(/\n\s+at /);
      expect(result.out, args.join(' ')).toBe('');
      // a usage error is its line, then the command's usage; anything else is the line alone
      if (code !== 2) expect(result.lines, args.join(' ')).toHaveLength(1);
    };
    // a cache repo that cannot be reached is only a warning, as in werf
    const cacheDown = async () => {
      const result = await stowage(
        ['stages', 'by-digest', A, '--repo', repo, '--cache-repo', '127.0.0.1:1/werf/cache'],
        { cwd, env },
      );
      expect([result.code, result.out]).toEqual([0, `${A1}\n`]);
      expect(result.lines).toEqual([
        expect.stringMatching(
          /^stowage: warning: unable to get the stage description from a cache storage \(.* in 127\.0\.0\.1:1\/werf\/cache\): NETWORK_ERROR: /,
        ),
      ]);
    };
    // four lanes at once: the runs are independent, and the unreachable ones wait out retries
    const lanes = 4;
    await Promise.all([
      cacheDown(),
      ...Array.from({ length: lanes }, async (_, lane) => {
        for (const [i, item] of cases.entries()) if (i % lanes === lane) await check(item);
      }),
    ]);
    expect(await readdir(cwd)).toEqual([]);
    const help = await stowage(['stages', 'by-digest', '--help'], { cwd, env });
    expect(help.code).toBe(0);
    expect(help.out).toMatch(/^usage: stowage stages by-digest /);
    expect(help.out).toMatch(/\n {2}--secondary-repo <repo> /);
  }, 60_000);
});
