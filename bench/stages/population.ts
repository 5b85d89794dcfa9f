// The repository bench/stages reads: a werf v2 stages repository written
// straight into docker-registry's on-disk layout (far faster than 60,000
// pushes), kept between runs under .bench-tmp/stages/ (ignored by git).
//
// Tags: STAGE_TAGS stage tags `<digest>-<13-digit ts>` over digests with 1–5
// stages each, a rejected record for some stages, and RECORD_TAGS record tags
// (managed-image-, meta-, custom-tag-meta-, import-metadata-, client-id-).
// Every tag points at a real image: stage tags at a pool of Docker schema 2
// images with werf's service labels (tags share manifests, as the brief
// allows), records at manifest-only images as spec A.6 describes them (one
// empty-tar layer, the labels in the config).
import { createHash } from 'node:crypto';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import {
  computeStageDigest,
  encodeClientIdTag,
  encodeCustomTagMetaTag,
  encodeImportMetadataTag,
  encodeManagedImageTag,
  encodeMetaTag,
  encodeRejectedTag,
  encodeStageTag,
  importSourceId,
  Labels,
  sha3_224Hash,
} from '@stowage/tags';
import { DistributionTreeWriter, prng } from '@stowage/testing';

export const REPOSITORY = 'bench/stages';
export const PROJECT = 'bench';
const STAGE_TAGS = 50_000;
const RECORD_TAGS = 10_000;
/** Distinct stage images the stage tags point at (round robin). */
const STAGE_IMAGES = 256;
/** Every this-many-th digest has one of its stages rejected. */
const REJECT_EVERY = 12;
/** Digests asked for in one batch: present ones (some with a rejected stage) and a few absent. */
const QUERY_PRESENT = 95;
const QUERY_ABSENT = 5;
/** Files written at once. */
const CONCURRENCY = 64;
/** Bumped whenever the layout of the population changes, so a stale cache is rebuilt. */
const FORMAT = 1;

const DOCKER_MANIFEST = 'application/vnd.docker.distribution.manifest.v2+json';
const DOCKER_CONFIG = 'application/vnd.docker.container.image.v1+json';
const DOCKER_LAYER = 'application/vnd.docker.image.rootfs.diff.tar.gzip';

export interface Population {
  /** The docker-registry data directory. */
  readonly root: string;
  readonly stageTags: number;
  readonly rejectedTags: number;
  readonly recordTags: number;
  readonly totalTags: number;
  /** The digests of the batch, each with the stage timestamps it must answer (rejected ones left out). */
  readonly queries: readonly { readonly digest: string; readonly expected: readonly number[] }[];
  /** Whether this run wrote the tree or found it cached. */
  readonly cached: boolean;
  readonly seconds: number;
}

/** A ustar archive holding one regular file (what a one-file layer is before gzip). */
function tarOf(name: string, content: string): Buffer {
  const body = Buffer.from(content);
  const header = Buffer.alloc(512);
  const field = (offset: number, length: number, value: string) =>
    header.write(value, offset, length, 'ascii');
  const octal = (value: number, length: number) => `${value.toString(8).padStart(length - 1, '0')}\0`;
  field(0, 100, name);
  field(100, 8, octal(0o644, 8));
  field(108, 8, octal(0, 8));
  field(116, 8, octal(0, 8));
  field(124, 12, octal(body.length, 12));
  field(136, 12, octal(1_700_000_000, 12));
  field(148, 8, '        ');
  field(156, 1, '0');
  field(257, 6, 'ustar\0');
  field(263, 2, '00');
  let sum = 0;
  for (const byte of header) sum += byte;
  field(148, 8, `${sum.toString(8).padStart(6, '0')}\0 `);
  const padding = Buffer.alloc((512 - (body.length % 512)) % 512);
  return Buffer.concat([header, body, padding, Buffer.alloc(1024)]);
}

const sha256 = (bytes: Uint8Array) => `sha256:${createHash('sha256').update(bytes).digest('hex')}`;

/** Runs `task` over `items` with at most `limit` in flight. */
export async function pool<T>(
  items: readonly T[],
  limit: number,
  task: (item: T, index: number) => Promise<void>,
): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const at = next++;
      await task(items[at] as T, at);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}

interface Layer {
  readonly digest: string;
  readonly size: number;
  readonly diffId: string;
}

class ImageWriter {
  readonly #writer: DistributionTreeWriter;
  readonly #linked = new Set<string>();

  constructor(writer: DistributionTreeWriter) {
    this.#writer = writer;
  }

  async #linkedBlob(content: Uint8Array | string): Promise<string> {
    const digest = await this.#writer.blob(content);
    if (!this.#linked.has(digest)) {
      this.#linked.add(digest);
      await this.#writer.layerLink(REPOSITORY, digest);
    }
    return digest;
  }

  async layer(tar: Buffer): Promise<Layer> {
    const gz = gzipSync(tar);
    return { digest: await this.#linkedBlob(gz), size: gz.length, diffId: sha256(tar) };
  }

  /** A Docker schema 2 image over `layers` with `config`; returns the manifest digest. */
  async image(layers: readonly Layer[], config: Record<string, unknown>): Promise<string> {
    const configBytes = JSON.stringify({
      ...config,
      rootfs: { type: 'layers', diff_ids: layers.map((l) => l.diffId) },
    });
    const configDigest = await this.#linkedBlob(configBytes);
    const manifest = JSON.stringify({
      schemaVersion: 2,
      mediaType: DOCKER_MANIFEST,
      config: { mediaType: DOCKER_CONFIG, size: Buffer.byteLength(configBytes), digest: configDigest },
      layers: layers.map((l) => ({ mediaType: DOCKER_LAYER, size: l.size, digest: l.digest })),
    });
    return await this.#writer.rawManifest(REPOSITORY, manifest);
  }
}

/** A record image as werf v2.75.4+ pushes it (spec A.6): one empty-tar layer, the labels in the config. */
function recordConfig(labels: Record<string, string>): Record<string, unknown> {
  return {
    architecture: '',
    created: '2026-11-02T10:00:00Z',
    history: [{ created: '0001-01-01T00:00:00Z' }],
    os: '',
    config: { Labels: labels },
  };
}

async function build(root: string): Promise<Omit<Population, 'root' | 'cached' | 'seconds'>> {
  const writer = new DistributionTreeWriter(root);
  const images = new ImageWriter(writer);
  // deterministic, so every run builds the same repository
  const bits = prng(13);
  const random = () => bits() / 2 ** 32;
  const tags: [tag: string, digest: string][] = [];

  // stage images: a shared base layer and one of their own, werf's service labels
  const base = await images.layer(tarOf('etc/os-release', 'ID=bench\n'));
  const stageImages: string[] = [];
  for (let i = 0; i < STAGE_IMAGES; i++) {
    const own = await images.layer(tarOf(`stage/${i}`, `stage image ${i}\n`));
    const labels: Record<string, string> = {
      [Labels.werf]: PROJECT,
      [Labels.werfVersion]: 'v2.50.0',
      [Labels.stageContentDigest]: sha3_224Hash('content', String(i)),
      [Labels.parentStageId]: `${sha3_224Hash('parent', String(i))}-1700000000000`,
      [Labels.baseImageId]: sha256(Buffer.from(`parent image ${i}`)),
    };
    stageImages.push(
      await images.image([base, own], {
        architecture: 'amd64',
        os: 'linux',
        created: new Date(Date.UTC(2026, 10, 1, 0, 0, i)).toISOString().replace('.000Z', 'Z'),
        config: { Env: ['PATH=/usr/local/bin:/usr/bin:/bin'], Labels: labels },
        history: [{ created_by: 'base' }, { created_by: `stage ${i}` }],
      }),
    );
  }

  // stages: digests with 1–5 stages, timestamps unique across the repository
  const emptyTar = await images.layer(Buffer.alloc(1024));
  const plainRecord = await images.image([emptyTar], recordConfig({ [Labels.werf]: PROJECT }));
  const digests: { digest: string; stages: number[]; rejected: number | undefined }[] = [];
  let ts = 1_760_000_000_000;
  let stageCount = 0;
  let rejectedTags = 0;
  for (let d = 0; stageCount < STAGE_TAGS; d++) {
    const digest = computeStageDigest({ stageName: `image-${d % 40}/stage-${d}`, dependencies: `deps ${d}` });
    const count = Math.min(1 + Math.floor(random() * 5), STAGE_TAGS - stageCount);
    const stages: number[] = [];
    for (let k = 0; k < count; k++) {
      ts += 1 + Math.floor(random() * 5000);
      stages.push(ts);
      tags.push([
        encodeStageTag({ digest, creationTs: ts }),
        stageImages[stageCount % STAGE_IMAGES] as string,
      ]);
      stageCount++;
    }
    let rejected: number | undefined;
    if (d % REJECT_EVERY === 0) {
      rejected = stages[Math.floor(random() * stages.length)] as number;
      tags.push([encodeRejectedTag({ digest, creationTs: rejected }), plainRecord]);
      rejectedTags++;
    }
    digests.push({ digest, stages, rejected });
  }

  // records: managed images, image metadata by commit, custom-tag metadata, import metadata, client IDs
  const imageNames = Array.from({ length: 200 }, (_, i) => (i === 0 ? '' : `app-${i}/component ${i % 7}+x`));
  const records: [tag: string, labels: Record<string, string> | undefined][] = [];
  for (const name of imageNames) records.push([encodeManagedImageTag(name), undefined]);
  const stageIdOf = (i: number) => {
    const entry = digests[(i * 7919) % digests.length] as (typeof digests)[number];
    return encodeStageTag({ digest: entry.digest, creationTs: entry.stages[0] as number });
  };
  for (let i = 0; i < 5_500; i++) {
    const commit = createHash('sha1').update(`commit ${i}`).digest('hex');
    records.push([
      encodeMetaTag({
        imageName: imageNames[i % imageNames.length] as string,
        commit,
        stageId: stageIdOf(i),
      }),
      undefined,
    ]);
  }
  for (let i = 0; i < 2_000; i++) {
    const tag = `release-${i}.${i % 13}_${i % 3 === 0 ? 'hotfix-branch-with-a-long-name' : 'main'}`;
    records.push([
      encodeCustomTagMetaTag(tag),
      { [Labels.werf]: PROJECT, [Labels.stageId]: stageIdOf(i), [Labels.tag]: tag },
    ]);
  }
  for (let i = 0; i < 2_000; i++) {
    const id = importSourceId({
      sourceImageContentDigest: sha3_224Hash('import', String(i)),
      add: `/app/${i}`,
    });
    records.push([
      encodeImportMetadataTag(id),
      {
        [Labels.werf]: PROJECT,
        [Labels.importSourceId]: id,
        [Labels.sourceStageId]: stageIdOf(i),
        [Labels.checksum]: createHash('sha256').update(`checksum ${i}`).digest('hex'),
      },
    ]);
  }
  for (let i = 0; records.length < RECORD_TAGS; i++) {
    const uuid = createHash('md5').update(`client ${i}`).digest('hex');
    const clientId = `${uuid.slice(0, 8)}-${uuid.slice(8, 12)}-${uuid.slice(12, 16)}-${uuid.slice(16, 20)}-${uuid.slice(20)}`;
    records.push([encodeClientIdTag({ clientId, timestampMs: 3_520_000_000_000 + i * 1000 }), undefined]);
  }
  const seen = new Set(tags.map(([tag]) => tag));
  for (const [tag, labels] of records) {
    if (seen.has(tag)) throw new Error(`population: record tag ${tag} written twice`);
    seen.add(tag);
    tags.push([tag, labels ? await images.image([emptyTar], recordConfig(labels)) : plainRecord]);
  }

  await pool(tags, CONCURRENCY, ([tag, digest]) => writer.tag(REPOSITORY, tag, digest));

  // the batch: present digests spread over the repository, every rejected-stage digest among them counted
  const queries: { digest: string; expected: number[] }[] = [];
  const step = Math.floor(digests.length / QUERY_PRESENT);
  for (let q = 0; q < QUERY_PRESENT; q++) {
    // every other pick is a digest with a rejected stage, so the reject filter is in the measured path
    const at = q % 2 === 0 ? q * step - ((q * step) % REJECT_EVERY) : q * step + 1;
    const entry = digests[at] as (typeof digests)[number];
    queries.push({ digest: entry.digest, expected: entry.stages.filter((s) => s !== entry.rejected) });
  }
  for (let q = 0; q < QUERY_ABSENT; q++) {
    queries.push({
      digest: computeStageDigest({ stageName: 'never built', dependencies: String(q) }),
      expected: [],
    });
  }
  return {
    stageTags: stageCount,
    rejectedTags,
    recordTags: records.length,
    totalTags: tags.length,
    queries,
  };
}

/**
 * The population under `cacheDir`, built when missing, stale or `fresh` is set.
 * A tree is used only once `population.json` says it is complete.
 */
export async function population(cacheDir: string, options: { fresh: boolean }): Promise<Population> {
  const dir = join(cacheDir, `v${FORMAT}-${STAGE_TAGS}-${RECORD_TAGS}`);
  const root = join(dir, 'registry');
  const summaryPath = join(dir, 'population.json');
  const started = performance.now();
  if (!options.fresh) {
    try {
      const summary = JSON.parse(await readFile(summaryPath, 'utf8')) as Omit<
        Population,
        'root' | 'cached' | 'seconds'
      >;
      return { ...summary, root, cached: true, seconds: (performance.now() - started) / 1000 };
    } catch {
      // not built yet (or interrupted): build it
    }
  }
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir, { recursive: true });
  const summary = await build(root);
  await writeFile(summaryPath, `${JSON.stringify(summary)}\n`);
  return { ...summary, root, cached: false, seconds: (performance.now() - started) / 1000 };
}
