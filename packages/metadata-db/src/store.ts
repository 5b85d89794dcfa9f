import { type Digest, digestAlgorithm, digestHex, isDigest } from '@stowage/oci';
import { DatabaseError, isTransaction, type Queryable } from './database.js';

/** A digest as the database stores it: one algorithm byte (1 sha256, 2 sha512), then the hash. */
export function encodeDigest(digest: Digest): Buffer {
  if (!isDigest(digest)) throw new DatabaseError('DATABASE', `not a digest: ${String(digest).slice(0, 100)}`);
  const prefix = digestAlgorithm(digest) === 'sha256' ? 1 : 2;
  return Buffer.concat([Buffer.from([prefix]), Buffer.from(digestHex(digest), 'hex')]);
}

export function decodeDigest(bytes: Uint8Array): Digest {
  const algorithm = bytes[0] === 1 ? 'sha256' : bytes[0] === 2 ? 'sha512' : undefined;
  if (!algorithm) throw new DatabaseError('DATABASE', `unknown digest algorithm byte ${bytes[0]}`);
  return `${algorithm}:${Buffer.from(bytes.subarray(1)).toString('hex')}` as Digest;
}

export interface RepositoryRow {
  readonly id: number;
  readonly namespaceId: number;
  readonly path: string;
  readonly lastPublishedAt: Date | null;
}

export interface NewManifest {
  readonly digest: Digest;
  readonly payload: Uint8Array;
  readonly schemaVersion: number;
  readonly mediaType: string;
  readonly totalSize: number;
  readonly configuration?: {
    readonly digest: Digest;
    readonly mediaType: string;
    readonly payload?: Uint8Array;
  };
  readonly nonConformant?: boolean;
  readonly nonDistributableLayers?: boolean;
  readonly subjectId?: number;
  /** The digest the manifest names as its `subject` (present or not): what referrers are found by. */
  readonly subjectDigest?: Digest;
  readonly artifactMediaType?: string;
}

/** A layer row: which manifest, which blob (its size) and its media type. */
export interface NewLayer {
  readonly manifestId: number;
  readonly digest: Digest;
  readonly size: number;
  readonly mediaType: string;
}

export interface RowCounts {
  readonly namespaces: number;
  readonly repositories: number;
  readonly manifests: number;
  readonly manifestReferences: number;
  readonly layers: number;
  readonly tags: number;
  readonly blobs: number;
  readonly repositoryBlobs: number;
}

/** pg returns bigint columns as strings; PGlite as numbers or bigints. */
function num(value: unknown): number {
  return typeof value === 'number' ? value : Number(value);
}

/**
 * Typed access to the registry metadata, on the database or inside a
 * transaction. Every create is create-or-find, so an interrupted run can be
 * repeated and converges to the same rows.
 */
export class MetadataStore {
  readonly #db: Queryable;
  /** Media type ids known to be committed, shared by every store of one database. */
  readonly #mediaTypes: Map<string, number>;
  /**
   * Ids this store met inside its transaction; they join `#mediaTypes` only
   * once the transaction commits, so an id inserted by an attempt that rolled
   * back is never handed to the next one.
   */
  readonly #pending = new Map<string, number>();

  /** `mediaTypes` may be shared between stores of one database (it only grows, and only with committed ids). */
  constructor(db: Queryable, mediaTypes: Map<string, number> = new Map()) {
    this.#db = db;
    this.#mediaTypes = mediaTypes;
  }

  /** The same store on another connection or transaction, sharing the media type cache. */
  on(db: Queryable): MetadataStore {
    return new MetadataStore(db, this.#mediaTypes);
  }

  #cached(mediaType: string): number | undefined {
    return this.#mediaTypes.get(mediaType) ?? this.#pending.get(mediaType);
  }

  #remember(mediaType: string, id: number): void {
    const db = this.#db;
    if (!isTransaction(db)) {
      // an autocommitted statement: the row is there for good
      this.#mediaTypes.set(mediaType, id);
      return;
    }
    this.#pending.set(mediaType, id);
    db.afterCommit(() => this.#mediaTypes.set(mediaType, id));
  }

  async mediaTypeId(mediaType: string): Promise<number> {
    const cached = this.#cached(mediaType);
    if (cached !== undefined) return cached;
    const { rows } = await this.#db.query<{ id: unknown }>(
      `WITH found AS (SELECT id FROM media_types WHERE media_type = $1),
            made AS (INSERT INTO media_types (media_type) SELECT $1 WHERE NOT EXISTS (SELECT 1 FROM found)
                     ON CONFLICT (media_type) DO NOTHING RETURNING id)
       SELECT id FROM found UNION ALL SELECT id FROM made`,
      [mediaType],
    );
    let id = rows[0]?.id;
    if (id === undefined) {
      // another session inserted it between our two statements
      id = (
        await this.#db.query<{ id: unknown }>('SELECT id FROM media_types WHERE media_type = $1', [mediaType])
      ).rows[0]?.id;
    }
    const value = num(id);
    this.#remember(mediaType, value);
    return value;
  }

  /** Whether the media type is already recorded (never inserts). */
  async knownMediaType(mediaType: string): Promise<boolean> {
    if (this.#cached(mediaType) !== undefined) return true;
    const { rows } = await this.#db.query<{ id: unknown }>(
      'SELECT id FROM media_types WHERE media_type = $1',
      [mediaType],
    );
    if (rows[0] === undefined) return false;
    this.#remember(mediaType, num(rows[0].id));
    return true;
  }

  async namespace(name: string): Promise<number> {
    const { rows } = await this.#db.query<{ id: unknown }>(
      `INSERT INTO top_level_namespaces (name) VALUES ($1)
       ON CONFLICT (name) DO UPDATE SET name = EXCLUDED.name RETURNING id`,
      [name],
    );
    return num(rows[0]?.id);
  }

  async repository(path: string): Promise<RepositoryRow> {
    const namespaceId = await this.namespace(path.split('/')[0] as string);
    const name = path.split('/').at(-1) as string;
    const { rows } = await this.#db.query<{ id: unknown; last_published_at: Date | null }>(
      `INSERT INTO repositories (top_level_namespace_id, name, path) VALUES ($1, $2, $3)
       ON CONFLICT (path) DO UPDATE SET path = EXCLUDED.path RETURNING id, last_published_at`,
      [namespaceId, name, path],
    );
    const row = rows[0];
    return { id: num(row?.id), namespaceId, path, lastPublishedAt: row?.last_published_at ?? null };
  }

  async findRepository(path: string): Promise<RepositoryRow | undefined> {
    const { rows } = await this.#db.query<{
      id: unknown;
      top_level_namespace_id: unknown;
      last_published_at: Date | null;
    }>('SELECT id, top_level_namespace_id, last_published_at FROM repositories WHERE path = $1', [path], {
      prepare: true,
    });
    const row = rows[0];
    return row
      ? {
          id: num(row.id),
          namespaceId: num(row.top_level_namespace_id),
          path,
          lastPublishedAt: row.last_published_at,
        }
      : undefined;
  }

  async markPublished(repository: RepositoryRow): Promise<void> {
    await this.#db.query(
      'UPDATE repositories SET last_published_at = now(), updated_at = now() WHERE id = $1',
      [repository.id],
    );
  }

  /** Creates the blob row unless the digest is there; the media type is `application/octet-stream`. */
  async blob(digest: Digest, size: number): Promise<void> {
    const mediaTypeId = await this.mediaTypeId('application/octet-stream');
    await this.#db.query(
      'INSERT INTO blobs (digest, size, media_type_id) VALUES ($1, $2, $3) ON CONFLICT (digest) DO NOTHING',
      [encodeDigest(digest), size, mediaTypeId],
      { prepare: true },
    );
  }

  /**
   * Creates the blob rows whose digests are not there, in one statement
   * (`application/octet-stream`, as `blob`). Rows go in digest order, so two
   * sessions writing overlapping sets take their row locks in one order.
   */
  async blobs(blobs: readonly { readonly digest: Digest; readonly size: number }[]): Promise<void> {
    const unique = [...new Map(blobs.map((b) => [b.digest, b])).values()].sort((a, b) =>
      a.digest < b.digest ? -1 : a.digest > b.digest ? 1 : 0,
    );
    if (unique.length === 0) return;
    const mediaTypeId = await this.mediaTypeId('application/octet-stream');
    const values = unique.map((_, i) => `($${i * 2 + 1}, $${i * 2 + 2}, $${unique.length * 2 + 1})`);
    await this.#db.query(
      `INSERT INTO blobs (digest, size, media_type_id) VALUES ${values.join(', ')} ON CONFLICT (digest) DO NOTHING`,
      [...unique.flatMap((b) => [encodeDigest(b.digest), b.size]), mediaTypeId],
    );
  }

  /** Links blobs into a repository in one statement (digest order, as `blobs`). */
  async linkBlobs(repository: RepositoryRow, digests: readonly Digest[]): Promise<void> {
    const unique = [...new Set(digests)].sort();
    if (unique.length === 0) return;
    const values = unique.map((_, i) => `($1, $2, $${i + 3})`);
    await this.#db.query(
      `INSERT INTO repository_blobs (top_level_namespace_id, repository_id, blob_digest) VALUES ${values.join(', ')}
       ON CONFLICT (top_level_namespace_id, repository_id, blob_digest) DO NOTHING`,
      [repository.namespaceId, repository.id, ...unique.map(encodeDigest)],
    );
  }

  async hasBlob(digest: Digest): Promise<boolean> {
    const { rows } = await this.#db.query('SELECT 1 FROM blobs WHERE digest = $1', [encodeDigest(digest)]);
    return rows.length > 0;
  }

  async linkBlob(repository: RepositoryRow, digest: Digest): Promise<void> {
    await this.#db.query(
      `INSERT INTO repository_blobs (top_level_namespace_id, repository_id, blob_digest) VALUES ($1, $2, $3)
       ON CONFLICT (top_level_namespace_id, repository_id, blob_digest) DO NOTHING`,
      [repository.namespaceId, repository.id, encodeDigest(digest)],
      { prepare: true },
    );
  }

  async manifestId(repository: RepositoryRow, digest: Digest): Promise<number | undefined> {
    const { rows } = await this.#db.query<{ id: unknown }>(
      'SELECT id FROM manifests WHERE top_level_namespace_id = $1 AND repository_id = $2 AND digest = $3',
      [repository.namespaceId, repository.id, encodeDigest(digest)],
    );
    return rows[0] === undefined ? undefined : num(rows[0].id);
  }

  /** Every manifest of a repository, by digest, in one query (a rerun skips those it has). */
  async manifestIds(repository: RepositoryRow): Promise<Map<Digest, number>> {
    const { rows } = await this.#db.query<{ id: unknown; digest: Uint8Array }>(
      'SELECT id, digest FROM manifests WHERE top_level_namespace_id = $1 AND repository_id = $2',
      [repository.namespaceId, repository.id],
    );
    return new Map(rows.map((row) => [decodeDigest(row.digest), num(row.id)]));
  }

  /** Every tag of a repository and the manifest id it points at, in one query. */
  async tagTargets(repository: RepositoryRow): Promise<Map<string, number>> {
    const { rows } = await this.#db.query<{ name: string; manifest_id: unknown }>(
      'SELECT name, manifest_id FROM tags WHERE top_level_namespace_id = $1 AND repository_id = $2',
      [repository.namespaceId, repository.id],
    );
    return new Map(rows.map((row) => [row.name, num(row.manifest_id)]));
  }

  /** Creates the manifest row (or finds it by digest); returns its id. */
  async manifest(repository: RepositoryRow, manifest: NewManifest): Promise<number> {
    const existing = await this.manifestId(repository, manifest.digest);
    if (existing !== undefined) return existing;
    const mediaTypeId = await this.mediaTypeId(manifest.mediaType);
    const config = manifest.configuration;
    const configMediaTypeId = config ? await this.mediaTypeId(config.mediaType) : null;
    const artifactId = manifest.artifactMediaType ? await this.mediaTypeId(manifest.artifactMediaType) : null;
    const { rows } = await this.#db.query<{ id: unknown }>(
      `INSERT INTO manifests (top_level_namespace_id, repository_id, digest, payload, schema_version, media_type_id,
         total_size, configuration_media_type_id, configuration_blob_digest, configuration_payload, non_conformant,
         non_distributable_layers, subject_id, artifact_media_type_id, subject_digest)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)
       ON CONFLICT (top_level_namespace_id, repository_id, digest) DO UPDATE SET digest = EXCLUDED.digest
       RETURNING id`,
      [
        repository.namespaceId,
        repository.id,
        encodeDigest(manifest.digest),
        Buffer.from(manifest.payload),
        manifest.schemaVersion,
        mediaTypeId,
        manifest.totalSize,
        configMediaTypeId,
        config ? encodeDigest(config.digest) : null,
        config?.payload ? Buffer.from(config.payload) : null,
        manifest.nonConformant ?? false,
        manifest.nonDistributableLayers ?? false,
        manifest.subjectId ?? null,
        artifactId,
        manifest.subjectDigest ? encodeDigest(manifest.subjectDigest) : null,
      ],
    );
    return num(rows[0]?.id);
  }

  /** Records a layer of an image manifest (create-or-find). */
  async layer(repository: RepositoryRow, layer: NewLayer): Promise<void> {
    const { manifestId, digest, size, mediaType } = layer;
    const mediaTypeId = await this.mediaTypeId(mediaType);
    await this.#db.query(
      `INSERT INTO layers (top_level_namespace_id, repository_id, manifest_id, digest, size, media_type_id)
       VALUES ($1, $2, $3, $4, $5, $6)
       ON CONFLICT (top_level_namespace_id, repository_id, manifest_id, digest) DO NOTHING`,
      [repository.namespaceId, repository.id, manifestId, encodeDigest(digest), size, mediaTypeId],
    );
  }

  /** Records the layers of one image manifest in one statement (create-or-find each). */
  async layers(
    repository: RepositoryRow,
    manifestId: number,
    layers: readonly { readonly digest: Digest; readonly size: number; readonly mediaType: string }[],
  ): Promise<void> {
    if (layers.length === 0) return;
    const rows: unknown[] = [];
    const values: string[] = [];
    for (const layer of layers) {
      const mediaTypeId = await this.mediaTypeId(layer.mediaType);
      const at = rows.length + 4;
      values.push(`($1, $2, $3, $${at}, $${at + 1}, $${at + 2})`);
      rows.push(encodeDigest(layer.digest), layer.size, mediaTypeId);
    }
    await this.#db.query(
      `INSERT INTO layers (top_level_namespace_id, repository_id, manifest_id, digest, size, media_type_id)
       VALUES ${values.join(', ')}
       ON CONFLICT (top_level_namespace_id, repository_id, manifest_id, digest) DO NOTHING`,
      [repository.namespaceId, repository.id, manifestId, ...rows],
    );
  }

  async reference(repository: RepositoryRow, parentId: number, childId: number): Promise<void> {
    await this.#db.query(
      `INSERT INTO manifest_references (top_level_namespace_id, repository_id, parent_id, child_id)
       VALUES ($1, $2, $3, $4)
       ON CONFLICT (top_level_namespace_id, repository_id, parent_id, child_id) DO NOTHING`,
      [repository.namespaceId, repository.id, parentId, childId],
    );
  }

  /** Points a tag at a manifest (updating it only when it moved). */
  async tag(repository: RepositoryRow, name: string, manifestId: number): Promise<void> {
    await this.#db.query(
      `INSERT INTO tags (top_level_namespace_id, repository_id, manifest_id, name) VALUES ($1, $2, $3, $4)
       ON CONFLICT (top_level_namespace_id, repository_id, name) DO UPDATE
         SET manifest_id = EXCLUDED.manifest_id, updated_at = now()
         WHERE tags.manifest_id IS DISTINCT FROM EXCLUDED.manifest_id`,
      [repository.namespaceId, repository.id, manifestId, name],
      { prepare: true },
    );
  }

  /**
   * Points many tags at their manifests (each updated only when it moved), a
   * statement per thousand. A name given twice keeps its last manifest.
   */
  async tags(
    repository: RepositoryRow,
    tags: readonly { readonly name: string; readonly manifestId: number }[],
  ) {
    const unique = [...new Map(tags.map((t) => [t.name, t])).values()];
    for (let start = 0; start < unique.length; start += 1000) {
      const batch = unique.slice(start, start + 1000);
      const values = batch.map((_, i) => `($1, $2, $${i * 2 + 3}, $${i * 2 + 4})`);
      await this.#db.query(
        `INSERT INTO tags (top_level_namespace_id, repository_id, manifest_id, name) VALUES ${values.join(', ')}
         ON CONFLICT (top_level_namespace_id, repository_id, name) DO UPDATE
           SET manifest_id = EXCLUDED.manifest_id, updated_at = now()
           WHERE tags.manifest_id IS DISTINCT FROM EXCLUDED.manifest_id`,
        [repository.namespaceId, repository.id, ...batch.flatMap((t) => [t.manifestId, t.name])],
      );
    }
  }

  /** Removes the repository's tags not in `keep`; returns how many. */
  async pruneTags(repository: RepositoryRow, keep: readonly string[]): Promise<number> {
    const { rowCount } = await this.#db.query(
      `DELETE FROM tags WHERE top_level_namespace_id = $1 AND repository_id = $2 AND NOT (name = ANY($3::text[]))`,
      [repository.namespaceId, repository.id, keep],
    );
    return rowCount;
  }

  async tagCount(): Promise<number> {
    const { rows } = await this.#db.query<{ n: unknown }>('SELECT count(*) AS n FROM tags');
    return num(rows[0]?.n);
  }

  async counts(): Promise<RowCounts> {
    const { rows } = await this.#db.query<Record<string, unknown>>(
      `SELECT (SELECT count(*) FROM top_level_namespaces) AS namespaces,
              (SELECT count(*) FROM repositories) AS repositories,
              (SELECT count(*) FROM manifests) AS manifests,
              (SELECT count(*) FROM manifest_references) AS manifest_references,
              (SELECT count(*) FROM layers) AS layers,
              (SELECT count(*) FROM tags) AS tags,
              (SELECT count(*) FROM blobs) AS blobs,
              (SELECT count(*) FROM repository_blobs) AS repository_blobs`,
    );
    const row = rows[0] ?? {};
    return {
      namespaces: num(row.namespaces),
      repositories: num(row.repositories),
      manifests: num(row.manifests),
      manifestReferences: num(row.manifest_references),
      layers: num(row.layers),
      tags: num(row.tags),
      blobs: num(row.blobs),
      repositoryBlobs: num(row.repository_blobs),
    };
  }
}
