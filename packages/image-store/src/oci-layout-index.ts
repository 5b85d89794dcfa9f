// The index.json of a plain OCI layout: read, edited and replaced atomically, one writer
// per layout at a time; a layout created in an order readers never see half of; leftovers swept.
import { randomBytes } from 'node:crypto';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import {
  ifExists,
  link,
  makeDirDurable,
  readFile,
  rename,
  rm,
  stat,
  syncDir,
  unlinkIfExists,
  writeFileDurable,
} from '@stowage/blob-store';
import {
  type Digest,
  digestAlgorithm,
  digestHex,
  isDigest,
  isValidRepositoryName,
  MediaType,
  RegistryError,
  truncate,
} from '@stowage/oci';

/**
 * The `index.json` of a plain OCI image layout, as skopeo's `oci:` transport
 * reads and writes it, and the other files of the layout's top directory:
 * parsing (a malformed file is a `MANIFEST_INVALID` naming it), the edits a
 * tag write or delete makes (every entry and member it does not touch is
 * written back as parsed, in its place), atomic replacement, the creation of a new layout, the
 * per-layout serialization of writers in this process, the removal of
 * temporary files a crash left, and the search for layouts under a root.
 */

export const REF_NAME = 'org.opencontainers.image.ref.name';
export const OCI_LAYOUT_FILE = 'oci-layout';
export const INDEX_FILE = 'index.json';
const OCI_LAYOUT_TEXT = '{"imageLayoutVersion":"1.0.0"}';
/** The `index.json` of a new layout. */
const EMPTY_INDEX: Readonly<Record<string, unknown>> = Object.freeze({
  schemaVersion: 2,
  mediaType: MediaType.OciIndex,
  manifests: [],
});

/** Names below a repository's first level that would land inside its parent's layout. */
export const RESERVED_COMPONENTS: ReadonlySet<string> = new Set(['blobs', INDEX_FILE, OCI_LAYOUT_FILE]);

/** Temporary files of this module and of the file blob store (`<24 hex>.blob-tmp`) in a layout's directory. */
const TEMP_NAME = /^(?:[0-9a-f]{24}\.blob-tmp|\.(?:index\.json|oci-layout)\.[0-9a-f]{16}\.tmp)$/;
/** A temporary file untouched this long is a crash's leftover: writes in flight touch theirs all the time. */
const STALE_TEMP_MS = 60 * 60 * 1000;

/** One element of `manifests`, with the fields this registry reads. */
export interface IndexEntry {
  /** The descriptor as the file holds it: written back unchanged. */
  readonly raw: Readonly<Record<string, unknown>>;
  /** Absent when the entry's digest is not a supported one (the entry is kept, never matched). */
  readonly digest?: Digest;
  readonly mediaType?: string;
  readonly size?: number;
  /** The `org.opencontainers.image.ref.name` annotation: a tag, or whatever another tool wrote there. */
  readonly refName?: string;
}

/** A parsed `index.json`. */
export interface LayoutIndex {
  /** The file's top-level members (`manifests` among them, in its place), written back unchanged. */
  readonly document: Readonly<Record<string, unknown>>;
  readonly entries: readonly IndexEntry[];
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** Where a layout keeps a blob (or a manifest). */
export function blobPath(dir: string, digest: Digest): string {
  return join(dir, 'blobs', digestAlgorithm(digest), digestHex(digest));
}

export function unknownRepository(repository: string, dir?: string): RegistryError {
  const message =
    dir === undefined
      ? `repository ${repository} is not an OCI layout here`
      : `${dir} is not an OCI image layout (it has no oci-layout file)`;
  return new RegistryError('NAME_UNKNOWN', message, {
    details: { repository, ...(dir === undefined ? {} : { dir }) },
  });
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function badIndex(file: string, problem: string, cause?: unknown): RegistryError {
  return new RegistryError('MANIFEST_INVALID', `${file} is not a valid OCI image index: ${problem}`, {
    details: { file, problem },
    ...(cause === undefined ? {} : { cause }),
  });
}

function entryOf(raw: Record<string, unknown>): IndexEntry {
  const annotations = isRecord(raw.annotations) ? raw.annotations : undefined;
  const refName = annotations?.[REF_NAME];
  return {
    raw,
    ...(isDigest(raw.digest) ? { digest: raw.digest } : {}),
    ...(typeof raw.mediaType === 'string' ? { mediaType: raw.mediaType } : {}),
    ...(Number.isSafeInteger(raw.size) && (raw.size as number) >= 0 ? { size: raw.size as number } : {}),
    ...(typeof refName === 'string' ? { refName } : {}),
  };
}

/** The index of a layout without an `index.json` yet. */
export function emptyIndex(): LayoutIndex {
  return { document: EMPTY_INDEX, entries: [] };
}

/** Parses `index.json`; anything that is not an image index is `MANIFEST_INVALID` naming `file`. */
export function parseLayoutIndex(bytes: Uint8Array, file: string): LayoutIndex {
  let value: unknown;
  try {
    value = JSON.parse(utf8.decode(bytes));
  } catch (cause) {
    throw badIndex(file, `not UTF-8 JSON (${truncate((cause as Error).message, 120)})`, cause);
  }
  if (!isRecord(value)) throw badIndex(file, 'not a JSON object');
  if (value.schemaVersion !== 2) {
    throw badIndex(
      file,
      `schemaVersion is ${truncate(JSON.stringify(value.schemaVersion) ?? 'missing', 32)}, not 2`,
    );
  }
  const manifests = value.manifests ?? [];
  if (!Array.isArray(manifests)) throw badIndex(file, 'manifests is not an array');
  const entries = manifests.map((raw: unknown, i) => {
    if (!isRecord(raw)) throw badIndex(file, `manifests[${i}] is not a descriptor object`);
    if (raw.annotations !== undefined && !isRecord(raw.annotations)) {
      throw badIndex(file, `manifests[${i}].annotations is not an object`);
    }
    return entryOf(raw);
  });
  return { document: value, entries };
}

/** The text of an `index.json`: compact, as Go's encoder writes it, the untouched members as they were. */
export function formatLayoutIndex(index: LayoutIndex): string {
  return JSON.stringify({ ...index.document, manifests: index.entries.map((entry) => entry.raw) });
}

/** The first entry a tag names (a file another tool wrote may hold the name twice). */
export function entryOfTag(index: LayoutIndex, tag: string): IndexEntry | undefined {
  return index.entries.find((entry) => entry.refName === tag);
}

/**
 * The index with `tag` pointing at a manifest: the entry holding that name is
 * replaced where it is (later duplicates of the name dropped), or a new entry
 * is appended; every other entry stays as it was. `undefined` when the tag
 * already points there (nothing to write).
 */
export function withTag(
  index: LayoutIndex,
  tag: string,
  manifest: { readonly mediaType: string; readonly digest: Digest; readonly size: number },
): LayoutIndex | undefined {
  const entry = entryOf({
    mediaType: manifest.mediaType,
    digest: manifest.digest,
    size: manifest.size,
    annotations: { [REF_NAME]: tag },
  });
  const at = index.entries.findIndex((e) => e.refName === tag);
  if (at < 0) return { document: index.document, entries: [...index.entries, entry] };
  const current = index.entries[at] as IndexEntry;
  const duplicates = index.entries.some((e, i) => i > at && e.refName === tag);
  if (!duplicates && current.digest === manifest.digest && current.mediaType === manifest.mediaType) {
    return undefined;
  }
  const entries: IndexEntry[] = [];
  index.entries.forEach((e, i) => {
    if (i === at) entries.push(entry);
    else if (e.refName !== tag) entries.push(e);
  });
  return { document: index.document, entries };
}

/** The index without the entries `drop` selects; `undefined` when it selects none. */
export function without(index: LayoutIndex, drop: (entry: IndexEntry) => boolean): LayoutIndex | undefined {
  const entries = index.entries.filter((entry) => !drop(entry));
  return entries.length === index.entries.length ? undefined : { document: index.document, entries };
}

/** Per layout directory, the tail of the writers queued on it (shared by every registry in the process). */
const queues = new Map<string, Promise<unknown>>();

/** Runs `work` after every earlier `serialized` work on the same layout has finished. */
export async function serialized<T>(dir: string, work: () => Promise<T>): Promise<T> {
  const before = queues.get(dir) ?? Promise.resolve();
  const run = before.then(work);
  const tail = run.catch(() => undefined);
  queues.set(dir, tail);
  try {
    return await run;
  } finally {
    if (queues.get(dir) === tail) queues.delete(dir);
  }
}

/** Waits for the writers queued on a layout now. */
export async function settled(dir: string): Promise<void> {
  await queues.get(dir);
}

function tempFor(dir: string, name: string): string {
  return join(dir, `.${name}.${randomBytes(8).toString('hex')}.tmp`);
}

/** Replaces a file of the layout's top directory atomically: temp file, fsync, rename, fsync the directory. */
export async function replaceFile(dir: string, name: string, text: string): Promise<void> {
  const temp = tempFor(dir, name);
  try {
    await writeFileDurable(temp, text);
    await rename(temp, join(dir, name));
  } catch (error) {
    await rm(temp, { force: true });
    throw error;
  }
  await syncDir(dir);
}

/** Creates a file of the layout's top directory unless it exists (a hard link never replaces one). */
async function createFile(dir: string, name: string, text: string): Promise<void> {
  if (await ifExists(stat(join(dir, name)))) return;
  const temp = tempFor(dir, name);
  try {
    await writeFileDurable(temp, text);
    await link(temp, join(dir, name));
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code !== 'EEXIST') {
      if (code !== 'EPERM' && code !== 'ENOTSUP' && code !== 'EOPNOTSUPP' && code !== 'ENOSYS') throw error;
      // no hard links here: a rename, which another creator may race (they write the same empty layout)
      if (!(await ifExists(stat(join(dir, name))))) await rename(temp, join(dir, name));
    }
  } finally {
    await rm(temp, { force: true });
  }
  await syncDir(dir);
}

/** True when the directory is an OCI layout (it has an `oci-layout` file). */
export async function isLayout(dir: string): Promise<boolean> {
  return (await ifExists(stat(join(dir, OCI_LAYOUT_FILE))))?.isFile() ?? false;
}

/**
 * Makes `dir` an OCI layout when it is not one: `blobs/`, an empty
 * `index.json`, then `oci-layout` (last, so a crash part-way leaves a
 * directory that is not a layout yet, which the next write completes).
 * Files already there are kept.
 */
export async function initLayout(dir: string): Promise<void> {
  if (await isLayout(dir)) return;
  await makeDirDurable(join(dir, 'blobs'));
  await createFile(dir, INDEX_FILE, formatLayoutIndex(emptyIndex()));
  await createFile(dir, OCI_LAYOUT_FILE, OCI_LAYOUT_TEXT);
}

/**
 * The repositories under a root: directories with an `oci-layout` file whose
 * path is a repository name (nothing else is descended into, nor a layout's `blobs/`).
 */
export async function findLayouts(root: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (dir: string, prefix: string): Promise<void> => {
    const entries = (await ifExists(readdir(dir, { withFileTypes: true }))) ?? [];
    if (prefix !== '' && entries.some((e) => e.name === OCI_LAYOUT_FILE && e.isFile())) out.push(prefix);
    for (const entry of entries) {
      if (!entry.isDirectory()) continue;
      const name = prefix === '' ? entry.name : `${prefix}/${entry.name}`;
      if ((prefix !== '' && RESERVED_COMPONENTS.has(entry.name)) || !isValidRepositoryName(name)) continue;
      await walk(join(dir, entry.name), name);
    }
  };
  await walk(root, '');
  return out;
}

/** Removes the temporary files of writers that died (untouched for an hour) from a layout's directory. */
export async function removeStaleTemps(dir: string, now = Date.now()): Promise<number> {
  let removed = 0;
  for (const name of (await ifExists(readdir(dir))) ?? []) {
    if (!TEMP_NAME.test(name)) continue;
    const info = await ifExists(stat(join(dir, name)));
    if (info?.isFile() && now - info.mtimeMs > STALE_TEMP_MS && (await unlinkIfExists(join(dir, name)))) {
      removed++;
    }
  }
  if (removed > 0) await syncDir(dir);
  return removed;
}

/** Reads a layout's `index.json`, re-parsing only when its stat changed; an absent file is an empty index. */
export class IndexReader {
  readonly #seen = new Map<string, { readonly signature: string; readonly index: LayoutIndex }>();

  async read(dir: string, options: { readonly fresh?: boolean } = {}): Promise<LayoutIndex> {
    const file = join(dir, INDEX_FILE);
    const info = await ifExists(stat(file));
    if (!info) return emptyIndex();
    if (!info.isFile()) throw badIndex(file, 'not a file');
    const signature = `${info.ino}:${info.size}:${info.mtimeMs}:${info.ctimeMs}`;
    const known = this.#seen.get(dir);
    if (!options.fresh && known?.signature === signature) return known.index;
    const bytes = await ifExists(readFile(file));
    if (!bytes) return emptyIndex();
    const index = parseLayoutIndex(bytes, file);
    this.#seen.set(dir, { signature, index });
    return index;
  }

  /** Writes a new `index.json` (under `serialized`) and remembers it. */
  async write(dir: string, index: LayoutIndex): Promise<void> {
    await replaceFile(dir, INDEX_FILE, formatLayoutIndex(index));
    const info = await stat(join(dir, INDEX_FILE));
    this.#seen.set(dir, { signature: `${info.ino}:${info.size}:${info.mtimeMs}:${info.ctimeMs}`, index });
  }

  clear(): void {
    this.#seen.clear();
  }
}
