// The conformance suite must be able to fail: run it, in a child vitest,
// against registries broken on purpose (fixtures/broken-registries.conformance.ts)
// and check that exactly the cases that should catch each defect fail.
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { expect, it } from 'vitest';

interface Assertion {
  fullName: string;
  status: string;
}

it('fails against registries that break the contract', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'stowage-sensitivity-'));
  const out = join(dir, 'report.json');
  const fixtures = join(import.meta.dirname, '../fixtures');
  try {
    await promisify(execFile)(
      process.execPath,
      [
        join(import.meta.dirname, '../../../node_modules/vitest/vitest.mjs'),
        'run',
        '--config',
        join(fixtures, 'vitest.config.ts'),
        '--reporter=json',
        `--outputFile=${out}`,
      ],
      { cwd: fixtures, env: { ...process.env, CI: '' } },
    ).catch(() => undefined); // failures are the point
    const report = JSON.parse(await readFile(out, 'utf8')) as {
      testResults: { assertionResults: Assertion[] }[];
    };
    const results = report.testResults.flatMap((file) => file.assertionResults);
    const failed = (suite: string) =>
      results.filter((r) => r.fullName.includes(suite) && r.status === 'failed').map((r) => r.fullName);
    expect(failed('broken: trusting puts').some((n) => n.includes('a wrong digest is refused'))).toBe(true);
    expect(failed('broken: unsorted tags').some((n) => n.includes('tags are listed in lexical order'))).toBe(
      true,
    );
    expect(failed('broken: unsorted tags').some((n) => n.includes('tag paging'))).toBe(true);
    expect(
      failed('broken: any offset').some((n) => n.includes('a chunk at the wrong offset is refused')),
    ).toBe(true);
    // ...and the rest of each suite still runs and passes.
    expect(results.filter((r) => r.status === 'passed').length).toBeGreaterThan(100);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}, 120_000);
