import { Readable } from 'node:stream';
import { type BlobBody, type OperationOptions, RegistryError } from '@stowage/oci';
import { checkLength } from './internal/body.js';
import {
  type CreateStagedUploadOptions,
  isStagingId,
  type StagedUpload,
  type StagingAppendOptions,
  type UploadStaging,
} from './upload-staging.js';

interface Session {
  readonly repository: string;
  readonly startedAt: number;
  readonly chunks: Uint8Array[];
  size: number;
}

function unknown(id: string): RegistryError {
  return new RegistryError('BLOB_UPLOAD_UNKNOWN', `upload ${String(id).slice(0, 64)} is not staged`);
}

/**
 * A staging area in memory, for tests and the in-memory registry. A chunk is
 * gathered whole before it joins its session, so a failed append changes nothing.
 */
export function createMemoryStaging(): UploadStaging {
  const sessions = new Map<string, Session>();

  function session(id: string): Session {
    const found = isStagingId(id) ? sessions.get(id) : undefined;
    if (!found) throw unknown(id);
    return found;
  }

  function info(id: string, s: Session): StagedUpload {
    return { id, repository: s.repository, startedAt: s.startedAt, size: s.size };
  }

  return {
    async create(id: string, opts: CreateStagedUploadOptions) {
      opts.signal?.throwIfAborted();
      if (!isStagingId(id)) throw unknown(id);
      if (sessions.has(id)) throw new RegistryError('BLOB_UPLOAD_INVALID', `upload ${id} is staged already`);
      const created: Session = {
        repository: opts.repository,
        startedAt: opts.startedAt,
        chunks: [],
        size: 0,
      };
      sessions.set(id, created);
      return info(id, created);
    },

    async stat(id: string, opts: OperationOptions = {}) {
      opts.signal?.throwIfAborted();
      const found = isStagingId(id) ? sessions.get(id) : undefined;
      return found && info(id, found);
    },

    async append(id: string, body: BlobBody, opts: StagingAppendOptions) {
      opts.signal?.throwIfAborted();
      const s = session(id);
      const start = s.size;
      if (opts.offset !== start) {
        throw new RegistryError(
          'RANGE_INVALID',
          `chunk starts at ${opts.offset}, the upload is at ${start}`,
          {
            details: { offset: start, requested: opts.offset },
          },
        );
      }
      const checked = checkLength(body, opts.length);
      const chunks: Uint8Array[] = [];
      for await (const chunk of checked.chunks) {
        opts.signal?.throwIfAborted();
        chunks.push(Buffer.from(chunk));
      }
      if (sessions.get(id) !== s) throw unknown(id);
      if (s.size !== start) {
        throw new RegistryError('RANGE_INVALID', 'another chunk was appended meanwhile', {
          details: { offset: s.size, requested: start },
        });
      }
      s.chunks.push(...chunks);
      s.size += checked.seen();
      return s.size;
    },

    async read(id: string, opts: OperationOptions = {}) {
      opts.signal?.throwIfAborted();
      const s = session(id);
      return Readable.from([...s.chunks], {
        objectMode: false,
        ...(opts.signal ? { signal: opts.signal } : {}),
      });
    },

    async remove(id: string, opts: OperationOptions = {}) {
      opts.signal?.throwIfAborted();
      return isStagingId(id) && sessions.delete(id);
    },

    async *list(opts: OperationOptions = {}) {
      for (const [id, s] of [...sessions]) {
        opts.signal?.throwIfAborted();
        if (sessions.get(id) === s) yield info(id, s);
      }
    },
  };
}
