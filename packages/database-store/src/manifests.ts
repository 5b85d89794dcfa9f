// Manifests and tags: a manifest row holds the exact bytes pushed; its layers,
// its config and its children are rows that reference what they need, locked
// while the manifest is written, so garbage collection cannot take a blob or a
// child out from under a push that saw it. A tag is one row; moving it is one
// upsert.

import {
  decodeDigest,
  encodeDigest,
  isDatabaseError,
  type Queryable,
  type RepositoryRow,
} from '@stowage/metadata-db';
import {
  type Descriptor,
  type Digest,
  detectManifestMediaType,
  filterReferrers,
  type GetManifestOptions,
  type ManifestContent,
  manifestReferences,
  type OperationOptions,
  type PutManifestOptions,
  type PutManifestResult,
  parseDigest,
  parseManifest,
  parseManifestReference,
  parseRepositoryName,
  parseTag,
  type Referrers,
  type ReferrersOptions,
  RegistryError,
  referrerDescriptor,
  subjectOf,
} from '@stowage/oci';
import type { StoreContext } from './context.js';
import { num, transact } from './sql.js';

/** The longest media type a row takes; a longer layer type is recorded as octet-stream. */
const MEDIA_TYPE_MAX = 255;

interface ManifestRow {
  readonly digest: Uint8Array;
  readonly media_type: string;
  readonly non_conformant: boolean;
  readonly payload?: Uint8Array;
  readonly size?: unknown;
}

function manifestUnknown(repository: string, reference: string): RegistryError {
  return new RegistryError('MANIFEST_UNKNOWN', `manifest ${reference} is not in ${repository}`, {
    details: { repository, reference },
  });
}

function contentMissing(repository: string, digest: Digest): RegistryError {
  return new RegistryError('MANIFEST_BLOB_UNKNOWN', `content ${digest} is not in ${repository}`, {
    details: { repository, digest },
  });
}

/**
 * The media type a manifest is served with: the one recorded, except for a
 * row the importer marked non-conformant (a buildx cache index recorded as an
 * image manifest), served as its bytes say.
 */
function servedMediaType(row: ManifestRow, payload: Uint8Array | undefined): string {
  if (!row.non_conformant || payload === undefined) return row.media_type;
  try {
    return detectManifestMediaType(JSON.parse(Buffer.from(payload).toString('utf8'))) ?? row.media_type;
  } catch {
    return row.media_type;
  }
}

/** One query: the manifest a tag or digest names in a repository, with or without its bytes. */
async function findManifest(
  q: Queryable,
  repository: string,
  reference: string,
  withPayload: boolean,
): Promise<ManifestRow | undefined> {
  const parsed = parseManifestReference(reference);
  const columns = `m.digest, mt.media_type, m.non_conformant, ${withPayload ? 'm.payload' : 'octet_length(m.payload) AS size'}`;
  const byTag = !('digest' in parsed);
  const { rows } = await q.query<ManifestRow>(
    byTag
      ? `SELECT ${columns} FROM repositories r
           JOIN tags t ON t.top_level_namespace_id = r.top_level_namespace_id AND t.repository_id = r.id AND t.name = $2
           JOIN manifests m ON m.id = t.manifest_id
           JOIN media_types mt ON mt.id = m.media_type_id
         WHERE r.path = $1`
      : `SELECT ${columns} FROM repositories r
           JOIN manifests m ON m.top_level_namespace_id = r.top_level_namespace_id AND m.repository_id = r.id
            AND m.digest = $2
           JOIN media_types mt ON mt.id = m.media_type_id
         WHERE r.path = $1`,
    [repository, 'digest' in parsed ? encodeDigest(parsed.digest) : parsed.tag],
    { prepare: true },
  );
  return rows[0];
}

/** Sorted digests (a lock order every writer shares) and their encodings. */
function sortedDigests(descriptors: readonly Descriptor[]): Digest[] {
  return [...new Set(descriptors.map((d) => d.digest))].sort();
}

/** The blobs of `digests` linked into the repository, locked against collection until the transaction ends. */
async function lockLinkedBlobs(
  q: Queryable,
  repo: RepositoryRow,
  digests: readonly Digest[],
): Promise<Map<Digest, number>> {
  if (digests.length === 0) return new Map();
  const { rows } = await q.query<{ digest: Uint8Array; size: unknown }>(
    `SELECT b.digest, b.size FROM repository_blobs rb JOIN blobs b ON b.digest = rb.blob_digest
     WHERE rb.top_level_namespace_id = $1 AND rb.repository_id = $2 AND rb.blob_digest = ANY($3::bytea[])
     ORDER BY b.digest FOR KEY SHARE OF b`,
    [repo.namespaceId, repo.id, digests.map(encodeDigest)],
  );
  return new Map(rows.map((row) => [decodeDigest(row.digest), num(row.size)]));
}

/** The manifests of `digests` in the repository, locked against collection until the transaction ends. */
async function lockManifests(
  q: Queryable,
  repo: RepositoryRow,
  digests: readonly Digest[],
): Promise<Map<Digest, number>> {
  if (digests.length === 0) return new Map();
  const { rows } = await q.query<{ id: unknown; digest: Uint8Array }>(
    `SELECT id, digest FROM manifests
     WHERE top_level_namespace_id = $1 AND repository_id = $2 AND digest = ANY($3::bytea[])
     ORDER BY id FOR KEY SHARE`,
    [repo.namespaceId, repo.id, digests.map(encodeDigest)],
  );
  return new Map(rows.map((row) => [decodeDigest(row.digest), num(row.id)]));
}

/**
 * Points `tag` at the manifest `digest` when the repository has it, in one
 * autocommitted statement (the manifest row locked `FOR KEY SHARE`, so a
 * review cannot delete it meanwhile); false when the manifest is not there
 * (the full push then records it).
 */
async function tagStored(
  db: Queryable,
  ctx: StoreContext,
  repository: string,
  digest: Digest,
  tag: string,
): Promise<boolean> {
  const repo = await ctx.findRepository(db, repository);
  if (!repo) return false;
  const { rows } = await db.query<{ found: boolean }>(
    `WITH m AS (SELECT id FROM manifests
                WHERE top_level_namespace_id = $1 AND repository_id = $2 AND digest = $3 FOR KEY SHARE),
          t AS (INSERT INTO tags (top_level_namespace_id, repository_id, manifest_id, name)
                SELECT $1, $2, m.id, $4 FROM m
                ON CONFLICT (top_level_namespace_id, repository_id, name) DO UPDATE
                  SET manifest_id = EXCLUDED.manifest_id, updated_at = now()
                  WHERE tags.manifest_id IS DISTINCT FROM EXCLUDED.manifest_id
                RETURNING 1)
     SELECT EXISTS (SELECT 1 FROM m) AS found`,
    [repo.namespaceId, repo.id, encodeDigest(digest), tag],
    { prepare: true },
  );
  return rows[0]?.found === true;
}

export function manifestMembers(ctx: StoreContext) {
  const { db, meta } = ctx;

  return {
    async getManifest(
      repository: string,
      reference: string,
      options: GetManifestOptions = {},
    ): Promise<ManifestContent> {
      ctx.open(options.signal);
      parseRepositoryName(repository);
      const row = await findManifest(db, repository, reference, true);
      if (!row?.payload) throw manifestUnknown(repository, reference);
      const bytes = new Uint8Array(row.payload);
      return {
        digest: decodeDigest(row.digest),
        mediaType: servedMediaType(row, bytes),
        size: bytes.byteLength,
        bytes,
      };
    },

    async headManifest(
      repository: string,
      reference: string,
      options: GetManifestOptions = {},
    ): Promise<Descriptor | undefined> {
      ctx.open(options.signal);
      parseRepositoryName(repository);
      const row = await findManifest(db, repository, reference, false);
      if (!row) return undefined;
      // a non-conformant row's served type comes from its bytes
      const payload = row.non_conformant
        ? (await findManifest(db, repository, reference, true))?.payload
        : undefined;
      return {
        digest: decodeDigest(row.digest),
        mediaType: servedMediaType(row, payload),
        size: num(row.size),
      };
    },

    async putManifest(
      repository: string,
      reference: string,
      options: PutManifestOptions,
    ): Promise<PutManifestResult> {
      ctx.open(options.signal);
      parseRepositoryName(repository);
      const target = parseManifestReference(reference);
      const parsed = parseManifest(options.bytes, {
        mediaType: options.mediaType,
        maxSize: ctx.maxManifestSize,
        ...('digest' in target ? { digest: target.digest } : {}),
      });
      const references = manifestReferences(parsed);
      const subject = subjectOf(parsed.manifest);
      const bytes = Uint8Array.from(options.bytes);
      // an image manifest the repository has: its blobs are its layers' already, so tagging it is one statement
      if (
        'tag' in target &&
        parsed.kind === 'image' &&
        (await tagStored(db, ctx, repository, parsed.digest, target.tag))
      ) {
        return { digest: parsed.digest, ...(subject ? { subject } : {}) };
      }
      try {
        await transact(db, async (tx) => {
          const repo = await ctx.ensureRepository(tx, repository);
          const store = meta.on(tx);
          const blobs = await lockLinkedBlobs(
            tx,
            repo,
            sortedDigests([...references.blobs, ...references.nonDistributable]),
          );
          const missingBlob = references.blobs.find((blob) => !blobs.has(blob.digest));
          if (missingBlob) throw contentMissing(repository, missingBlob.digest);
          const children = await lockManifests(tx, repo, sortedDigests(references.manifests));
          const missingChild = options.sparse
            ? undefined
            : references.manifests.find((child) => !children.has(child.digest));
          if (missingChild) throw contentMissing(repository, missingChild.digest);
          // locked, so a review cannot delete it before the tag and references below point at it
          const existing = await tx.query<{ id: unknown }>(
            `SELECT id FROM manifests WHERE top_level_namespace_id = $1 AND repository_id = $2 AND digest = $3
             FOR KEY SHARE`,
            [repo.namespaceId, repo.id, encodeDigest(parsed.digest)],
            { prepare: true },
          );
          let id = existing.rows[0] === undefined ? undefined : num(existing.rows[0].id);
          if (id === undefined) {
            const manifest = parsed.manifest as { artifactType?: unknown };
            const artifactType =
              typeof manifest.artifactType === 'string' && manifest.artifactType.length <= MEDIA_TYPE_MAX
                ? manifest.artifactType
                : undefined;
            const layers =
              parsed.kind === 'image'
                ? parsed.manifest.layers.filter((layer) => blobs.has(layer.digest))
                : [];
            const config = parsed.kind === 'image' ? parsed.manifest.config : undefined;
            id = await store.manifest(repo, {
              digest: parsed.digest,
              payload: bytes,
              schemaVersion: 2,
              mediaType: parsed.mediaType,
              totalSize:
                bytes.byteLength +
                (config ? (blobs.get(config.digest) ?? 0) : 0) +
                layers.reduce((sum, layer) => sum + (blobs.get(layer.digest) ?? 0), 0),
              ...(config
                ? {
                    configuration: {
                      digest: config.digest,
                      mediaType:
                        config.mediaType.length <= MEDIA_TYPE_MAX
                          ? config.mediaType
                          : 'application/octet-stream',
                    },
                  }
                : {}),
              nonDistributableLayers: references.nonDistributable.length > 0,
              ...(subject ? { subjectDigest: subject } : {}),
              ...(artifactType ? { artifactMediaType: artifactType } : {}),
            });
            await store.layers(
              repo,
              id,
              layers.map((layer) => ({
                digest: layer.digest,
                size: blobs.get(layer.digest) ?? layer.size,
                mediaType:
                  layer.mediaType.length <= MEDIA_TYPE_MAX ? layer.mediaType : 'application/octet-stream',
              })),
            );
          }
          // children present now are referenced (again: a sparse index may have gained some)
          for (const childId of new Set(children.values())) {
            if (childId !== id) await store.reference(repo, id, childId);
          }
          if ('tag' in target) await store.tag(repo, target.tag, id);
        });
      } catch (error) {
        // a blob or child collected between the checks and the writes
        if (isDatabaseError(error, 'FOREIGN_KEY_VIOLATION')) {
          throw new RegistryError(
            'MANIFEST_BLOB_UNKNOWN',
            `content of ${parsed.digest} is not in ${repository}`,
            {
              cause: error,
              details: { repository, digest: parsed.digest },
            },
          );
        }
        throw error;
      }
      return { digest: parsed.digest, ...(subject ? { subject } : {}) };
    },

    async deleteManifest(repository: string, digest: Digest, options: OperationOptions = {}) {
      ctx.open(options.signal);
      parseRepositoryName(repository);
      parseDigest(digest);
      await transact(db, async (tx) => {
        const repo = await ctx.findRepository(tx, repository);
        const found = repo
          ? await tx.query<{ id: unknown }>(
              `SELECT id FROM manifests WHERE top_level_namespace_id = $1 AND repository_id = $2 AND digest = $3
               FOR UPDATE`,
              [repo.namespaceId, repo.id, encodeDigest(digest)],
            )
          : { rows: [] };
        const id = found.rows[0]?.id;
        if (!repo || id === undefined) throw manifestUnknown(repository, digest);
        // an index listing it keeps its bytes, as in distribution: the child is only no longer there
        await tx.query(
          'DELETE FROM manifest_references WHERE top_level_namespace_id = $1 AND repository_id = $2 AND child_id = $3',
          [repo.namespaceId, repo.id, id],
        );
        await tx.query('DELETE FROM manifests WHERE id = $1', [id]);
      });
    },

    async deleteTag(repository: string, tag: string, options: OperationOptions = {}) {
      ctx.open(options.signal);
      parseRepositoryName(repository);
      parseTag(tag);
      const { rowCount } = await db.query(
        `DELETE FROM tags t USING repositories r
         WHERE r.path = $1 AND t.top_level_namespace_id = r.top_level_namespace_id AND t.repository_id = r.id
           AND t.name = $2`,
        [repository, tag],
      );
      if (rowCount === 0) throw manifestUnknown(repository, tag);
    },

    async listReferrers(
      repository: string,
      digest: Digest,
      options: ReferrersOptions = {},
    ): Promise<Referrers> {
      ctx.open(options.signal);
      parseRepositoryName(repository);
      parseDigest(digest);
      const { rows } = await db.query<ManifestRow>(
        `SELECT m.digest, m.payload, mt.media_type, m.non_conformant FROM repositories r
           JOIN manifests m ON m.top_level_namespace_id = r.top_level_namespace_id AND m.repository_id = r.id
            AND m.subject_digest = $2
           JOIN media_types mt ON mt.id = m.media_type_id
         WHERE r.path = $1`,
        [repository, encodeDigest(digest)],
      );
      return filterReferrers(
        rows.map((row) => {
          const payload = new Uint8Array(row.payload as Uint8Array);
          return referrerDescriptor({
            digest: decodeDigest(row.digest),
            mediaType: servedMediaType(row, payload),
            size: payload.byteLength,
            manifest: payload,
          });
        }),
        options.artifactType,
      );
    },
  };
}
