// bench/importer: a distribution tree of 200 repositories and 10,000 tags with
// shared layers, written in docker-registry's exact layout (and checked by having
// docker-registry serve it), imported into PostgreSQL (and PGlite). Prints tags
// per second and the ratio of the import time to a bare walk of the same tree
// that reads every link and manifest. Goals (issue 16): an import at most 1.5x the
// walk, a rerun that changes nothing at most 1.1x, PGlite at most 3x.
// Usage: pnpm bench importer [repositories=200] [tagsPerRepository=50]
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DistributionTree, importTree } from '@stowage/importer';
import { createPgliteDatabase, createPostgresDatabase, migrate } from '@stowage/metadata-db';
import { isDigest } from '@stowage/oci';
import {
  createTestDatabase,
  DistributionTreeWriter,
  populateTree,
  postgresPeer,
  startDockerRegistry,
} from '@stowage/testing';
import { time } from '../lib.js';

const repositories = Number(process.argv[2] ?? 200);
const tagsPerRepository = Number(process.argv[3] ?? 50);
const work = await mkdtemp(join(tmpdir(), 'stowage-bench-importer-'));

/** Reads what an import reads, and nothing more: every repository, tag link, revision, manifest, layer link. */
async function bareWalk(root: string): Promise<number> {
  const tree = new DistributionTree(root);
  let tags = 0;
  for await (const repository of tree.repositories()) {
    const seen = new Set<string>();
    for (const tag of await tree.tags(repository)) {
      const link = await tree.tagLink(repository, tag);
      tags++;
      if (!link.ok || seen.has(link.digest)) continue;
      seen.add(link.digest);
      await tree.revision(repository, link.digest);
      const manifest = JSON.parse(String(await tree.blob(link.digest))) as {
        config: { digest: string };
        layers: { digest: string }[];
      };
      for (const blob of [manifest.config, ...manifest.layers]) {
        if (!isDigest(blob.digest)) continue;
        await tree.layerLink(repository, blob.digest);
        await tree.blobSize(blob.digest);
      }
    }
  }
  for await (const _ of tree.blobs()) {
    // every blob's size, as the common-blobs step reads them
  }
  return tags;
}

try {
  const root = join(work, 'registry');
  const started = performance.now();
  await populateTree(new DistributionTreeWriter(root), { repositories, tagsPerRepository });
  console.log(
    `tree: ${repositories} repositories, ${repositories * tagsPerRepository} tags, written in ${((performance.now() - started) / 1000).toFixed(1)} s`,
  );

  // docker-registry serves the tree: the layout is its own
  const registry = await startDockerRegistry({ dataDir: root });
  try {
    const catalog = (await (await fetch(`${registry.url}/v2/_catalog?n=1000`)).json()) as {
      repositories: string[];
    };
    if (catalog.repositories.length !== repositories)
      throw new Error(`docker-registry lists ${catalog.repositories.length} repositories`);
    const tags = (await (await fetch(`${registry.url}/v2/team0/app0/tags/list`)).json()) as {
      tags: string[];
    };
    if (tags.tags.length !== tagsPerRepository)
      throw new Error(`docker-registry lists ${tags.tags.length} tags`);
    const manifest = await fetch(`${registry.url}/v2/team0/app0/manifests/v0`, {
      headers: { accept: 'application/vnd.oci.image.manifest.v1+json' },
    });
    if (manifest.status !== 200) throw new Error(`docker-registry answers ${manifest.status} for a manifest`);
    console.log('docker-registry serves the tree: catalog, tags and manifests check out');
  } finally {
    await registry.stop();
  }

  await bareWalk(root); // warm the page cache for both
  const walk = await time(() => bareWalk(root));
  const totalTags = repositories * tagsPerRepository;
  console.log(`bare walk (every link and manifest read): ${walk.toFixed(3)} s`);

  if ((await postgresPeer()).available) {
    const test = await createTestDatabase('stowage_bench');
    const db = createPostgresDatabase({ connectionString: test.url });
    try {
      await migrate(db);
      const seconds = await time(() => importTree({ db, root, lockfiles: false }));
      console.log(
        `import into PostgreSQL: ${seconds.toFixed(3)} s, ${(totalTags / seconds).toFixed(0)} tags/s, ratio to the bare walk ${(seconds / walk).toFixed(2)} (goal: at most 1.5)`,
      );
      const rerun = await time(() => importTree({ db, root, lockfiles: false }));
      console.log(
        `rerun (nothing to change): ${rerun.toFixed(3)} s, ratio to the bare walk ${(rerun / walk).toFixed(2)} (goal: at most 1.1)`,
      );
    } finally {
      await db.close();
      await test.drop();
    }
  } else {
    console.log('PostgreSQL is not reachable: the PostgreSQL part is skipped');
  }
  const lite = await createPgliteDatabase();
  await migrate(lite);
  const seconds = await time(() => importTree({ db: lite, root, lockfiles: false }));
  console.log(
    `import into PGlite: ${seconds.toFixed(3)} s, ${(totalTags / seconds).toFixed(0)} tags/s, ratio to the bare walk ${(seconds / walk).toFixed(2)} (goal: at most 3)`,
  );
  await lite.close();
} finally {
  await rm(work, { recursive: true, force: true });
}
