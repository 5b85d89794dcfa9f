// What an import tells those who watch it: the logger (pino's shape, fields
// first) gets the detailed log's entries, and diagnostics_channel subscribers
// get one message per repository imported and per common blob recorded.
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createPgliteDatabase, type Database, migrate } from '@stowage/metadata-db';
import { DistributionTreeWriter } from '@stowage/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  BLOB_CHANNEL,
  type BlobRecordedMessage,
  REPOSITORY_CHANNEL,
  type RepositoryImportedMessage,
} from './diagnostics.js';
import { importTree } from './importer.js';

let dir: string;
let tree: DistributionTreeWriter;
let db: Database;
let orphan: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'stowage-observe-'));
  tree = new DistributionTreeWriter(dir);
  const one = await tree.image('watch/one');
  await tree.tag('watch/one', 'v1', one.digest);
  await tree.tag('watch/one', 'v2', one.digest);
  await tree.tagWithoutLink('watch/one', 'broken');
  const two = await tree.image('watch/two');
  await tree.tag('watch/two', 'latest', two.digest);
  // a blob no manifest names: only the common-blobs step records it
  orphan = await tree.blob('a blob of its own');
  db = await createPgliteDatabase();
  await migrate(db);
});
afterAll(async () => {
  await db.close();
  await rm(dir, { recursive: true, force: true });
});

describe('watching an import', () => {
  it('gives the logger what the log file gets, fields first and the message second', async () => {
    const calls: { level: string; fields: Record<string, unknown>; message: string | undefined }[] = [];
    const record =
      (level: string) =>
      (fields: object, message?: string): void => {
        calls.push({ level, fields: fields as Record<string, unknown>, message });
      };
    const logFile = join(dir, 'logs', 'import.log');
    await importTree({
      db,
      root: dir,
      lockfiles: false,
      logFile,
      logger: { info: record('info'), warn: record('warn'), error: record('error') },
    });
    expect(calls.map((c) => `${c.level} ${c.message ?? c.fields.reason}`)).toEqual([
      'info import started',
      'warn missing-tag-link',
      'info repository imported',
      'info repository imported',
      'info import finished',
    ]);
    expect(calls[2]?.fields).toEqual({ repository: 'watch/one', tags: 2 });
    expect(calls[1]?.fields).toMatchObject({ repository: 'watch/one', tag: 'broken' });
    // the file holds the same entries, with time and level, in pino's JSON shape
    const lines = (await readFile(logFile, 'utf8'))
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as Record<string, unknown>);
    expect(lines).toHaveLength(calls.length);
    for (const [i, line] of lines.entries()) {
      const call = calls[i];
      const { time, level, msg, ...fields } = line;
      expect(typeof time).toBe('string');
      expect(level).toBe(call?.level);
      expect(msg).toBe(call?.message);
      expect(fields).toEqual(JSON.parse(JSON.stringify(call?.fields)));
    }
  });

  it('publishes one message per repository imported and per common blob recorded, to subscribers', async () => {
    const repositories: RepositoryImportedMessage[] = [];
    const blobs: BlobRecordedMessage[] = [];
    const onRepository = (message: unknown) => repositories.push(message as RepositoryImportedMessage);
    const onBlob = (message: unknown) => blobs.push(message as BlobRecordedMessage);
    subscribe(REPOSITORY_CHANNEL, onRepository);
    subscribe(BLOB_CHANNEL, onBlob);
    let result: Awaited<ReturnType<typeof importTree>>;
    // a database of its own: into one an earlier test filled, the manifests are already there
    const empty = await createPgliteDatabase();
    try {
      await migrate(empty);
      result = await importTree({ db: empty, root: dir, lockfiles: false, dryRun: true });
    } finally {
      unsubscribe(REPOSITORY_CHANNEL, onRepository);
      unsubscribe(BLOB_CHANNEL, onBlob);
      await empty.close();
    }
    expect(repositories).toEqual([
      {
        repository: 'watch/one',
        step: 'import',
        dryRun: true,
        tags: 2,
        manifests: 1,
        warnings: 1,
        retries: 0,
      },
      {
        repository: 'watch/two',
        step: 'import',
        dryRun: true,
        tags: 1,
        manifests: 1,
        warnings: 0,
        retries: 0,
      },
    ]);
    expect(blobs).toHaveLength(result.blobs);
    expect(blobs.map((b) => b.digest)).toContain(orphan);
    expect(blobs.find((b) => b.digest === orphan)).toEqual({
      digest: orphan,
      size: Buffer.byteLength('a blob of its own'),
      dryRun: true,
    });
  });
});
