// Tags, manifests and referrers of a plain OCI layout: a tag is an index.json entry's
// org.opencontainers.image.ref.name, a manifest pushed by digest only a blob.
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { type FileBlobStore, ifExists, stat, syncDir, unlinkIfExists } from '@stowage/blob-store';
import {
  type Descriptor,
  type Digest,
  DigestMismatchError,
  digestAlgorithm,
  digestAlgorithms,
  filterReferrers,
  type GetManifestOptions,
  isDigest,
  isStowageError,
  isValidTag,
  type ListOptions,
  type ManifestContent,
  manifestReferences,
  type OperationOptions,
  type ParsedManifest,
  type PutManifestOptions,
  type PutManifestResult,
  pageOf,
  parseDigest,
  parseManifest,
  parseManifestReference,
  parseTag,
  type ReferrersOptions,
  RegistryError,
  type RegistryLock,
  referrerDescriptor,
} from '@stowage/oci';
import {
  blobPath,
  entryOfTag,
  INDEX_FILE,
  type IndexEntry,
  type IndexReader,
  isLayout,
  type LayoutIndex,
  serialized,
  unknownRepository,
  without,
  withTag,
} from './oci-layout-index.js';
import type { ManifestApi } from './registry-manifests.js';

/** What the members of every API area share; `createOciLayoutRegistry` builds it. */
export interface LayoutContext {
  readonly maxManifestSize: number;
  readonly indexes: IndexReader;
  /** Throws `UNAVAILABLE` once the registry is closed. */
  usable(): void;
  /** Throws `DENIED` for a read-only registry (and `UNAVAILABLE` once closed). */
  writable(what: string): void;
  /** The layout directory of a repository (validated, confined); `undefined` when it can have none here. */
  locate(repository: string): string | undefined;
  /** The layout directory of a repository that is a layout now. */
  existing(repository: string): Promise<string | undefined>;
  /** Like `existing`, `NAME_UNKNOWN` when there is none. */
  required(repository: string): Promise<string>;
  /** The layout a write goes to, created when missing. */
  target(repository: string): Promise<string>;
  /** The layout's `blobs/` as a file blob store whose temporary files go to the layout directory. */
  blobs(dir: string): FileBlobStore;
  /** The cross-process lock on the layout's `index.json` (a file beside it, there only while held). */
  lockIndex(dir: string): Promise<RegistryLock>;
}

export type ManifestMembers = ManifestApi & {
  /** Forgets the cached manifest summaries. */
  clear(): void;
};

/** What a listing or a head needs of a manifest, without its bytes. */
interface ManifestSummary {
  readonly mediaType: string;
  readonly size: number;
  readonly subject?: Digest;
  /** Its descriptor in a referrers listing, when it has a subject. */
  readonly referrer?: Descriptor;
}

/** Manifest summaries kept per registry (content-addressed, so never stale). */
const SUMMARY_CACHE_ENTRIES = 10_000;

/** True when the first byte that is not white space opens a JSON object. */
function opensObject(bytes: Uint8Array): boolean {
  for (const byte of bytes) {
    if (byte === 0x20 || byte === 0x09 || byte === 0x0a || byte === 0x0d) continue;
    return byte === 0x7b;
  }
  return false;
}

function manifestUnknown(repository: string, reference: string): RegistryError {
  return new RegistryError('MANIFEST_UNKNOWN', `manifest ${reference} is not in ${repository}`, {
    details: { repository, reference },
  });
}

/**
 * Tags, manifests and referrers of OCI layouts. A tag is the
 * `org.opencontainers.image.ref.name` of an `index.json` entry; a manifest is
 * any blob that parses as an image manifest or index (with the media type of
 * the `index.json` entry naming it, if one does, else its own `mediaType` or
 * shape), so children pushed by digest, and manifests that lost their tag, are
 * found by digest; referrers are found by reading the layout's small JSON
 * blobs, each parsed once per registry.
 */
export function manifestMembers(c: LayoutContext): ManifestMembers {
  const summaries = new Map<string, ManifestSummary | null>();

  /**
   * A manifest stored as a blob, parsed with the media type its `index.json`
   * entry gives. `undefined` when there is no such blob or (for a blob no
   * entry names) when it is not a manifest; an entry's blob that is not a
   * valid manifest, or any blob that does not hash to its name, is
   * `MANIFEST_INVALID` naming the file.
   */
  async function load(dir: string, digest: Digest, entry?: IndexEntry): Promise<ParsedManifest | undefined> {
    const file = blobPath(dir, digest);
    const broken = (problem: string, cause?: unknown) =>
      new RegistryError('MANIFEST_INVALID', `${file}: ${problem}`, {
        details: { file, digest },
        ...(cause === undefined ? {} : { cause }),
      });
    const info = await ifExists(stat(file));
    if (!info?.isFile()) return undefined;
    if (info.size > c.maxManifestSize) {
      if (entry) throw broken(`the manifest index.json names is over ${c.maxManifestSize} bytes`);
      return undefined;
    }
    const bytes = await ifExists(readFile(file));
    if (!bytes || (!entry && !opensObject(bytes))) return undefined;
    try {
      return parseManifest(bytes, {
        digest,
        maxSize: c.maxManifestSize,
        ...(entry?.mediaType === undefined ? {} : { mediaType: entry.mediaType }),
      });
    } catch (error) {
      if (error instanceof DigestMismatchError) throw broken('the file does not hash to its name', error);
      if (!entry && isStowageError(error)) return undefined;
      throw broken(`not a valid manifest (${(error as Error).message})`, error);
    }
  }

  /** A manifest's summary (cached by digest and entry media type); `undefined` when it is not there. */
  async function summaryOf(
    dir: string,
    digest: Digest,
    entry?: IndexEntry,
  ): Promise<ManifestSummary | undefined> {
    const present = async () => (await ifExists(stat(blobPath(dir, digest))))?.isFile() === true;
    const info = await ifExists(stat(blobPath(dir, digest)));
    if (!info?.isFile()) return undefined;
    const key = `${digest} ${entry?.mediaType ?? ''}`;
    const known = summaries.get(key);
    if (known === null) return undefined;
    if (known !== undefined && known.size === info.size) return known;
    const parsed = await load(dir, digest, entry);
    // a blob removed while it was read is not known to be anything
    if (!parsed && !(await present())) return undefined;
    const summary: ManifestSummary | null = parsed
      ? {
          mediaType: parsed.mediaType,
          size: parsed.size,
          ...(parsed.manifest.subject
            ? { subject: parsed.manifest.subject.digest, referrer: referrerDescriptor(parsed) }
            : {}),
        }
      : null;
    if (summaries.size >= SUMMARY_CACHE_ENTRIES) summaries.delete(summaries.keys().next().value as string);
    summaries.set(key, summary);
    return summary ?? undefined;
  }

  /** The digest a reference names and the `index.json` entry naming it, if any. */
  async function lookup(dir: string, reference: string): Promise<{ digest?: Digest; entry?: IndexEntry }> {
    const wanted = parseManifestReference(reference);
    const index = await c.indexes.read(dir);
    if ('digest' in wanted) {
      const entry = index.entries.find((e) => e.digest === wanted.digest);
      return { digest: wanted.digest, ...(entry ? { entry } : {}) };
    }
    const entry = entryOfTag(index, wanted.tag);
    if (!entry) return {};
    if (!entry.digest) {
      const file = join(dir, INDEX_FILE);
      throw new RegistryError('MANIFEST_INVALID', `${file}: tag ${wanted.tag} has no valid digest`, {
        details: { file, tag: wanted.tag },
      });
    }
    return { digest: entry.digest, entry };
  }

  /** Edits `index.json` in the layout's writer queue, reading it afresh; `edit` answers `undefined` for no change. */
  function editIndex(
    dir: string,
    edit: (index: LayoutIndex) => Promise<LayoutIndex | undefined>,
  ): Promise<void> {
    return serialized(dir, async () => {
      // Other processes edit it too (another stowage, a sync): read and replace under their lock.
      await using _lock = await c.lockIndex(dir);
      const next = await edit(await c.indexes.read(dir, { fresh: true }));
      if (next) await c.indexes.write(dir, next);
    });
  }

  return {
    async listTags(repository: string, opts: ListOptions = {}) {
      c.usable();
      opts.signal?.throwIfAborted();
      const index = await c.indexes.read(await c.required(repository));
      // a ref.name that is no tag (a full reference another tool wrote) names no tag here
      return pageOf(index.entries.map((e) => e.refName).filter(isValidTag), opts);
    },

    async deleteTag(repository: string, tag: string, opts: OperationOptions = {}) {
      c.writable('delete tags');
      opts.signal?.throwIfAborted();
      parseTag(tag);
      const dir = await c.required(repository);
      await editIndex(dir, async (index) => {
        const next = without(index, (e) => e.refName === tag);
        if (!next) throw manifestUnknown(repository, tag);
        return next;
      });
    },

    async getManifest(repository: string, reference: string, opts: GetManifestOptions = {}) {
      c.usable();
      opts.signal?.throwIfAborted();
      const dir = await c.required(repository);
      const { digest, entry } = await lookup(dir, reference);
      const parsed = digest && (await load(dir, digest, entry));
      if (!digest || !parsed) throw manifestUnknown(repository, reference);
      const content: ManifestContent = {
        digest,
        mediaType: parsed.mediaType,
        size: parsed.size,
        // a plain Uint8Array, as every store answers (a Buffer compares unequal to one)
        bytes: new Uint8Array(parsed.bytes.buffer, parsed.bytes.byteOffset, parsed.bytes.byteLength),
      };
      return content;
    },

    async headManifest(repository: string, reference: string, opts: GetManifestOptions = {}) {
      c.usable();
      opts.signal?.throwIfAborted();
      const dir = await c.existing(repository);
      if (dir === undefined) {
        parseManifestReference(reference);
        return undefined;
      }
      const { digest, entry } = await lookup(dir, reference);
      const summary = digest && (await summaryOf(dir, digest, entry));
      return digest && summary ? { mediaType: summary.mediaType, digest, size: summary.size } : undefined;
    },

    async putManifest(repository: string, reference: string, opts: PutManifestOptions) {
      c.writable('write manifests');
      opts.signal?.throwIfAborted();
      const wanted = parseManifestReference(reference);
      const location = c.locate(repository);
      if (location === undefined) throw unknownRepository(repository);
      if (opts.sparse) {
        throw new RegistryError('UNSUPPORTED', 'an OCI layout holds no sparse indexes: push every child', {
          details: { repository },
        });
      }
      const parsed = parseManifest(opts.bytes, {
        mediaType: opts.mediaType,
        maxSize: c.maxManifestSize,
        ...('digest' in wanted ? { digest: wanted.digest } : {}),
      });
      const dir = (await isLayout(location)) ? location : undefined;
      const references = manifestReferences(parsed);
      const missing = (digest: Digest) =>
        new RegistryError('MANIFEST_BLOB_UNKNOWN', `${digest} is not in ${repository}`, {
          details: { repository, digest },
        });
      // config and distributable layers; a non-distributable layer may be absent
      for (const blob of references.blobs) {
        if (dir === undefined || !(await c.blobs(dir).stat(blob.digest))) throw missing(blob.digest);
      }
      for (const child of references.manifests) {
        if (dir === undefined || !(await summaryOf(dir, child.digest))) throw missing(child.digest);
      }
      const layout = await c.target(repository);
      await c.blobs(layout).write(parsed.bytes, {
        digest: parsed.digest,
        size: parsed.size,
        ...(opts.signal ? { signal: opts.signal } : {}),
      });
      // by digest, a manifest is a blob only (as skopeo writes the children of an index)
      if ('tag' in wanted) await editIndex(layout, async (index) => withTag(index, wanted.tag, parsed));
      const subject = parsed.manifest.subject?.digest;
      const result: PutManifestResult = { digest: parsed.digest, ...(subject ? { subject } : {}) };
      return result;
    },

    async deleteManifest(repository: string, digest: Digest, opts: OperationOptions = {}) {
      c.writable('delete manifests');
      opts.signal?.throwIfAborted();
      parseDigest(digest);
      const dir = await c.required(repository);
      await editIndex(dir, async (index) => {
        // index.json first: a crash part-way leaves a manifest blob no tag names, never a tag to nothing
        const next = without(index, (e) => e.digest === digest);
        if (!next && !(await summaryOf(dir, digest))) throw manifestUnknown(repository, digest);
        return next;
      });
      if (await unlinkIfExists(blobPath(dir, digest))) {
        await syncDir(join(dir, 'blobs', digestAlgorithm(digest)));
      }
    },

    async listReferrers(repository: string, digest: Digest, opts: ReferrersOptions = {}) {
      c.usable();
      parseDigest(digest);
      const dir = await c.required(repository);
      const found: Descriptor[] = [];
      for (const algorithm of digestAlgorithms) {
        for (const name of (await ifExists(readdir(join(dir, 'blobs', algorithm)))) ?? []) {
          opts.signal?.throwIfAborted();
          const candidate = `${algorithm}:${name}`;
          if (!isDigest(candidate)) continue;
          const summary = await summaryOf(dir, candidate);
          if (summary?.subject === digest && summary.referrer) found.push(summary.referrer);
        }
      }
      return filterReferrers(found, opts.artifactType);
    },

    clear() {
      summaries.clear();
    },
  };
}
