// Pre-import and import of repositories: one transaction each, tags written in savepoints.
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import {
  type DatabaseError,
  isDatabaseError,
  type RepositoryRow,
  type Transaction,
} from '@stowage/metadata-db';
import type { Digest } from '@stowage/oci';
import { publishRepository } from '../diagnostics.js';
import type { LinkResult } from '../layout.js';
import type { ImportProgress } from '../options.js';
import type { SkipReason } from '../warnings.js';
import { type Attempt, newAttempt, note, Skip } from './attempt.js';
import { importManifest } from './manifest.js';
import type { ImportRun } from './run.js';

/** Which repository, and what its pass writes: manifests (pre-import), tags (import), or both in one pass. */
export interface RepositoryPass {
  readonly repository: string;
  readonly step: ImportProgress['step'];
  readonly manifests: boolean;
  readonly tags: boolean;
}

/** A row the database refused for what it holds (SQLSTATE class 22 data exception or 23 constraint), not for a transient cause. */
function isRejectedRow(error: unknown): error is DatabaseError {
  return isDatabaseError(error) && !error.retryable && /^2[23]/.test(error.sqlState ?? '');
}

/** Reads tag links with bounded concurrency, keeping tag order. */
async function readTags(run: ImportRun, repository: string): Promise<{ tag: string; link: LinkResult }[]> {
  const { tree } = run;
  const tags = await tree.tags(repository);
  const results: { tag: string; link: LinkResult }[] = new Array(tags.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(run.options.tagConcurrency, tags.length) }, async () => {
      while (next < tags.length) {
        const i = next++;
        const tag = tags[i] as string;
        results[i] = { tag, link: await tree.tagLink(repository, tag) };
      }
    }),
  );
  return results;
}

/**
 * Writes one tag in a savepoint. A row the database refuses for its content
 * is rolled back alone and reported (GitLab logs and goes on); anything else,
 * a retryable failure above all, propagates and ends the attempt.
 */
async function writeTag(
  run: ImportRun,
  tx: Transaction,
  tag: { repo: RepositoryRow; name: string; manifestId: number; digest: Digest; attempt: Attempt },
): Promise<boolean> {
  try {
    await tx.savepoint((sp) => run.store.on(sp).tag(tag.repo, tag.name, tag.manifestId));
    return true;
  } catch (error) {
    if (!isRejectedRow(error)) throw error;
    note(tag.attempt, {
      reason: 'tag-rejected',
      repository: tag.repo.path,
      tag: tag.name,
      digest: tag.digest,
      detail: `${error.code}: ${error.message}`,
    });
    return false;
  }
}

function tagLinkReason(link: LinkResult & { ok: false }): SkipReason {
  return link.problem === 'missing'
    ? 'missing-tag-link'
    : link.problem === 'invalid'
      ? 'invalid-digest-link'
      : 'unsupported-digest-link';
}

/** Pre-import and/or import of one repository, in one transaction (or in the dry run's, `dry`). */
export async function importRepository(
  run: ImportRun,
  dry: Transaction | undefined,
  steps: RepositoryPass,
): Promise<void> {
  const { options, counters } = run;
  const { repository } = steps;
  const skipRecent = options.preImportSkipRecentMs;
  const tagged = await readTags(run, repository);
  const retriesBefore = counters.retries;
  // what the attempt that commits produced; an attempt rolled back leaves nothing behind
  let attempt = newAttempt();
  let tagsWritten = 0;
  await run.inTransaction(dry, async (tx) => {
    attempt = newAttempt();
    tagsWritten = 0;
    const store = run.store.on(tx);
    const repo = await store.repository(repository);
    if (
      steps.manifests &&
      !steps.tags &&
      skipRecent > 0 &&
      repo.lastPublishedAt &&
      Date.now() - repo.lastPublishedAt.getTime() < skipRecent
    ) {
      return;
    }
    // What an earlier run imported, one query each. A run that imports tags trusts a manifest
    // already there (content-addressed: unchanged) and writes only tags that moved, as GitLab's
    // step two does. A pre-import alone reads every manifest again: it is the step that
    // re-validates references (container-registry#652), and a layer link that appeared since
    // is picked up there.
    const known = steps.tags ? await store.manifestIds(repo) : new Map<Digest, number>();
    const tagTargets = steps.tags ? await store.tagTargets(repo) : new Map<string, number>();
    const target = { store, repository, repo, attempt, known };
    const kept: string[] = [];
    const moved: Parameters<typeof writeTag>[2][] = [];
    for (const { tag, link } of tagged) {
      run.checkAbort();
      if (!link.ok) {
        note(attempt, {
          reason: tagLinkReason(link),
          repository,
          tag,
          ...(link.text ? { detail: link.text } : {}),
        });
        continue;
      }
      let id: number;
      try {
        id = await importManifest(run, target, link.digest);
      } catch (error) {
        if (!(error instanceof Skip)) throw error;
        note(attempt, {
          reason: error.reason,
          repository,
          tag,
          digest: error.digest ?? link.digest,
          detail: error.message,
        });
        continue;
      }
      if (!steps.tags) continue;
      if (tagTargets.get(tag) === id) {
        kept.push(tag);
        tagsWritten++;
      } else moved.push({ repo, name: tag, manifestId: id, digest: link.digest, attempt });
    }
    if (steps.tags) {
      // The tags that are new or moved, in one savepoint and a statement per thousand; a row
      // the database refuses sends them one savepoint each, so only that one is left out.
      try {
        await tx.savepoint((sp) => run.store.on(sp).tags(repo, moved));
        kept.push(...moved.map((t) => t.name));
        tagsWritten += moved.length;
      } catch (error) {
        if (!isRejectedRow(error)) throw error;
        for (const tag of moved) {
          if (await writeTag(run, tx, tag)) {
            kept.push(tag.name);
            tagsWritten++;
          }
        }
      }
      await store.pruneTags(repo, kept);
    }
    if (steps.manifests) await store.markPublished(repo);
  });
  for (const warning of attempt.warnings.values()) await run.warn(warning);
  counters.repositories++;
  counters.tags += tagsWritten;
  counters.manifests += attempt.manifests;
  publishRepository(() => ({
    repository,
    step: steps.step,
    dryRun: options.dryRun,
    tags: tagsWritten,
    manifests: attempt.manifests,
    warnings: attempt.warnings.size,
    retries: counters.retries - retriesBefore,
  }));
  await run.log('info', () => ({ repository, tags: tagsWritten }), 'repository imported');
}

async function hasManifestsDir(run: ImportRun, repository: string): Promise<boolean> {
  try {
    return (
      await stat(join(run.tree.v2, 'repositories', ...repository.split('/'), '_manifests'))
    ).isDirectory();
  } catch {
    return false;
  }
}

/** Lists the step's repositories (so progress can tell how far along it is), then works through them in order. */
export async function eachRepository(
  run: ImportRun,
  step: ImportProgress['step'],
  work: (repository: string) => Promise<void>,
): Promise<void> {
  const { tree, options } = run;
  const wanted = options.repositories ? new Set(options.repositories) : undefined;
  const names: string[] = [];
  for await (const repository of tree.repositories())
    if (!wanted || wanted.has(repository)) names.push(repository);
  run.repositoriesTotal = run.counters.repositories + names.length;
  run.progress(step);
  for (const repository of names) {
    run.checkAbort();
    if ((await tree.tags(repository)).length === 0 && !(await hasManifestsDir(run, repository))) {
      await run.warn({ reason: 'repository-without-manifests', repository });
    }
    await work(repository);
    run.progress(step, repository);
  }
}
