// The conformance suite must be able to fail: run it, in a child vitest,
// against registries broken on purpose (fixtures/broken-registries.conformance.ts)
// and check that exactly the cases that should catch each defect fail.
import { join } from 'node:path';
import { expect, it } from 'vitest';
import { runVitestChild } from './vitest-child.js';

it('fails against registries that break the contract', async () => {
  const report = await runVitestChild(join(import.meta.dirname, '../fixtures'));
  const results = report.assertions;
  {
    const suite = (name: string) =>
      results.filter((r) => r.fullName.startsWith(`Registry conformance: broken: ${name} `));
    const failed = (name: string) =>
      suite(name)
        .filter((r) => r.status === 'failed')
        .map((r) => r.title);
    expect(failed('trusting puts')).toContain('a wrong digest is refused and nothing is stored');
    expect(failed('unsorted tags')).toContain('tags are listed in lexical order');
    expect(failed('unsorted tags')).toContain('tag paging with n and last returns every tag once, in order');
    expect(failed('any offset')).toEqual(['a chunk at the wrong offset is refused and changes nothing']);
    // A store that claims a capability it lacks fails the cases of that capability, and only those.
    expect(failed('claims deleteTag')).toEqual(['deleting a tag keeps the manifest']);
    expect(failed('claims sparseIndex')).toEqual([
      'a sparse index: accepted with a child absent, served with the same bytes and digest',
      'a sparse push still needs the blobs of an image manifest',
    ]);
    expect(failed('claims uploadSessions')).toContain(
      'capabilities agree with each other and with the members the store has',
    );
    expect(failed('claims uploadSessions')).toContain('start, append chunks, status, finish');
    // A store that declares false what it does fails the refusal checks.
    expect(failed('hides capabilities').sort()).toEqual(
      [
        'a store without mount answers undefined to a mount with from and links nothing',
        'a store without tag deletes refuses them with UNSUPPORTED and keeps the tag',
        'a store without sparse indexes refuses a sparse push with UNSUPPORTED and stores nothing',
        'a store without locks has no lock, or refuses it',
      ].sort(),
    );
    // ...and the cases of what it declares false are reported as skipped, with the reason, never as passed.
    const skipped = suite('hides capabilities').find((r) => r.title === 'deleting a tag keeps the manifest');
    expect(skipped).toMatchObject({ status: 'skipped', meta: { notApplicable: ['deleteTag'] } });
    expect(suite('hides capabilities').find((r) => r.title.startsWith('an exclusive lock'))?.status).toBe(
      'skipped',
    );
    expect(report.numPendingTests).toBeGreaterThanOrEqual(
      results.filter((r) => r.status === 'skipped').length,
    );
    // ...and the rest of each suite still runs and passes.
    expect(results.filter((r) => r.status === 'passed').length).toBeGreaterThan(300);
  }
}, 120_000);
