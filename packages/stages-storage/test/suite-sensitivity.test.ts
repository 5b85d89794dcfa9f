// The StagesStorage suite must be able to fail: run it, in a child vitest,
// against storages broken on purpose (fixtures/broken-storages.sensitivity.ts)
// and check that exactly the cases that should catch each defect fail, that
// the unbroken baseline passes, and that what does not apply is skipped with
// its reason, never passed.
import { join } from 'node:path';
import { runVitestChild } from '@stowage/testing';
import { expect, it } from 'vitest';

it('fails against storages that break the contract', { timeout: 120_000 }, async () => {
  const report = await runVitestChild(join(import.meta.dirname, 'fixtures'));
  const results = report.assertions;
  {
    const suite = (name: string) =>
      results.filter((r) => r.ancestorTitles[0] === `StagesStorage: broken: ${name}`);
    const failed = (name: string) =>
      suite(name)
        .filter((r) => r.status === 'failed')
        .map((r) => r.title)
        .sort();

    expect(suite('baseline').length).toBeGreaterThan(35);
    expect(failed('baseline')).toEqual([]);
    expect(failed('keeps rejected')).toEqual(
      ['rejected stages are left out', 'writes the rejected record; the stage reads as rejected'].sort(),
    );
    expect(failed('ignores cache')).toEqual(
      [
        'a batch of 20 reads with cache lists the tags once',
        'writes through the storage keep the cached listing current',
      ].sort(),
    );
    expect(failed('hides broken images')).toEqual(
      [
        'a stage whose config blob is gone is BROKEN_IMAGE',
        'a multiplatform stage whose child manifest is gone is BROKEN_IMAGE',
      ].sort(),
    );
    expect(failed('custom tag delete takes the digest')).toEqual([
      'add, check and delete a custom tag; the stage stays',
    ]);
    expect(failed('managed images not written')).toContain('add, exists, list and remove');
    expect(failed('sizes wrong')).toContain('a stage: every ImageInfo field');
    expect(failed('sizes wrong')).toContain('a Docker manifest list under the multiplatform digest');
    // spec A.6: a record written with werf < v2.75.4's zero-byte layer is not what we write
    expect(failed('old record layer')).toEqual(['cleanup record: post and get']);
    expect(failed('export keeps a werf label')).toEqual(
      [
        'to another repository of the same store (layers mounted, not moved, where it mounts)',
        'to another store',
        'a multiplatform stage: each child exported, a new list with the platforms kept',
      ].sort(),
    );
    expect(failed('deleteRepo refused though declared')).toEqual([
      'deleteRepo removes every stage and record',
    ]);

    // what does not apply is skipped with the reason, never passed
    const notApplicable = suite('baseline').filter((r) => r.status === 'skipped');
    expect(notApplicable.map((r) => [r.title, r.meta?.notApplicable]).sort()).toEqual(
      [
        ['a storage that declares deleteRepo false refuses it', ['deleteRepo is claimed']],
        ['the local storage keeps no records: writes are no-ops, reads empty', ['records is claimed']],
        ['the local storage: stages are already local', ['the local storage only']],
      ].sort(),
    );
  }
});
