// Builds docker-registry (distribution 2.8) trees by pushing with skopeo, and
// reads back the rows an import should produce.
import { execFile } from 'node:child_process';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { createImageStore } from '@stowage/image-store';
import type { Queryable } from '@stowage/metadata-db';
import {
  pushImage,
  pushIndex,
  type RandomImage,
  randomBlob,
  randomImage,
  randomIndex,
  startDockerRegistry,
} from '@stowage/testing';

const run = promisify(execFile);

export interface Fixture {
  /** The registry's storage root (what `rootdirectory` names). */
  readonly root: string;
  /** tag rows: `repository tag digest`, sorted */
  readonly tags: string[];
  /** manifest rows: `repository digest`, sorted */
  readonly manifests: string[];
  /** manifest_references rows: `repository parent child`, sorted */
  readonly references: string[];
  /** layers rows: `repository manifest layer`, sorted */
  readonly layers: string[];
  /** repository_blobs rows: `repository digest`, sorted */
  readonly repositoryBlobs: string[];
  /** every blob of the tree */
  readonly blobs: string[];
  readonly namespaces: string[];
  readonly repositories: string[];
  cleanup(): Promise<void>;
}

/**
 * Pushes with skopeo into a fresh docker-registry: `demo/app` (a tag moved,
 * leaving a dangling manifest; two tags on one manifest), a two-platform index
 * in `demo/multi` and in the nested `group/sub/nested`, two images sharing a
 * layer in `shared/one` and `shared/two`. Then stops the registry.
 */
export async function buildFixture(): Promise<Fixture> {
  const work = await mkdtemp(join(tmpdir(), 'stowage-importer-fixture-'));
  const root = join(work, 'registry');
  const registry = await startDockerRegistry({ dataDir: root });
  const source = await createImageStore({ root: join(work, 'source') });
  const push = async (layout: string, tag: string, target: string) => {
    await run('skopeo', [
      'copy',
      '--quiet',
      '--all',
      '--preserve-digests',
      '--dest-tls-verify=false',
      `oci:${join(source.root, layout)}:${tag}`,
      `docker://${registry.host}/${target}`,
    ]);
  };
  const dangling = randomImage({ layers: 1 });
  const current = randomImage({ layers: 2 });
  const index = randomIndex({ platforms: ['linux/amd64', 'linux/arm64'], sharedLayers: 1 });
  const shared = randomBlob(2048, { mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip' });
  const one = randomImage({ layers: 1, sharedLayers: [shared] });
  const two = randomImage({ layers: 1, sharedLayers: [shared] });
  await pushImage(source, 'l/dangling', dangling, 'v');
  await pushImage(source, 'l/current', current, 'v');
  await pushIndex(source, 'l/index', index, 'v');
  await pushImage(source, 'l/one', one, 'v');
  await pushImage(source, 'l/two', two, 'v');
  await source.flush();
  await push('l/dangling', 'v', 'demo/app:old');
  await push('l/current', 'v', 'demo/app:old');
  await push('l/current', 'v', 'demo/app:v2');
  await push('l/index', 'v', 'demo/multi:latest');
  await push('l/index', 'v', 'group/sub/nested:1.0');
  await push('l/one', 'v', 'shared/one:v1');
  await push('l/two', 'v', 'shared/two:v1');
  await registry.stop();
  await source.close();

  const tags: string[] = [];
  const manifests: string[] = [];
  const references: string[] = [];
  const layers: string[] = [];
  const repositoryBlobs: string[] = [];
  const image = (repository: string, img: RandomImage) => {
    manifests.push(`${repository} ${img.manifest.digest}`);
    for (const layer of img.layers)
      layers.push(`${repository} ${img.manifest.digest} ${layer.descriptor.digest}`);
    for (const blob of img.blobs) repositoryBlobs.push(`${repository} ${blob.descriptor.digest}`);
  };
  image('demo/app', current);
  tags.push(`demo/app old ${current.manifest.digest}`, `demo/app v2 ${current.manifest.digest}`);
  for (const repository of ['demo/multi', 'group/sub/nested']) {
    manifests.push(`${repository} ${index.index.digest}`);
    for (const child of index.images) {
      image(repository, child);
      references.push(`${repository} ${index.index.digest} ${child.manifest.digest}`);
    }
    tags.push(`${repository} ${repository === 'demo/multi' ? 'latest' : '1.0'} ${index.index.digest}`);
  }
  image('shared/one', one);
  image('shared/two', two);
  tags.push(`shared/one v1 ${one.manifest.digest}`, `shared/two v1 ${two.manifest.digest}`);
  const blobs: string[] = [];
  const blobRoot = join(root, 'docker/registry/v2/blobs/sha256');
  for (const shard of await readdir(blobRoot)) {
    for (const hex of await readdir(join(blobRoot, shard))) blobs.push(`sha256:${hex}`);
  }
  const unique = (list: string[]) => [...new Set(list)].sort();
  return {
    root,
    tags: unique(tags),
    manifests: unique(manifests),
    references: unique(references),
    layers: unique(layers),
    repositoryBlobs: unique(repositoryBlobs),
    blobs: unique(blobs),
    namespaces: ['demo', 'group', 'shared'],
    repositories: ['demo/app', 'demo/multi', 'group/sub/nested', 'shared/one', 'shared/two'],
    cleanup: () => rm(work, { recursive: true, force: true }),
  };
}

const hex = (column: string) =>
  `(CASE get_byte(${column}, 0) WHEN 1 THEN 'sha256:' ELSE 'sha512:' END || encode(substring(${column} FROM 2), 'hex'))`;

/** The rows an import wrote, in the fixture's shapes. */
export async function readRows(db: Queryable) {
  const list = async (sql: string) => (await db.query<{ row: string }>(sql)).rows.map((r) => r.row).sort();
  return {
    namespaces: await list('SELECT name AS row FROM top_level_namespaces'),
    repositories: await list('SELECT path AS row FROM repositories'),
    tags: await list(
      `SELECT r.path || ' ' || t.name || ' ' || ${hex('m.digest')} AS row FROM tags t
       JOIN repositories r ON r.id = t.repository_id JOIN manifests m ON m.id = t.manifest_id`,
    ),
    manifests: await list(
      `SELECT r.path || ' ' || ${hex('m.digest')} AS row FROM manifests m JOIN repositories r ON r.id = m.repository_id`,
    ),
    references: await list(
      `SELECT r.path || ' ' || ${hex('p.digest')} || ' ' || ${hex('c.digest')} AS row FROM manifest_references x
       JOIN repositories r ON r.id = x.repository_id JOIN manifests p ON p.id = x.parent_id JOIN manifests c ON c.id = x.child_id`,
    ),
    layers: await list(
      `SELECT r.path || ' ' || ${hex('m.digest')} || ' ' || ${hex('l.digest')} AS row FROM layers l
       JOIN repositories r ON r.id = l.repository_id JOIN manifests m ON m.id = l.manifest_id`,
    ),
    repositoryBlobs: await list(
      `SELECT r.path || ' ' || ${hex('b.blob_digest')} AS row FROM repository_blobs b JOIN repositories r ON r.id = b.repository_id`,
    ),
    blobs: await list(`SELECT ${hex('digest')} AS row FROM blobs`),
  };
}
