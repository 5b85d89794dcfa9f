// bench/ui: how long each page of stowage-server's web UI takes to render in a
// real browser (playwright-core driving Debian's chromium, headless) over a
// registry of `repos` repositories and a repository of `tags` tags, on the
// file store and in database mode, each server in its own process. For each
// page: the time from navigation to the first rows shown, and to the page
// complete (the whole listing read). Printed, not asserted; the issue's
// figure is one second per page.
// Usage: pnpm bench ui [repos=10000] [tags=10000] [runs=3]
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { createPostgresDatabase, migrate } from '@stowage/metadata-db';
import { createTestDatabase, findExecutable, randomImage } from '@stowage/testing';
import { chromium, type Page } from 'playwright-core';
import {
  fillRepositories,
  inParallel,
  type ServerTarget,
  seedImage,
  startServerTarget,
  tagImage,
} from '../fill.js';

const repoCount = Number(process.argv[2] ?? 10_000);
const tagCount = Number(process.argv[3] ?? 10_000);
const runs = Number(process.argv[4] ?? 3);
const work = await mkdtemp(join(tmpdir(), 'stowage-bench-ui-'));
const image = randomImage({ layers: 3, layerSize: 4096 });
const REPO = 'bench/tags';

type Target = ServerTarget;

/** Seconds until `ready` holds on a page opened at `url`, best of `runs`, each in a fresh page. */
async function measure(
  newPage: () => Promise<Page>,
  url: string,
  ready: (page: Page) => Promise<unknown>,
): Promise<number> {
  let best = Number.POSITIVE_INFINITY;
  for (let i = 0; i < runs; i++) {
    const page = await newPage();
    const started = performance.now();
    await page.goto(url);
    await ready(page);
    best = Math.min(best, (performance.now() - started) / 1000);
    await page.close();
  }
  return best;
}

const test = await createTestDatabase('stowage_bench_ui');
const db = createPostgresDatabase({ connectionString: test.url });
await migrate(db);
await db.close();
const targets: Target[] = [];
const executablePath = findExecutable('chromium');
if (!executablePath) throw new Error('bench/ui needs chromium (apt-get install chromium)');
const browser = await chromium.launch({ executablePath, args: ['--headless', '--no-sandbox'] });
try {
  targets.push(await startServerTarget('file store', ['--root', join(work, 'file')]));
  targets.push(
    await startServerTarget('database mode', ['--root', join(work, 'database'), '--database-url', test.url]),
  );
  console.log(
    `bench/ui: ${repoCount} repositories, a repository of ${tagCount} tags, best of ${runs}, chromium headless`,
  );
  for (const target of targets) {
    const fillStarted = performance.now();
    await seedImage(target, REPO, image, 't0');
    await inParallel(tagCount - 1, 32, (i) => tagImage(target, REPO, image, `t${i + 1}`));
    await fillRepositories(target, { prefix: 'bench/r', count: repoCount - 1, from: REPO, image });
    const filled = (performance.now() - fillStarted) / 1000;
    const base = `http://127.0.0.1:${target.port}/ui/`;
    const newPage = () => browser.newPage();
    const rows = (testid: string) => (page: Page) => page.getByTestId(testid).first().waitFor();
    const complete = (testid: string) => async (page: Page) => {
      await page.getByTestId(`${testid}-row`).first().waitFor();
      await page.waitForFunction(
        (id) => {
          // runs in the page: the browser's document, which this package's types do not know
          const { document } = globalThis as unknown as {
            document: { querySelector(selector: string): { textContent: string | null } | null };
          };
          const count = document.querySelector(`[data-testid="${id}-count"]`)?.textContent ?? '';
          return count !== '' && !count.includes('so far');
        },
        testid,
        { timeout: 120_000 },
      );
    };
    const figures: [string, number][] = [
      ['repositories: first rows', await measure(newPage, base, rows('repository-row'))],
      ['repositories: all listed', await measure(newPage, base, complete('repository'))],
      [
        'repositories: search',
        await measure(newPage, `${base}#/?q=r${repoCount - 2}`, async (page) => {
          await complete('repository')(page);
          await page.getByTestId('repository-row').first().waitFor();
        }),
      ],
      [`tags of ${REPO}: first rows`, await measure(newPage, `${base}#/r/${REPO}`, rows('tag-row'))],
      [`tags of ${REPO}: all listed`, await measure(newPage, `${base}#/r/${REPO}`, complete('tag'))],
      [
        'manifest with layers',
        await measure(newPage, `${base}#/r/${REPO}/m/t0`, (page) =>
          page.getByTestId('layer-row').first().waitFor(),
        ),
      ],
    ];
    console.log(`${target.name} (filled in ${filled.toFixed(1)} s):`);
    for (const [what, seconds] of figures) console.log(`  ${what}: ${seconds.toFixed(3)} s`);
  }
} finally {
  await browser.close();
  for (const target of targets.reverse()) await target.stop().catch(() => undefined);
  await test.drop().catch(() => undefined);
  await rm(work, { recursive: true, force: true });
}
