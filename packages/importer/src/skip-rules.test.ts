// A tree with one case of each skip rule: everything else imports, one warning
// per case (a skipped manifest once, however many tags reach it), success; a
// manifest payload that is not JSON stops the import; a tag row the database
// refuses is skipped alone.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createPgliteDatabase, type Database, DatabaseError, migrate } from '@stowage/metadata-db';
import { DistributionTreeWriter as TreeWriter } from '@stowage/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fakeClock } from '../test/fake-clock.js';
import { withFaults } from '../test/faulty-database.js';
import { readRows } from '../test/fixture.js';
import { ImportError } from './errors.js';
import { importTree } from './importer.js';
import { parseLink } from './layout.js';

const dirs: string[] = [];
afterAll(async () => {
  for (const dir of dirs) await rm(dir, { recursive: true, force: true });
});

async function freshTree(): Promise<TreeWriter> {
  const dir = await mkdtemp(join(tmpdir(), 'stowage-skip-'));
  dirs.push(dir);
  return new TreeWriter(dir);
}

describe('link parsing', () => {
  it('is strict', () => {
    const hex = 'a'.repeat(64);
    expect(parseLink(`sha256:${hex}`)).toEqual({ ok: true, digest: `sha256:${hex}` });
    expect(parseLink(`sha256:${hex}\n`)).toMatchObject({ ok: false, problem: 'invalid' });
    expect(parseLink('')).toMatchObject({ ok: false, problem: 'invalid' });
    expect(parseLink(`md5:${'a'.repeat(32)}`)).toMatchObject({ ok: false, problem: 'unsupported' });
    expect(parseLink('sha256:abc')).toMatchObject({ ok: false, problem: 'invalid' });
    expect(parseLink(`sha256:${'A'.repeat(64)}`)).toMatchObject({ ok: false, problem: 'invalid' });
  });
});

describe('skip rules', () => {
  let db: Database;
  beforeAll(async () => {
    db = await createPgliteDatabase();
    await migrate(db);
  });
  afterAll(() => db?.close());

  it('imports everything else, warns once per case, and succeeds', async () => {
    const tree = await freshTree();
    const repo = 'corrupt/app';
    // a healthy image that must arrive
    const good = await tree.image(repo);
    await tree.tag(repo, 'good', good.digest);
    // empty manifest: the blob is 0 bytes
    const empty = await tree.rawManifest(repo, '{"schemaVersion":2,"placeholder":1}');
    await tree.blobData(empty, '');
    await tree.tag(repo, 'empty', empty);
    // a second tag on the same skipped manifest: still one warning, naming both tags
    await tree.tag(repo, 'empty-again', empty);
    // unknown revision: the tag points at a manifest with no revision link
    const unlinked = await tree.image('elsewhere/app');
    await tree.tag(repo, 'unknown-revision', unlinked.digest);
    // schema 1
    const schema1 = await tree.rawManifest(repo, '{"schemaVersion":1,"name":"x","tag":"y","fsLayers":[]}');
    await tree.tag(repo, 'schema1', schema1);
    // invalid and unsupported tag links, a tag with no link at all
    await tree.tag(repo, 'invalid-link', '');
    await tree.tag(repo, 'unsupported-link', `md5:${'0'.repeat(32)}`);
    await tree.tagWithoutLink(repo, 'missing-link');
    // unlinked config: the whole manifest is skipped
    const noConfig = await tree.image(repo, { linkConfig: false });
    await tree.tag(repo, 'unlinked-config', noConfig.digest);
    // unlinked layer: the manifest arrives without that layer
    const orphanLayer = await tree.blob('a layer no _layers link names');
    const partial = await tree.image(repo, { layers: ['linked layer', { digest: orphanLayer, size: 30 }] });
    await tree.tag(repo, 'unlinked-layer', partial.digest);
    // broken index child: the index arrives with its good child only
    const child = await tree.image(repo);
    const index = await tree.index(repo, [child, { digest: unlinked.digest, size: unlinked.size }]);
    await tree.tag(repo, 'partial-index', index.digest);
    // buildx cache "index": imported as an image manifest, marked non-conformant
    const cacheConfig = await tree.blob('{"layers":[]}');
    await tree.layerLink(repo, cacheConfig);
    const cacheLayer = await tree.blob('cache layer');
    await tree.layerLink(repo, cacheLayer);
    const cache = await tree.rawManifest(
      repo,
      JSON.stringify({
        schemaVersion: 2,
        mediaType: 'application/vnd.oci.image.index.v1+json',
        manifests: [
          { mediaType: 'application/vnd.buildkit.cacheconfig.v0', digest: cacheConfig, size: 13 },
          { mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: cacheLayer, size: 11 },
        ],
      }),
    );
    await tree.tag(repo, 'buildcache', cache);
    // an unknown layer media type is stored as application/octet-stream
    const oddLayer = await tree.blob('odd layer');
    await tree.layerLink(repo, oddLayer);
    const odd = await tree.image(repo, {
      layers: [{ digest: oddLayer, size: 9, mediaType: 'application/x-made-up+tar' }],
    });
    await tree.tag(repo, 'odd-layer', odd.digest);
    // a big configuration is recorded without its payload
    const big = await tree.image(repo, { config: JSON.stringify({ os: 'linux', pad: 'x'.repeat(300) }) });
    await tree.tag(repo, 'big-config', big.digest);

    const warnings: string[] = [];
    const result = await importTree({
      db,
      root: tree.root,
      configPayloadLimit: 200,
      onWarning: (w) => warnings.push(`${w.reason} ${w.tag ?? ''}`.trim()),
    });
    // the manifest behind the tag `unknown-revision` is also the index's broken child: one warning for both
    expect(warnings.sort()).toEqual(
      [
        'broken-index-child',
        'empty-manifest empty',
        'invalid-digest-link invalid-link',
        'missing-tag-link missing-link',
        'schema1-manifest schema1',
        'unknown-revision unknown-revision',
        'unlinked-config unlinked-config',
        'unlinked-layer',
        'unsupported-digest-link unsupported-link',
      ].sort(),
    );
    const rows = await readRows(db);
    const tags = rows.tags.filter((t) => t.startsWith(`${repo} `)).map((t) => t.split(' ')[1]);
    expect(tags).toEqual([
      'big-config',
      'buildcache',
      'good',
      'odd-layer',
      'partial-index',
      'unlinked-layer',
    ]);
    // the partial image lacks its unlinked layer, the index keeps its good child
    expect(rows.layers.filter((l) => l.startsWith(`${repo} ${partial.digest}`))).toHaveLength(1);
    expect(rows.references).toEqual([`${repo} ${index.digest} ${child.digest}`]);
    const flags = await db.query<{ non_conformant: boolean; media_type: string }>(
      `SELECT m.non_conformant, t.media_type FROM manifests m JOIN media_types t ON t.id = m.media_type_id
       WHERE m.digest = decode($1, 'hex')`,
      [`01${cache.slice(7)}`],
    );
    expect(flags.rows).toEqual([
      { non_conformant: true, media_type: 'application/vnd.oci.image.manifest.v1+json' },
    ]);
    const oddType = await db.query<{ media_type: string }>(
      `SELECT t.media_type FROM layers l JOIN media_types t ON t.id = l.media_type_id WHERE l.digest = decode($1, 'hex')`,
      [`01${oddLayer.slice(7)}`],
    );
    expect(oddType.rows).toEqual([{ media_type: 'application/octet-stream' }]);
    const configs = await db.query<{ has: boolean }>(
      `SELECT configuration_payload IS NOT NULL AS has FROM manifests WHERE digest = decode($1, 'hex')`,
      [`01${big.digest.slice(7)}`],
    );
    expect(configs.rows).toEqual([{ has: false }]);
    expect(result.warnings).toHaveLength(warnings.length);
    expect(result.warnings.find((w) => w.reason === 'empty-manifest')).toMatchObject({
      digest: empty,
      tag: 'empty',
      tags: ['empty', 'empty-again'],
    });
    expect(result.warnings.find((w) => w.reason === 'unknown-revision')?.tags).toEqual(['unknown-revision']);
  });

  it('skips a tag row the database refuses, warns naming it, and imports the rest', async () => {
    const own = await createPgliteDatabase();
    await migrate(own);
    await own.exec("ALTER TABLE tags ADD CONSTRAINT no_refused_tags CHECK (name NOT LIKE 'refused%')");
    const tree = await freshTree();
    const repo = 'picky/app';
    const image = await tree.image(repo);
    for (const tag of ['before', 'refused', 'refused-too', 'zafter']) await tree.tag(repo, tag, image.digest);
    const result = await importTree({ db: own, root: tree.root, lockfiles: false });
    expect(result.warnings).toEqual([
      expect.objectContaining({
        reason: 'tag-rejected',
        repository: repo,
        tag: 'refused',
        digest: image.digest,
      }),
      expect.objectContaining({
        reason: 'tag-rejected',
        repository: repo,
        tag: 'refused-too',
        digest: image.digest,
      }),
    ]);
    expect(result.warnings[0]?.detail).toMatch(/CHECK_VIOLATION/);
    expect((await readRows(own)).tags).toEqual([
      `${repo} before ${image.digest}`,
      `${repo} zafter ${image.digest}`,
    ]);
    expect(result.tags).toBe(2);
    await own.close();
  });

  it('still retries the repository when a tag insert fails with a retryable error', async () => {
    const inner = await createPgliteDatabase();
    await migrate(inner);
    const tree = await freshTree();
    const repo = 'flaky/app';
    const image = await tree.image(repo);
    for (const tag of ['a', 'flaky', 'z']) await tree.tag(repo, tag, image.digest);
    let failed = false;
    const flaky = withFaults(inner, {
      onQuery(sql, params) {
        // the statement that writes tag 'flaky' (with its neighbours, or alone)
        if (!failed && sql.includes('INSERT INTO tags') && params?.includes('flaky')) {
          failed = true;
          throw new DatabaseError('DEADLOCK', 'deadlock detected (injected)');
        }
      },
    });
    const result = await importTree({ db: flaky, root: tree.root, lockfiles: false, clock: fakeClock() });
    expect(failed).toBe(true);
    expect(result.retries).toBe(1);
    expect(result.warnings).toEqual([]);
    expect((await readRows(inner)).tags).toHaveLength(3);
    await inner.close();
  });

  it('stops with a clear error on a manifest payload that is not JSON, and keeps nothing of that repository', async () => {
    const tree = await freshTree();
    const good = await tree.image('fine/app');
    await tree.tag('fine/app', 'v1', good.digest);
    const broken = await tree.rawManifest('zz/broken', 'this is not json');
    await tree.tag('zz/broken', 'v1', broken);
    const error = await importTree({ db, root: tree.root, lockfiles: false }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ImportError);
    expect((error as ImportError).code).toBe('MANIFEST_NOT_JSON');
    expect((error as ImportError).message).toMatch(/zz\/broken.*not JSON/);
    const repositories = (await readRows(db)).repositories;
    expect(repositories).toContain('fine/app');
    expect(repositories).not.toContain('zz/broken');
  });
});
