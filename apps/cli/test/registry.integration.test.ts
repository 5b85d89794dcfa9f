// The registry commands (ls, catalog, digest, manifest get, config, blob get, copy)
// run as the built binary against a real docker-registry and a stowage-server over
// an image store, their --json parsed and checked against what was pushed; skopeo
// reads what stowage copy wrote, and stowage reads what skopeo wrote, digest for
// digest; bad input and registry failures are one line and a documented exit code.
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtemp, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { createRegistryClient, type RegistryClient } from '@stowage/registry-client';
import {
  type DockerRegistry,
  pushImage,
  pushIndex,
  type RandomImage,
  type RandomIndex,
  randomArtifact,
  randomImage,
  randomIndex,
  requirePeers,
} from '@stowage/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bin, ensureBinary, stowage } from './binary.js';
import { startRegistries, type TestRegistries } from './registries.js';

const sha256 = (bytes: Uint8Array) => `sha256:${createHash('sha256').update(bytes).digest('hex')}`;

describe('stowage registry commands', () => {
  if (!requirePeers('docker-registry', 'skopeo')) return;
  let work: string;
  let upstream: DockerRegistry;
  let started: TestRegistries | undefined;
  let ours: string;
  const clients: RegistryClient[] = [];
  const image: RandomImage = randomImage({ layers: 2, layerSize: 50_000, seed: 11 });
  const image2: RandomImage = randomImage({ layers: 1, seed: 12 });
  const index: RandomIndex = randomIndex({
    platforms: ['linux/amd64', 'linux/arm64'],
    sharedLayers: 1,
    seed: 13,
  });
  let imageDigest: string;
  let indexDigest: string;

  beforeAll(async () => {
    await ensureBinary();
    started = await startRegistries('registry');
    ({ work, upstream, ours } = started);
    for (const host of [upstream.host, ours]) {
      const client = createRegistryClient({ registry: host, auth: { useConfigFiles: false } });
      clients.push(client);
      imageDigest = await pushImage(client, 'app', image, 'v1');
      await pushImage(client, 'app', image2, 'v2');
      await pushImage(client, 'team/sub/tool', image2, '1.0');
      indexDigest = await pushIndex(client, 'multi', index, 'v1');
    }
  }, 300_000);

  afterAll(async () => {
    for (const client of clients) await client.close();
    await started?.stop();
  });

  const registries = (): [string, string][] => [
    ['docker-registry', upstream.host],
    ['stowage-server', ours],
  ];

  it('ls and catalog list every tag and repository, as lines and as stable JSON', async () => {
    for (const [name, host] of registries()) {
      const ls = await stowage(['ls', `${host}/app`, '--json'], { cwd: work });
      expect([ls.code, ls.err], name).toEqual([0, '']);
      expect(JSON.parse(ls.out), name).toEqual({ repository: `${host}/app`, tags: ['v1', 'v2'] });
      const plain = await stowage(['ls', `docker://${host}/team/sub/tool`], { cwd: work });
      expect(plain.out, name).toBe('1.0\n');
      const catalog = await stowage(['catalog', host, '--json'], { cwd: work });
      expect(catalog.code, name).toBe(0);
      expect(JSON.parse(catalog.out), name).toEqual({
        registry: host,
        repositories: ['app', 'multi', 'team/sub/tool'],
      });
    }
  }, 60_000);

  it('digest, manifest get and config give the bytes that were pushed, a platform of an index too', async () => {
    const arm = index.images[1] as RandomImage;
    for (const [name, host] of registries()) {
      const digest = await stowage(['digest', `${host}/app:v1`], { cwd: work });
      expect([digest.code, digest.out], name).toEqual([0, `${imageDigest}\n`]);
      const json = await stowage(['digest', `${host}/multi:v1`, '--json'], { cwd: work });
      expect(JSON.parse(json.out), name).toEqual({
        digest: indexDigest,
        mediaType: index.index.mediaType,
        size: index.index.size,
      });
      const child = await stowage(['digest', `${host}/multi:v1`, '--platform', 'linux/arm64'], { cwd: work });
      expect(child.out, name).toBe(`${arm.descriptor.digest}\n`);

      const manifest = await stowage(['manifest', 'get', `${host}/app@${imageDigest}`], { cwd: work });
      expect(manifest.code, name).toBe(0);
      expect(sha256(manifest.bytes), name).toBe(imageDigest);
      const childManifest = await stowage(
        ['manifest', 'get', `${host}/multi:v1`, '--platform', 'linux/arm64'],
        {
          cwd: work,
        },
      );
      expect(sha256(childManifest.bytes), name).toBe(arm.descriptor.digest);

      const config = await stowage(['config', `${host}/multi:v1`, '--platform', 'linux/arm64'], {
        cwd: work,
      });
      expect(config.code, name).toBe(0);
      expect(config.bytes.equals(Buffer.from(arm.config.bytes)), name).toBe(true);
    }
  }, 60_000);

  it('blob get streams a blob to stdout or writes it whole into --output', async () => {
    const layer = image.layers[1] as RandomImage['layers'][number];
    for (const [name, host] of registries()) {
      const ref = `${host}/app@${layer.descriptor.digest}`;
      const out = await stowage(['blob', 'get', ref], { cwd: work });
      expect(out.code, name).toBe(0);
      expect(out.bytes.equals(Buffer.from(layer.bytes)), name).toBe(true);
      const file = join(work, `layer-${name}`);
      const saved = await stowage(['blob', 'get', ref, '-o', file], { cwd: work });
      expect([saved.code, saved.out], name).toEqual([0, '']);
      expect((await readFile(file)).equals(Buffer.from(layer.bytes)), name).toBe(true);
    }
  }, 60_000);

  it('copy keeps every digest between the registries and the local store, and skopeo reads the result', async () => {
    const toOurs = await stowage(
      ['copy', `docker://${upstream.host}/multi:v1`, `${ours}/mirror/multi`, '--json'],
      {
        cwd: work,
      },
    );
    expect([toOurs.code, toOurs.err]).toEqual([0, '']);
    const result = JSON.parse(toOurs.out);
    expect(result).toMatchObject({ digest: indexDigest, sourceDigest: indexDigest, indexRewritten: false });
    expect(result.blobsCopied).toBeGreaterThan(0);
    // skopeo pulls what stowage copied, with the same digest
    const raw = await promisify(execFile)(
      'skopeo',
      ['inspect', '--raw', '--tls-verify=false', `docker://${ours}/mirror/multi:v1`],
      { encoding: 'buffer' },
    );
    expect(sha256(raw.stdout as Buffer)).toBe(indexDigest);

    // into the local store at --root and back out to docker-registry
    const root = join(work, 'local');
    const toStore = await stowage(['copy', `${upstream.host}/app:v1`, 'store:local/app', '--root', root], {
      cwd: work,
    });
    expect(toStore.code).toBe(0);
    expect(toStore.out).toBe(`store:local/app: ${imageDigest} (3 blobs copied, 0 already there, 0.1 MiB)\n`);
    const back = await stowage(
      ['copy', 'store:local/app:v1', `${upstream.host}/roundtrip/app:v9`, '--root', root, '--json'],
      { cwd: work },
    );
    expect(back.code).toBe(0);
    expect(JSON.parse(back.out).digest).toBe(imageDigest);
    const again = await stowage(['digest', `${upstream.host}/roundtrip/app:v9`], { cwd: work });
    expect(again.out).toBe(`${imageDigest}\n`);

    // the other way round: what skopeo copied, stowage reads with skopeo's digest
    await promisify(execFile)('skopeo', [
      'copy',
      '--all',
      // uncompressed layers would be compressed on the way (new digests) otherwise
      '--preserve-digests',
      '--src-tls-verify=false',
      '--dest-tls-verify=false',
      `docker://${upstream.host}/multi:v1`,
      `docker://${ours}/by-skopeo/multi:v1`,
    ]);
    const inspect = (...args: string[]) =>
      promisify(execFile)(
        'skopeo',
        ['inspect', '--tls-verify=false', ...args, `docker://${ours}/by-skopeo/multi:v1`],
        {
          encoding: 'buffer',
        },
      );
    const ourDigest = await stowage(['digest', `${ours}/by-skopeo/multi:v1`], { cwd: work });
    expect(ourDigest.out).toBe(`${sha256((await inspect('--raw')).stdout as Buffer)}\n`);
    expect(ourDigest.out).toBe(`${indexDigest}\n`);
    // skopeo inspect names an index by its own digest (and shows this machine's platform's config)
    const named = JSON.parse((await inspect()).stdout.toString()) as { Digest: string; Architecture: string };
    expect(named.Digest).toBe(indexDigest);
    const ourChild = await stowage(
      ['config', `${ours}/by-skopeo/multi:v1`, '--platform', `linux/${named.Architecture}`],
      {
        cwd: work,
      },
    );
    expect(JSON.parse(ourChild.out).architecture).toBe(named.Architecture);
  }, 120_000);

  it('a platform filter into docker-registry rewrites the index and says so', async () => {
    const run = await stowage(
      [
        'copy',
        `${ours}/multi:v1`,
        `${upstream.host}/amd64-only/multi:v1`,
        '--platform',
        'linux/amd64',
        '--json',
      ],
      { cwd: work },
    );
    expect(run.code).toBe(0);
    const result = JSON.parse(run.out);
    expect(result.indexRewritten).toBe(true);
    expect(result.digest).not.toBe(indexDigest);
    const arm = await stowage(
      ['digest', `${upstream.host}/amd64-only/multi:v1`, '--platform', 'linux/arm64'],
      {
        cwd: work,
      },
    );
    expect(arm.code).toBe(6);
    expect(arm.lines).toEqual([
      expect.stringMatching(
        /^stowage: MANIFEST_UNKNOWN: 127\.0\.0\.1:[0-9]+\/amd64-only\/multi:v1 has no manifest for linux\/arm64 \(it has linux\/amd64\)$/,
      ),
    ]);
  }, 60_000);

  it('manifest put, tag, blob put, delete and blob delete change the registry as they say', async () => {
    for (const [name, host] of registries()) {
      const dir = await mkdtemp(join(work, `writes-${name}-`));
      const manifest = await stowage(['manifest', 'get', `${host}/app:v1`], { cwd: dir });
      const file = join(dir, 'm.json');
      await writeFile(file, manifest.bytes);
      const put = await stowage(['manifest', 'put', `${host}/app:from-file`, file], { cwd: dir });
      expect([put.code, put.out], name).toEqual([0, `${imageDigest}\n`]);
      const piped = await stowage(['manifest', 'put', `${host}/app:from-stdin`], {
        cwd: dir,
        input: manifest.bytes,
      });
      expect([piped.code, piped.out], name).toEqual([0, `${imageDigest}\n`]);
      const tagged = await stowage(['tag', `${host}/app:v1`, 'x1', 'x2'], { cwd: dir });
      expect([tagged.code, tagged.out], name).toEqual([0, `${imageDigest}\n`]);
      const ls = await stowage(['ls', `${host}/app`, '--json'], { cwd: dir });
      expect(JSON.parse(ls.out).tags, name).toEqual(['from-file', 'from-stdin', 'v1', 'v2', 'x1', 'x2']);

      const blobFile = join(dir, 'blob');
      await writeFile(blobFile, 'a blob of the cli test\n');
      const blob = await stowage(['blob', 'put', `${host}/scratch`, blobFile, '--json'], { cwd: dir });
      expect(blob.code, name).toBe(0);
      const { digest, size } = JSON.parse(blob.out);
      expect([digest, size], name).toEqual([sha256(Buffer.from('a blob of the cli test\n')), 23]);
      const back = await stowage(['blob', 'get', `${host}/scratch@${digest}`], { cwd: dir });
      expect(back.out, name).toBe('a blob of the cli test\n');
      const gone = await stowage(['blob', 'delete', `${host}/scratch@${digest}`], { cwd: dir });
      expect([gone.code, gone.err], name).toEqual([0, '']);
      const missing = await stowage(['blob', 'get', `${host}/scratch@${digest}`], { cwd: dir });
      expect(missing.code, name).toBe(6);

      // a copy to delete: the manifest and every tag on it go
      await stowage(['copy', `${host}/app:v2`, `${host}/doomed:a`], { cwd: dir });
      await stowage(['tag', `${host}/doomed:a`, 'b'], { cwd: dir });
      const deleted = await stowage(['delete', `${host}/doomed:b`], { cwd: dir });
      expect(deleted.code, name).toBe(0);
      expect(deleted.out, name).toMatch(/^sha256:[0-9a-f]{64}\n$/);
      const after = await stowage(['digest', `${host}/doomed:a`], { cwd: dir });
      expect(after.code, name).toBe(6);
    }
  }, 120_000);

  it('copy reads an OCI layout skopeo wrote and writes one skopeo reads, digests kept', async () => {
    const skopeo = (...args: string[]) => promisify(execFile)('skopeo', args, { maxBuffer: 1 << 24 });
    const dir = await mkdtemp(join(work, 'layouts-'));
    // a directory name that is no repository name: skopeo takes any path
    const written = join(dir, 'By Skopeo');
    await skopeo(
      'copy',
      '--all',
      '--src-tls-verify=false',
      `docker://${upstream.host}/multi:v1`,
      `oci:${written}:v1`,
    );
    // skopeo rewrites the children on the way into a layout (their layers are not tar): the
    // layout's own index is the one to keep
    const layoutDigest = sha256(Buffer.from((await skopeo('inspect', '--raw', `oci:${written}:v1`)).stdout));
    for (const [name, host] of registries()) {
      const run = await stowage(['copy', `oci:${written}:v1`, `${host}/fromoci:v1`, '--json'], { cwd: dir });
      expect([run.code, run.err], name).toEqual([0, '']);
      expect(JSON.parse(run.out).digest, name).toBe(layoutDigest);
      const pulled = await skopeo('inspect', '--raw', '--tls-verify=false', `docker://${host}/fromoci:v1`);
      expect(sha256(Buffer.from(pulled.stdout)), name).toBe(layoutDigest);
    }
    const ls = await stowage(['ls', `oci:${written}`, '--json'], { cwd: dir });
    expect(JSON.parse(ls.out)).toEqual({ repository: `oci:${written}`, tags: ['v1'] });

    // ours into a new layout; skopeo reads it and copies it on with the same digest
    const ours = join(dir, 'by-stowage');
    const out = await stowage(['copy', `${upstream.host}/app:v1`, `oci:${ours}`], { cwd: dir });
    expect(out.code).toBe(0);
    const raw = await skopeo('inspect', '--raw', `oci:${ours}:v1`);
    expect(sha256(Buffer.from(raw.stdout))).toBe(imageDigest);
    await skopeo(
      'copy',
      '--preserve-digests',
      '--dest-tls-verify=false',
      `oci:${ours}:v1`,
      `docker://${upstream.host}/via-layout:v1`,
    );
    expect((await stowage(['digest', `${upstream.host}/via-layout:v1`], { cwd: dir })).out).toBe(
      `${imageDigest}\n`,
    );
    // without a tag the layout's one image is the source
    const untagged = await stowage(['copy', `oci:${ours}`, `store:layout/app:v9`, '--json'], { cwd: dir });
    expect([untagged.code, JSON.parse(untagged.out).digest]).toEqual([0, imageDigest]);
    expect((await readdir(ours)).sort()).toEqual(['blobs', 'index.json', 'oci-layout']);

    for (const [args, line] of [
      [['ls', 'oci:'], /^stowage: "oci:": oci: needs a directory/],
      [['digest', `oci:${ours}:bad tag`], /is not a valid tag/],
      [
        ['digest', `oci:${join(dir, 'absent')}:v1`],
        /^stowage: MANIFEST_UNKNOWN: oci:\/.*\/absent:v1 is not there/,
      ],
      [
        ['copy', `oci:${join(dir, 'absent')}:v1`, 'store:x:v1'],
        /^stowage: NAME_UNKNOWN: \/.*\/absent is not an OCI image layout/,
      ],
    ] as [string[], RegExp][]) {
      const bad = await stowage(args, { cwd: dir });
      expect(bad.code, args.join(' ')).toBe(line.source.includes('_UNKNOWN') ? 6 : 2);
      expect(bad.lines[0], args.join(' ')).toMatch(line);
    }
    // a place that refuses new entries with ENOENT (Node's own recursive mkdir loops for ever there)
    const refused = await stowage(['copy', `${upstream.host}/app:v1`, 'oci:/proc/stowage-nowhere:v1'], {
      cwd: dir,
    });
    expect([refused.code, refused.lines]).toEqual([
      1,
      [expect.stringMatching(/^stowage: ENOENT: .*\/proc\/stowage-nowhere/)],
    ]);
    expect((await readdir(dir)).sort()).toEqual(['By Skopeo', 'by-stowage', 'data']);
  }, 120_000);

  it('mutate pushes a relabelled, annotated manifest that skopeo reads; the original stays', async () => {
    for (const [name, host] of registries()) {
      const dir = await mkdtemp(join(work, `mutate-${name}-`));
      await stowage(['copy', `${host}/app:v1`, `${host}/mut:v1`], { cwd: dir });
      await stowage(['copy', `${host}/multi:v1`, `${host}/mutidx:v1`], { cwd: dir });
      const run = await stowage(
        [
          'mutate',
          `${host}/mut:v1`,
          '-l',
          'team=core',
          '--remove-label',
          'stowage.test.seed',
          '-a',
          'org.opencontainers.image.version=1.2.3',
          '--tag',
          'v2',
          '--json',
        ],
        { cwd: dir },
      );
      expect([run.code, run.err], name).toEqual([0, '']);
      const result = JSON.parse(run.out);
      expect(result, name).toMatchObject({
        repository: `${host}/mut`,
        sourceDigest: imageDigest,
        tag: 'v2',
        mediaType: image.manifest.mediaType,
        children: [],
      });
      expect(result.digest, name).not.toBe(imageDigest);
      expect((await stowage(['digest', `${host}/mut:v2`], { cwd: dir })).out, name).toBe(
        `${result.digest}\n`,
      );
      expect((await stowage(['digest', `${host}/mut:v1`], { cwd: dir })).out, name).toBe(`${imageDigest}\n`);
      const inspected = JSON.parse(
        (await promisify(execFile)('skopeo', ['inspect', '--tls-verify=false', `docker://${host}/mut:v2`]))
          .stdout,
      );
      expect([inspected.Digest, inspected.Labels], name).toEqual([result.digest, { team: 'core' }]);
      const raw = JSON.parse((await stowage(['manifest', 'get', `${host}/mut:v2`], { cwd: dir })).out);
      expect(raw.annotations, name).toEqual({ 'org.opencontainers.image.version': '1.2.3' });

      // an index: every image relabelled, pushed by digest only without --tag
      const multi = await stowage(['mutate', `${host}/mutidx:v1`, '--label', 'team=core'], { cwd: dir });
      expect(multi.code, name).toBe(0);
      expect(multi.out, name).toMatch(new RegExp(`^${host}/mutidx@sha256:[0-9a-f]{64}\\n$`));
      const reference = multi.out.trim();
      const arm = await stowage(['config', reference, '--platform', 'linux/arm64'], { cwd: dir });
      expect(JSON.parse(arm.out).config.Labels.team, name).toBe('core');
      expect((await stowage(['digest', `${host}/mutidx:v1`], { cwd: dir })).out, name).toBe(
        `${indexDigest}\n`,
      );

      const mistakes: [string[], number, RegExp][] = [
        [['mutate', `${host}/mut:v1`], 2, /^stowage: mutate needs a change: /],
        [
          ['mutate', `${host}/mut:v1`, '--label', 'novalue'],
          2,
          /^stowage: --label takes key=value, not "novalue"/,
        ],
        [
          ['mutate', `${host}/mut:v1`, '-l', 'a=b', '--tag', 'bad tag'],
          2,
          /^stowage: --tag "bad tag" is not a valid tag/,
        ],
        [['mutate', `${host}/mut:nope`, '-l', 'a=b'], 6, /^stowage: MANIFEST_UNKNOWN: /],
      ];
      for (const [args, code, line] of mistakes) {
        const bad = await stowage(args, { cwd: dir });
        expect([bad.code, bad.lines[0]], `${name} ${args.join(' ')}`).toEqual([
          code,
          expect.stringMatching(line),
        ]);
        expect(bad.err, name).not.toMatch(/\n\s+at /);
      }
    }
  }, 120_000);

  it('referrers lists an artifact pushed with a subject; inspect shows what skopeo inspect shows', async () => {
    for (const [name, host] of registries()) {
      const client = createRegistryClient({ registry: host, auth: { useConfigFiles: false } });
      clients.push(client);
      const artifact = randomArtifact({
        subject: image.descriptor,
        artifactType: 'application/vnd.test.sbom',
        seed: 21,
      });
      await pushImage(client, 'app', artifact);
      const listed = await stowage(['referrers', `${host}/app:v1`, '--json'], { cwd: work });
      expect(listed.code, name).toBe(0);
      const json = JSON.parse(listed.out);
      expect(json.subject, name).toBe(imageDigest);
      expect(
        json.manifests.map((d: { digest: string }) => d.digest),
        name,
      ).toEqual([artifact.descriptor.digest]);
      const filtered = await stowage(
        ['referrers', `${host}/app:v1`, '--artifact-type', 'application/other'],
        {
          cwd: work,
        },
      );
      expect([filtered.code, filtered.out], name).toEqual([0, '']);

      const ours = JSON.parse(
        (await stowage(['inspect', `${host}/multi:v1`, '--platform', 'linux/arm64'], { cwd: work })).out,
      );
      const theirs = JSON.parse(
        (
          await promisify(execFile)('skopeo', [
            'inspect',
            '--tls-verify=false',
            '--override-arch',
            'arm64',
            `docker://${host}/multi:v1`,
          ])
        ).stdout,
      );
      for (const key of [
        'Name',
        'Digest',
        'RepoTags',
        'Created',
        'Labels',
        'Architecture',
        'Os',
        'Layers',
        'Env',
      ]) {
        expect(ours[key], `${name} ${key}`).toEqual(theirs[key]);
      }
      expect(
        ours.LayersData.map((l: { Digest: string }) => l.Digest),
        name,
      ).toEqual(theirs.Layers);
    }
  }, 120_000);

  it('the store commands and store: read, change and check the local image store', async () => {
    const root = join(work, 'store-cmds');
    const at = ['--root', root];
    const copied = await stowage(['copy', `${upstream.host}/multi:v1`, 'store:mirror/multi:v1', ...at], {
      cwd: work,
    });
    expect(copied.code).toBe(0);
    await stowage(['copy', `${upstream.host}/app:v1`, 'store:mirror/app:v1', ...at], { cwd: work });
    await stowage(['tag', 'store:mirror/app:v1', 'old', ...at], { cwd: work });

    const images = await stowage(['store', 'images', '--json', ...at], { cwd: work });
    expect(images.code).toBe(0);
    expect(
      JSON.parse(images.out).images.map(
        (i: { repository: string; tag: string; digest: string }) => `${i.repository}:${i.tag}@${i.digest}`,
      ),
    ).toEqual([
      `mirror/app:old@${imageDigest}`,
      `mirror/app:v1@${imageDigest}`,
      `mirror/multi:v1@${indexDigest}`,
    ]);
    const ls = await stowage(['ls', 'store:mirror/app', '--json', ...at], { cwd: work });
    expect(JSON.parse(ls.out)).toEqual({ repository: 'store:mirror/app', tags: ['old', 'v1'] });
    const local = JSON.parse(
      (
        await stowage(['store', 'inspect', 'mirror/multi:v1', '--platform', 'linux/arm64', ...at], {
          cwd: work,
        })
      ).out,
    );
    const remote = JSON.parse(
      (await stowage(['inspect', `${upstream.host}/multi:v1`, '--platform', 'linux/arm64'], { cwd: work }))
        .out,
    );
    expect({ ...local, Name: undefined, RepoTags: undefined }).toEqual({
      ...remote,
      Name: undefined,
      RepoTags: undefined,
    });

    const rm = await stowage(['store', 'rm', 'mirror/app:old', ...at], { cwd: work });
    expect([rm.code, rm.out]).toEqual([0, 'removed mirror/app:old\n']);
    const rmAll = await stowage(['store', 'rm', `mirror/multi@${indexDigest}`, ...at], { cwd: work });
    expect(rmAll.code).toBe(0);
    const dry = await stowage(['store', 'gc', '--dry-run', '--grace', '0s', '--json', ...at], { cwd: work });
    const report = JSON.parse(dry.out);
    expect(report.dryRun).toBe(true);
    expect(report.blobsRemoved.length).toBeGreaterThan(0);
    const gc = await stowage(['store', 'gc', '--grace', '0s', '--json', ...at], { cwd: work });
    expect(JSON.parse(gc.out).blobsRemoved.sort()).toEqual([...report.blobsRemoved].sort());
    const again = await stowage(['store', 'gc', '--grace', '0s', ...at], { cwd: work });
    expect(again.out).toBe('removed 0 blobs (0.0 MiB), 0 manifests, 0 upload sessions\n');

    const clean = await stowage(['store', 'fsck', '--json', ...at], { cwd: work });
    expect([clean.code, JSON.parse(clean.out).problems]).toEqual([0, []]);
    // a layer changed on disk: fsck names it and exits 1
    const layer = image.layers[0] as RandomImage['layers'][number];
    const path = join(
      root,
      'mirror',
      'app',
      'blobs',
      'sha256',
      layer.descriptor.digest.slice('sha256:'.length),
    );
    await writeFile(path, 'not the layer any more');
    const broken = await stowage(['store', 'fsck', ...at], { cwd: work });
    expect(broken.code).toBe(1);
    expect(broken.out).toMatch(new RegExp(`corrupt-blob: .*${layer.descriptor.digest.slice(7, 19)}`));
    expect(broken.out).toMatch(/: 1 problems\n$/);

    // read commands open the store read-only: a missing root is an error, not a new store
    const none = await stowage(['store', 'images', '--root', join(work, 'no-store-here')], { cwd: work });
    expect(none.code).toBe(6);
    expect(none.lines).toEqual([
      expect.stringMatching(/^stowage: NAME_UNKNOWN: no image store at .*no-store-here \(give --root/),
    ]);
    await expect(readdir(join(work, 'no-store-here'))).rejects.toThrow();
  }, 120_000);

  it('copy draws its progress line on a terminal (a pty) and never into a pipe', async () => {
    // util-linux script(1) gives the command a pty for stdin, stdout and stderr
    const command = [process.execPath, bin, 'copy', `${upstream.host}/app:v1`, `${ours}/pty/app:v1`]
      .map((w) => `'${w}'`)
      .join(' ');
    const { stdout } = await promisify(execFile)('script', ['-qec', command, '/dev/null'], { cwd: work });
    // the line is redrawn in place: carriage return, erase to the end of the line
    expect(stdout).toContain('\r\u001b[Kcopying: ');
    expect(stdout).toMatch(/copying: \d+ blobs/);
    expect(stdout).toContain(`${ours}/pty/app:v1: ${imageDigest}`);
    const piped = await stowage(['copy', `${upstream.host}/app:v1`, `${ours}/pty/app:v2`], { cwd: work });
    expect(piped.code).toBe(0);
    expect(piped.err).toBe('');
    expect(piped.out).not.toContain('\u001b');

    // store gc draws its own line on a terminal, and none into a pipe
    const root = join(work, 'pty-store');
    expect(
      (await stowage(['copy', `${upstream.host}/app:v1`, 'store:pty/app:v1', '--root', root], { cwd: work }))
        .code,
    ).toBe(0);
    const gc = [process.execPath, bin, 'store', 'gc', '--dry-run', '--grace', '0s', '--root', root]
      .map((w) => `'${w}'`)
      .join(' ');
    const { stdout: drawn } = await promisify(execFile)('script', ['-qec', gc, '/dev/null'], { cwd: work });
    expect(drawn).toContain('\r\u001b[Kgc: ');
    expect(drawn).toMatch(/gc: (marking|sweeping), /);
    expect(drawn).toContain('would remove 0 blobs');
    const gcPiped = await stowage(['store', 'gc', '--dry-run', '--grace', '0s', '--root', root], {
      cwd: work,
    });
    expect([gcPiped.code, gcPiped.err]).toEqual([0, '']);
    expect(gcPiped.out).not.toContain('\u001b');
  }, 60_000);

  it('bad input and failing registries are one line and a documented exit code, never a stack trace', async () => {
    const cases: [string[], number, RegExp][] = [
      [['ls'], 2, /^stowage: ls needs a repository \(see stowage ls --help\)$/],
      [
        ['ls', 'Not/Valid'],
        2,
        /^stowage: invalid reference "Not\/Valid": .* \(the repository\) \(see stowage ls --help\)$/,
      ],
      [['ls', `${ours}/app`, '--bogus'], 2, /^stowage: unknown option --bogus \(see stowage ls --help\)$/],
      [
        ['ls', `${ours}/app`, '--dry-run'],
        2,
        /^stowage: --dry-run is not an option of ls \(see stowage ls --help\)$/,
      ],
      [
        ['blob', 'get', `${ours}/app:v1`],
        2,
        /^stowage: a blob is named by repository@digest, not ".*app:v1" \(see stowage blob get --help\)$/,
      ],
      [
        ['digest', `${ours}/app:v1`, '--platform', 'linux'],
        2,
        /^stowage: --platform .* \(see stowage digest --help\)$/,
      ],
      [
        ['copy', `${ours}/app:v1`],
        2,
        /^stowage: copy needs a source and a destination \(see stowage copy --help\)$/,
      ],
      [['blob'], 2, /^stowage: blob needs a subcommand: get, put or delete \(see stowage --help\)$/],
      [['digest', `${ours}/app:nope`], 6, /^stowage: MANIFEST_UNKNOWN: /],
      [['ls', `${upstream.host}/nothing-here`], 6, /^stowage: NAME_UNKNOWN: /],
      [['manifest', 'get', `${ours}/app:nope`], 6, /^stowage: MANIFEST_UNKNOWN: /],
      [
        ['ls', '127.0.0.1:1/app'],
        8,
        /^stowage: NETWORK_ERROR: .*: check the registry's address and that it is up/,
      ],
    ];
    const cwd = await mkdtemp(join(work, 'mistakes-'));
    for (const [args, code, line] of cases) {
      const run = await stowage(args, { cwd });
      expect(run.code, args.join(' ')).toBe(code);
      expect(run.lines[0], args.join(' ')).toMatch(line);
      expect(run.err, args.join(' ')).not.toMatch(/\n\s+at /);
      expect(run.out, args.join(' ')).toBe('');
    }
    expect(await readdir(cwd)).toEqual([]);
  }, 120_000);
});
