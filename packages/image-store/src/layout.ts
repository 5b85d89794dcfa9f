import { createHash } from 'node:crypto';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { mkdir, readFile, stat } from '@stowage/blob-store';
import {
  compareBytes,
  createLimiter,
  type Descriptor,
  type Digest,
  isDigest,
  isValidTag,
  type Limiter,
  manifestReferences,
  parseManifest,
  type ResolvedLogger,
} from '@stowage/oci';
import { type StoreCaches, statSignature } from './caches.js';
import type { ContentStore } from './content-store.js';
import { ifExists, writeFileAtomic } from './fs-utils.js';
import type { StoreLocks } from './lock.js';
import { type ManifestMetas, metaOf } from './manifest-meta.js';
import type { StorePaths } from './paths.js';
import type { TagFiles } from './tags.js';

const OCI_LAYOUT = '{"imageLayoutVersion":"1.0.0"}';
const EMPTY_INDEX = '{"schemaVersion":2,"manifests":[]}';
export const REF_NAME = 'org.opencontainers.image.ref.name';

function sha256Hex(data: Uint8Array | string): string {
  return createHash('sha256').update(data).digest('hex');
}

export interface LayoutsOptions {
  readonly paths: StorePaths;
  readonly readOnly: boolean;
  readonly locks: StoreLocks;
  readonly caches: StoreCaches;
  readonly metas: ManifestMetas;
  readonly tags: TagFiles;
  /** Set once the content store exists (it links through `ensure`). */
  readonly content: () => ContentStore;
  readonly logger: ResolvedLogger;
}

/**
 * Each repository directory as an OCI image layout: `oci-layout`,
 * `index.json` (regenerated from the tag files, stamped in
 * `.stowage/index.sha256`) and `blobs/`; and the adoption of what another
 * tool (skopeo, umoci, crane) wrote into one.
 *
 * Each `index.json` this store writes has its sha256 stamped first, beside
 * the hash of the `index.json` it replaces: a writer killed between the two
 * renames leaves the old file, and the old file is still known as ours
 * (adopting it would bring back tags deleted since). An `index.json` whose
 * stat changed and whose hash is in neither line was written by someone else
 * and is adopted: its manifests are verified and recorded, its blobs verified
 * and linked into the content store, its `ref.name` annotations become tags.
 * Tags missing from a foreign `index.json` are not removed (ours may not be
 * flushed yet).
 */
export class Layouts {
  readonly #o: LayoutsOptions;

  constructor(options: LayoutsOptions) {
    this.#o = options;
  }

  /** Per repository, the `ensure` running now: the blobs of one image, committed at once, share it. */
  readonly #ensuring = new Map<string, Promise<void>>();

  /** Makes the repository an OCI layout when it is not one yet. */
  ensure(repository: string): Promise<void> {
    const running = this.#ensuring.get(repository);
    if (running) return running;
    const work = this.#ensure(repository).finally(() => this.#ensuring.delete(repository));
    this.#ensuring.set(repository, work);
    return work;
  }

  async #ensure(repository: string): Promise<void> {
    const { paths } = this.#o;
    const dir = paths.repoDir(repository);
    const index = join(dir, 'index.json');
    // Both, since they are written at once below: a crash between the two is repaired here.
    if ((await ifExists(stat(join(dir, 'oci-layout')))) && (await ifExists(stat(index)))) return;
    await mkdir(dir, { recursive: true });
    // Independent of each other once the directory exists, so made at once: each is a few
    // thread-pool round trips, and under load each round trip waits behind blob writes.
    // The directories the first blob link and the first manifest need are made here too.
    await Promise.all([
      mkdir(paths.repoMeta(repository, 'tags'), { recursive: true }),
      mkdir(join(paths.repoMeta(repository, 'manifests'), 'sha256'), { recursive: true }),
      mkdir(join(dir, 'blobs', 'sha256'), { recursive: true }),
      writeFileAtomic(join(dir, 'oci-layout'), OCI_LAYOUT),
      (async () => {
        if (await ifExists(stat(index))) return;
        await writeFileAtomic(index, EMPTY_INDEX);
        // Ours, and nothing to adopt: seen, so the next `sync` neither locks nor reads it.
        this.#o.caches.setIndexSeen(repository, {
          signature: statSignature(await stat(index)),
          hash: sha256Hex(EMPTY_INDEX),
        });
      })(),
    ]);
  }

  /** Whether the store knows the repository (after adopting a foreign `index.json`). */
  async isRepository(repository: string): Promise<boolean> {
    await this.sync(repository);
    return (await ifExists(stat(this.#o.paths.repoMeta(repository)))) !== undefined;
  }

  /** Adopts the repository's `index.json` when another tool wrote it since it was last seen. */
  async sync(repository: string): Promise<void> {
    const { paths, caches, locks, readOnly } = this.#o;
    const file = join(paths.repoDir(repository), 'index.json');
    const info = await ifExists(stat(file));
    if (!info) return;
    const signature = statSignature(info);
    if (caches.indexSeen(repository)?.signature === signature) return;
    const bytes = await ifExists(readFile(file));
    if (!bytes) return;
    const hash = sha256Hex(bytes);
    if (!(await this.#stamps(repository)).includes(hash) && !readOnly) {
      // Our own writers stamp, then write, under this lock: re-read under it before adopting.
      await using _lock = await locks.acquire(`index:${repository}`);
      const again = await ifExists(readFile(file));
      if (again && !(await this.#stamps(repository)).includes(sha256Hex(again))) {
        await this.#adoptIndex(repository, again);
      }
    }
    caches.setIndexSeen(repository, { signature, hash });
  }

  /** Regenerates a repository's `index.json` from its tags (stamped first). */
  async writeIndex(repository: string): Promise<void> {
    const { paths, caches, locks, metas, tags } = this.#o;
    if (!(await this.isRepository(repository))) return;
    const current = await tags.current(repository);
    const manifests: Descriptor[] = [];
    for (const [tag, digest] of [...current].sort(([a], [b]) => compareBytes(a, b))) {
      const meta = await metas.cached(repository, digest);
      if (!meta) continue;
      manifests.push({
        mediaType: meta.mediaType,
        digest,
        size: meta.size,
        annotations: { [REF_NAME]: tag },
      });
    }
    const text = JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.index.v1+json',
      manifests,
    });
    const hash = sha256Hex(text);
    const file = join(paths.repoDir(repository), 'index.json');
    await using _lock = await locks.acquire(`index:${repository}`);
    // The file replaced stays ours too, for a crash before the rename below.
    const replaced = await this.#currentHash(repository, file);
    const stamps = replaced === undefined || replaced === hash ? hash : `${replaced}\n${hash}`;
    await writeFileAtomic(paths.repoMeta(repository, 'index.sha256'), stamps);
    await writeFileAtomic(file, text);
    caches.setIndexSeen(repository, { signature: statSignature(await stat(file)), hash });
  }

  /** Every repository under the root whose name the store accepts. */
  /** Every repository under the root, found by reading directories 32 at a time (a catalog of 10,000 is 10,000 of them). */
  async repositories(): Promise<string[]> {
    const out: string[] = [];
    const limit = createLimiter(32);
    await this.#walk(this.#o.paths.root, '', out, limit);
    return out;
  }

  /** A directory another tool made may not have a name this store accepts: it is left out. */
  validName(name: string): boolean {
    try {
      this.#o.paths.repository(name);
      return true;
    } catch {
      return false;
    }
  }

  async #walk(dir: string, prefix: string, out: string[], limit: Limiter): Promise<void> {
    const entries = (await limit(() => ifExists(readdir(dir, { withFileTypes: true })))) ?? [];
    const isLayout = entries.some(
      (e) => (e.name === '.stowage' && e.isDirectory()) || (e.name === 'oci-layout' && e.isFile()),
    );
    if (prefix && isLayout && this.validName(prefix.slice(0, -1))) out.push(prefix.slice(0, -1));
    const children = entries.filter(
      (entry) =>
        entry.isDirectory() &&
        entry.name !== '.stowage' &&
        !(entry.name === 'blobs' && prefix) &&
        !entry.name.startsWith('.'),
    );
    await Promise.all(
      children.map((entry) => this.#walk(join(dir, entry.name), `${prefix}${entry.name}/`, out, limit)),
    );
  }

  /** The hashes `.stowage/index.sha256` names as ours: the last `index.json` written, and the one it replaced. */
  async #stamps(repository: string): Promise<string[]> {
    const text = await ifExists(readFile(this.#o.paths.repoMeta(repository, 'index.sha256'), 'utf8'));
    return text === undefined ? [] : text.split('\n').filter(Boolean);
  }

  /** The sha256 of the `index.json` on disk now (from the cache when its stat has not changed). */
  async #currentHash(repository: string, file: string): Promise<string | undefined> {
    const info = await ifExists(stat(file));
    if (!info) return undefined;
    const known = this.#o.caches.indexSeen(repository);
    if (known?.signature === statSignature(info)) return known.hash;
    const bytes = await ifExists(readFile(file));
    return bytes && sha256Hex(bytes);
  }

  async #adoptIndex(repository: string, bytes: Uint8Array): Promise<void> {
    const { paths, tags, logger } = this.#o;
    let index: {
      manifests?: { digest?: unknown; mediaType?: unknown; annotations?: Record<string, unknown> }[];
    };
    try {
      index = JSON.parse(new TextDecoder().decode(bytes));
    } catch {
      return; // not ours to repair; fsck reports manifests it cannot read
    }
    await mkdir(paths.repoMeta(repository, 'tags'), { recursive: true });
    let adopted = 0;
    for (const descriptor of Array.isArray(index.manifests) ? index.manifests : []) {
      const digest = descriptor.digest;
      if (!isDigest(digest) || typeof descriptor.mediaType !== 'string') continue;
      try {
        await this.#adoptManifest(repository, digest, descriptor.mediaType);
      } catch (error) {
        logger.warn({ repository, digest, err: error }, 'a manifest of a foreign index.json stays invisible');
        continue; // a broken or incomplete image stays invisible
      }
      adopted++;
      const tag = descriptor.annotations?.[REF_NAME];
      if (!isValidTag(tag)) continue;
      if ((await tags.read(repository, tag)) === digest) continue;
      await tags.write(repository, tag, digest);
    }
    logger.info({ repository, manifests: adopted }, 'adopted an index.json another tool wrote');
  }

  async #adoptManifest(repository: string, digest: Digest, mediaType: string): Promise<void> {
    const { paths, metas } = this.#o;
    if (await metas.read(repository, digest)) return;
    const content = this.#o.content();
    const bytes = await readFile(paths.repoBlob(repository, digest));
    const parsed = parseManifest(bytes, { mediaType, digest, maxSize: Number.MAX_SAFE_INTEGER });
    const references = manifestReferences(parsed);
    for (const child of references.manifests) {
      await this.#adoptManifest(repository, child.digest, child.mediaType);
    }
    for (const blob of references.blobs) await content.adoptRepositoryBlob(repository, blob.digest);
    // a non-distributable layer the layout holds is adopted too; an absent one is not needed
    for (const layer of references.nonDistributable) {
      if (await ifExists(stat(paths.repoBlob(repository, layer.digest)))) {
        await content.adoptRepositoryBlob(repository, layer.digest);
      }
    }
    await content.adoptRepositoryBlob(repository, digest);
    await metas.write(repository, digest, metaOf(parsed));
  }
}
