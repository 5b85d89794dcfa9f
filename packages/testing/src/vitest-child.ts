// Runs a vitest project in a child process and hands back its JSON report: how a
// sensitivity test proves that a suite fails against stores broken on purpose
// (the child's failures are the point, so its exit code is not an error here).
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

/** One test case of vitest's JSON report. */
export interface VitestAssertion {
  readonly ancestorTitles: readonly string[];
  readonly fullName: string;
  readonly title: string;
  readonly status: string;
  readonly meta?: { readonly notApplicable?: readonly string[] };
}

export interface VitestReport {
  readonly numPassedTests: number;
  readonly numPendingTests: number;
  readonly numFailedTests: number;
  /** Every case of every file. */
  readonly assertions: readonly VitestAssertion[];
}

/** The workspace's vitest entry point (this file sits at packages/testing/src). */
const VITEST = join(import.meta.dirname, '../../../node_modules/vitest/vitest.mjs');

/**
 * Runs `vitest run --config <fixtures>/vitest.config.ts` in `fixtures` (with
 * `CI` unset, so the child's own peer checks skip rather than fail) and
 * returns its report.
 */
export async function runVitestChild(fixtures: string): Promise<VitestReport> {
  const dir = await mkdtemp(join(tmpdir(), 'stowage-vitest-child-'));
  const out = join(dir, 'report.json');
  try {
    await promisify(execFile)(
      process.execPath,
      [
        VITEST,
        'run',
        '--config',
        join(fixtures, 'vitest.config.ts'),
        '--reporter=json',
        `--outputFile=${out}`,
      ],
      { cwd: fixtures, env: { ...process.env, CI: '' }, maxBuffer: 64 << 20 },
    ).catch(() => undefined);
    const report = JSON.parse(await readFile(out, 'utf8')) as {
      numPassedTests: number;
      numPendingTests: number;
      numFailedTests: number;
      testResults: { assertionResults: VitestAssertion[] }[];
    };
    return {
      numPassedTests: report.numPassedTests,
      numPendingTests: report.numPendingTests,
      numFailedTests: report.numFailedTests,
      assertions: report.testResults.flatMap((file) => file.assertionResults),
    };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
