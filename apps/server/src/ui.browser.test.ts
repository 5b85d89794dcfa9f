// The web UI in a real browser (playwright-core driving Debian's chromium, headless) against a
// stowage-server filled by skopeo: browsing to a two-platform index and into a child's layers,
// searching, deleting a tag as a user who may and finding it neither offered to nor allowed for a
// pull-only user (whose page's own requests to change anything the server refuses), the first
// page's bytes on the wire, and every page walked with the keyboard alone. Screenshots of each page
// go to apps/server/test-results/ui/.
import { execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  findExecutable,
  isRandomIndex,
  populateWithSkopeo,
  type RandomImage,
  type RandomIndex,
  requirePeers,
  type SkopeoPush,
} from '@stowage/testing';
import { pino } from 'pino';
import { type Browser, type BrowserContext, chromium, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureBinary } from '../test/binary.js';
import { buildAuthorizer } from './auth.js';
import { loadConfig } from './config.js';
import { type RunningServer, startServer } from './server.js';

// The functions given to page.evaluate run in the browser. The server's tsconfig has no DOM lib,
// so the few DOM names they use are declared here, for this file only.
interface PageElement {
  readonly tagName: string;
  readonly textContent: string | null;
  matches(selector: string): boolean;
  getAttribute(name: string): string | null;
  checkVisibility(options?: { visibilityProperty?: boolean; opacityProperty?: boolean }): boolean;
}
declare const document: {
  readonly activeElement: PageElement | null;
  querySelectorAll(selector: string): ArrayLike<PageElement> & Iterable<PageElement>;
  addEventListener(type: 'focusin', listener: (event: { readonly target: unknown }) => void): void;
};
/** What has had focus since the walk began. */
declare const window: { __focused: Set<unknown> };

const SCREENSHOTS = join(import.meta.dirname, '..', 'test-results', 'ui');
/** The first page (the HTML, its script and stylesheet, the session, the catalog), compressed. */
const FIRST_PAGE_BUDGET = 150 * 1024;
const USERS = { alice: 'wonder', bob: 'builder' } as const;

describe('the web UI in a browser', () => {
  if (!requirePeers('chromium', 'skopeo', 'htpasswd')) return;

  const dirs: string[] = [];
  let server: RunningServer;
  let browser: Browser;
  let pushes: readonly SkopeoPush[];
  /** What alice can read from the API, outside the browser. */
  let api: (path: string) => Promise<Response>;

  beforeAll(async () => {
    // the server serves the built UI (dist/ui): build it when it is missing or stale
    await ensureBinary();
    const dir = await mkdtemp(join(tmpdir(), 'stowage-ui-browser-'));
    dirs.push(dir);
    const htpasswd = join(dir, 'htpasswd');
    const line = (user: string, password: string) =>
      execFileSync('htpasswd', ['-Bbn', '-C', '4', user, password], { encoding: 'utf8' }).trim();
    await writeFile(htpasswd, `${line('alice', USERS.alice)}\n${line('bob', USERS.bob)}\n`);
    const config = await loadConfig({
      overrides: {
        'storage.filesystem.rootdirectory': join(dir, 'store'),
        'http.addr': '127.0.0.1:0',
        'auth.htpasswd': { realm: 'stowage', path: htpasswd },
        access: [{ repository: '**', users: { alice: ['pull', 'push', 'delete'], bob: ['pull'] } }],
      },
    });
    const auth = await buildAuthorizer(config);
    // no uiDirectory: the real built UI
    server = await startServer(config, { logger: pino({ level: 'silent' }), ...(auth ? { auth } : {}) });
    const basic = `Basic ${Buffer.from(`alice:${USERS.alice}`).toString('base64')}`;
    api = (path) => fetch(`${server.url}${path}`, { headers: { authorization: basic } });
    [pushes, browser] = await Promise.all([
      populateWithSkopeo(new URL(server.url).host, {
        work: join(dir, 'sources'),
        args: ['--dest-creds', `alice:${USERS.alice}`],
      }),
      chromium.launch({
        executablePath: findExecutable('chromium') ?? '/usr/bin/chromium',
        args: ['--headless', '--no-sandbox'],
      }),
    ]);
    await mkdir(SCREENSHOTS, { recursive: true });
  }, 300_000);

  afterAll(async () => {
    await browser?.close();
    await server?.close();
    for (const dir of dirs) await rm(dir, { recursive: true, force: true });
  });

  /** A fresh browser profile (no cookies, no cache). */
  async function newContext(): Promise<BrowserContext> {
    const context = await browser.newContext({ baseURL: server.url, viewport: { width: 1100, height: 800 } });
    context.setDefaultTimeout(10_000);
    return context;
  }

  /** A page whose script errors fail the test. */
  async function newPage(context: BrowserContext): Promise<{ page: Page; errors: string[] }> {
    const page = await context.newPage();
    const errors: string[] = [];
    page.on('pageerror', (error) => errors.push(error.message));
    return { page, errors };
  }

  const screenshot = (page: Page, name: string) =>
    page.screenshot({ path: join(SCREENSHOTS, `${name}.png`), fullPage: true });

  const heading = (page: Page) => page.getByTestId('page-heading');

  function pushOf(repository: string, tag: string): RandomImage | RandomIndex {
    const push = pushes.findLast((p) => p.repository === repository && p.tags.includes(tag));
    if (!push) throw new Error(`nothing pushed as ${repository}:${tag}`);
    return push.content;
  }

  /** Logs in with the page's own form (on `#/login`). */
  async function logIn(page: Page, user: keyof typeof USERS): Promise<void> {
    await page.goto('/ui/#/login');
    await page.getByTestId('login-username').fill(user);
    await page.getByTestId('login-password').fill(USERS[user]);
    await page.getByTestId('login-submit').click();
    await expect.poll(() => page.getByTestId('session-user').textContent()).toBe(`Signed in as ${user}`);
  }

  /** From now on, the page keeps every element that gets focus (in `window.__focused`). */
  async function startWalk(page: Page): Promise<void> {
    await page.evaluate(() => {
      const seen = new Set<unknown>();
      window.__focused = seen;
      document.addEventListener('focusin', (event) => {
        seen.add(event.target);
      });
    });
  }

  /**
   * Presses Tab (only) until every visible link and button of the page has had focus, at most
   * twice around the page; answers those that never did (empty: every one was reached).
   */
  async function walkWithTab(page: Page): Promise<string[]> {
    await startWalk(page);
    const unreached = () =>
      page.evaluate(() => {
        const seen = window.__focused;
        return [...document.querySelectorAll('a[href], button')]
          .filter((element) => element.checkVisibility({ visibilityProperty: true, opacityProperty: true }))
          .filter((element) => !seen.has(element))
          .map((element) => `${element.tagName.toLowerCase()} "${element.textContent?.trim()}"`);
      });
    const controls = await page.evaluate(
      () => document.querySelectorAll('a[href], button, input, select, summary, [tabindex]').length,
    );
    let left = await unreached();
    for (let press = 0; press < 2 * controls + 4 && left.length > 0; press++) {
      await page.keyboard.press('Tab');
      left = await unreached();
    }
    return left;
  }

  /** Presses Tab until the focused element matches `selector` (around the page at most twice). */
  async function tabTo(page: Page, selector: string): Promise<void> {
    const controls = await page.evaluate(
      () => document.querySelectorAll('a[href], button, input, select, summary, [tabindex]').length,
    );
    for (let press = 0; press < 2 * controls + 4; press++) {
      if (await page.evaluate((s) => document.activeElement?.matches(s) ?? false, selector)) return;
      await page.keyboard.press('Tab');
    }
    throw new Error(`Tab never reached ${selector}`);
  }

  /** Walks the page with Tab (every visible link and button reached), then screenshots it. */
  async function walkAndShoot(page: Page, name: string): Promise<void> {
    expect(await walkWithTab(page), `${name}: links and buttons Tab never reached`).toEqual([]);
    await screenshot(page, name);
  }

  it('loads the first page in under 150 KB on the wire (compressed)', async () => {
    const context = await newContext();
    // signed in (the cookie set outside the page), so the first page is the full repository list
    const login = await context.request.post('/ui/api/login', {
      data: { username: 'alice', password: USERS.alice },
    });
    expect(login.status()).toBe(204);
    const { page, errors } = await newPage(context);
    interface Transfer {
      readonly url: string;
      /** Response headers and body, as they came over the wire. */
      readonly bytes: number;
      readonly encoding: string | undefined;
      readonly contentLength: string | undefined;
      /** The body alone (encoded). */
      readonly length: number;
    }
    const finished: Promise<Transfer>[] = [];
    const failed: string[] = [];
    page.on('requestfailed', (request) => failed.push(request.url()));
    page.on('requestfinished', (request) => {
      finished.push(
        (async () => {
          const sizes = await request.sizes();
          const response = await request.response();
          return {
            url: request.url(),
            // what came over the wire: the (encoded) body and the response headers
            bytes: sizes.responseBodySize + sizes.responseHeadersSize,
            encoding: (await response?.headerValue('content-encoding')) ?? undefined,
            contentLength: (await response?.headerValue('content-length')) ?? undefined,
            length: sizes.responseBodySize,
          };
        })(),
      );
    });
    await page.goto('/ui/', { waitUntil: 'networkidle' });
    await expect.poll(() => page.getByTestId('repository-row').count()).toBe(7);
    const responses = await Promise.all(finished);
    const total = responses.reduce((sum, response) => sum + response.bytes, 0);
    console.log(
      `first page: ${total} bytes on the wire in ${responses.length} responses\n${responses
        .map((r) => `  ${r.bytes}\t${r.encoding ?? 'identity'}\t${r.url.replace(server.url, '')}`)
        .join('\n')}`,
    );
    const paths = responses.map((r) => new URL(r.url).pathname);
    expect(paths).toEqual(
      expect.arrayContaining(['/ui/', '/ui/api/session', '/v2/_catalog', expect.stringMatching(/\.js$/)]),
    );
    // the page, its script and its stylesheet came compressed: their sizes are the gzip bytes
    for (const response of responses.filter((r) => /\/ui\/(?:$|assets\/)/.test(new URL(r.url).pathname))) {
      expect(response.encoding, response.url).toBe('gzip');
      // the body counted is the bytes sent (the gzip stream), not what it decodes to
      expect(response.length, response.url).toBe(Number(response.contentLength));
    }
    expect(failed).toEqual([]);
    expect(total).toBeGreaterThan(0);
    expect(total).toBeLessThan(FIRST_PAGE_BUDGET);
    expect(errors).toEqual([]);
    await context.close();
  });

  it('browses to a two-platform index, into a child and its layers, and searches', async () => {
    const context = await newContext();
    const { page, errors } = await newPage(context);
    await page.goto('/ui/');
    // anonymous: the registry answers 401, and the page offers its login form in place
    await expect.poll(() => page.getByTestId('login-needed').isVisible()).toBe(true);
    await page.goto('/ui/#/login');
    await expect.poll(() => heading(page).textContent()).toBe('Log in');
    await screenshot(page, 'login');
    await page.getByTestId('login-username').fill('alice');
    await page.getByTestId('login-password').fill('not the password');
    await page.getByTestId('login-submit').click();
    await expect
      .poll(() => page.getByTestId('login-error').textContent())
      .toBe('Wrong user name or password.');
    await page.getByTestId('login-password').fill(USERS.alice);
    await page.getByTestId('login-submit').click();
    await expect.poll(() => heading(page).textContent()).toBe('Repositories');
    await expect.poll(() => page.getByTestId('session-user').textContent()).toBe('Signed in as alice');

    // every repository skopeo pushed, nested names too, in name order
    const rows = page.getByTestId('repository-row');
    await expect.poll(() => rows.count()).toBe(7);
    expect(await page.getByTestId('repository-link').allTextContents()).toEqual([
      'multi/docker',
      'multi/oci',
      'shared/base',
      'shared/derived',
      'single/docker',
      'single/oci',
      'team/sub/app',
    ]);
    expect(await page.getByTestId('repository-count').textContent()).toBe('7 repositories');
    await screenshot(page, 'repositories');

    // search: filtered in the page, kept in the address
    await page.getByTestId('repository-search').fill('multi');
    await expect.poll(() => rows.count()).toBe(2);
    expect(await page.getByTestId('repository-link').allTextContents()).toEqual([
      'multi/docker',
      'multi/oci',
    ]);
    expect(await page.getByTestId('repository-count').textContent()).toBe('2 of 7 match');
    expect(new URL(page.url()).hash).toBe('#/?q=multi');
    await screenshot(page, 'search');
    await page.getByTestId('repository-search').fill('nothing-like-this');
    await expect.poll(() => page.getByTestId('status').textContent()).toBe('No repository matches.');
    await page.getByTestId('repository-search').fill('sub app');
    await expect.poll(() => page.getByTestId('repository-link').allTextContents()).toEqual(['team/sub/app']);
    await page.getByTestId('repository-search').fill('multi');

    // the index's tags
    await page.locator('[data-repository="multi/oci"]').getByTestId('repository-link').click();
    await expect.poll(() => heading(page).textContent()).toBe('multi/oci');
    expect(new URL(page.url()).hash).toBe('#/r/multi/oci');
    await expect.poll(() => page.getByTestId('tag-link').allTextContents()).toEqual(['latest', 'v1']);
    await expect.poll(() => page.getByTestId('delete-tag').count()).toBe(2);
    await screenshot(page, 'tags');

    // the index: its two platforms, each linking to its child
    const pushed = pushOf('multi/oci', 'v1');
    if (!isRandomIndex(pushed)) throw new Error('multi/oci:v1 is an index');
    await page.locator('[data-tag="v1"]').getByTestId('tag-link').click();
    await expect.poll(() => heading(page).textContent()).toBe('multi/oci:v1');
    expect(await page.getByTestId('manifest-media-type').textContent()).toBe(
      'application/vnd.oci.image.index.v1+json',
    );
    expect(await page.getByTestId('manifest-digest').textContent()).toBe(pushed.index.digest);
    await expect.poll(() => page.getByTestId('platform-row').count()).toBe(2);
    expect(await page.getByTestId('platform-link').allTextContents()).toEqual(['linux/amd64', 'linux/arm64']);
    expect(
      await page
        .getByTestId('platform-link')
        .evaluateAll((links) => links.map((a) => a.getAttribute('data-digest'))),
    ).toEqual(pushed.images.map((image) => image.manifest.digest));
    expect(await page.getByTestId('command-podman').textContent()).toBe(
      `podman pull --tls-verify=false ${new URL(server.url).host}/multi/oci:v1`,
    );
    await expect.poll(() => page.getByTestId('delete-tag').isVisible()).toBe(true);
    await expect
      .poll(() => page.getByTestId('referrers').getByTestId('status').textContent())
      .toMatch(/^No signatures/);
    await screenshot(page, 'index');

    // a child: the image's config summary and its layers, as pushed
    const child = pushed.images[1] as RandomImage;
    await page.getByTestId('platform-link').nth(1).click();
    await expect
      .poll(() => heading(page).textContent())
      .toBe(`multi/oci@${child.manifest.digest.slice(0, 19)}`);
    expect(new URL(page.url()).hash).toBe(`#/r/multi/oci/m/${child.manifest.digest}`);
    expect(await page.getByTestId('manifest-media-type').textContent()).toBe(
      'application/vnd.oci.image.manifest.v1+json',
    );
    await expect.poll(() => page.getByTestId('layer-row').count()).toBe(child.layers.length);
    const layerText = await page.getByTestId('layer-row').allTextContents();
    for (const [i, layer] of child.layers.entries()) {
      expect(layerText[i]).toContain(layer.descriptor.digest.slice(0, 19));
    }
    await expect.poll(() => page.getByTestId('config-details').textContent()).toContain('linux/arm64');
    // by digest: no tag to delete, the manifest may be
    expect(await page.getByTestId('delete-tag').count()).toBe(0);
    await expect.poll(() => page.getByTestId('delete-manifest').isVisible()).toBe(true);
    await screenshot(page, 'image');

    // the breadcrumb back to the repository
    await page
      .getByRole('navigation', { name: 'Breadcrumb' })
      .getByRole('link', { name: 'multi/oci' })
      .click();
    await expect.poll(() => heading(page).textContent()).toBe('multi/oci');
    expect(errors).toEqual([]);
    await context.close();
  });

  it('deletes a tag for a user who may delete', async () => {
    const context = await newContext();
    const { page, errors } = await newPage(context);
    await logIn(page, 'alice');
    await page.goto('/ui/#/r/team/sub/app');
    await expect.poll(() => heading(page).textContent()).toBe('team/sub/app');
    // natural order: 1.0 before 1.0.0
    await expect
      .poll(() => page.getByTestId('tag-link').allTextContents())
      .toEqual(['1.0', '1.0.0', 'latest', 'moved']);
    const button = page.locator('[data-testid="delete-tag"][data-tag="1.0"]');
    await button.click();
    // asked first; Cancel keeps the tag
    await expect.poll(() => page.getByTestId('confirm-dialog').isVisible()).toBe(true);
    await page.getByTestId('confirm-cancel').click();
    await expect.poll(() => page.getByTestId('confirm-dialog').count()).toBe(0);
    expect(await page.getByTestId('tag-row').count()).toBe(4);
    await button.click();
    await screenshot(page, 'delete-confirm');
    await page.getByTestId('confirm-delete').click();
    await expect.poll(() => page.getByTestId('action-status').textContent()).toBe('Deleted tag 1.0.');
    expect(await page.getByTestId('tag-link').allTextContents()).toEqual(['1.0.0', 'latest', 'moved']);
    await screenshot(page, 'tags-after-delete');
    // gone on the server: the tag, not the manifest (1.0.0 still points at it)
    const tags = (await (await api('/v2/team/sub/app/tags/list')).json()) as { tags: string[] };
    expect(tags.tags.sort()).toEqual(['1.0.0', 'latest', 'moved']);
    expect((await api('/v2/team/sub/app/manifests/1.0')).status).toBe(404);
    expect(
      (await api(`/v2/team/sub/app/manifests/${pushOf('team/sub/app', '1.0.0').descriptor.digest}`)).status,
    ).toBe(200);
    // and after a reload, the list the server gives
    await page.reload();
    await expect
      .poll(() => page.getByTestId('tag-link').allTextContents())
      .toEqual(['1.0.0', 'latest', 'moved']);
    expect(errors).toEqual([]);
    await context.close();
  });

  it('offers a pull-only user no delete, and the server refuses the page’s changes (403)', async () => {
    const context = await newContext();
    const { page, errors } = await newPage(context);
    await logIn(page, 'bob');
    const access = page.waitForResponse((response) => response.url().includes('/ui/api/access'));
    await page.goto('/ui/#/r/team/sub/app');
    expect(await (await access).json()).toEqual({ actions: ['pull'] });
    await expect
      .poll(() => page.getByTestId('tag-link').allTextContents())
      .toEqual(['1.0.0', 'latest', 'moved']);
    expect(await page.getByTestId('delete-tag').count()).toBe(0);
    await screenshot(page, 'pull-only-tags');
    await page.locator('[data-tag="latest"]').getByTestId('tag-link').click();
    await expect.poll(() => heading(page).textContent()).toBe('team/sub/app:latest');
    await expect.poll(() => page.getByTestId('layer-row').count()).toBeGreaterThan(0);
    // the delete section stays hidden: neither button is offered
    expect(await page.getByTestId('delete').isHidden()).toBe(true);
    expect(await page.getByTestId('delete-tag').isVisible()).toBe(false);
    expect(await page.getByTestId('delete-manifest').isVisible()).toBe(false);
    await screenshot(page, 'pull-only-manifest');

    // what the page would send, with the session's CSRF token: the registry API refuses it all
    const image = pushOf('team/sub/app', 'latest') as RandomImage;
    const answers = await page.evaluate(
      async ({ digest, manifest, mediaType }) => {
        const session = (await (await fetch('/ui/api/session')).json()) as { user: string; csrf: string };
        const send = async (method: string, path: string, init: { type?: string; body?: string } = {}) => {
          const response = await fetch(path, {
            method,
            credentials: 'same-origin',
            headers: {
              'X-Stowage-CSRF': session.csrf,
              ...(init.type ? { 'content-type': init.type } : {}),
            },
            ...(init.body !== undefined ? { body: init.body } : {}),
          });
          const body = (await response.json().catch(() => null)) as { errors?: { code: string }[] } | null;
          return `${method} ${path}: ${response.status} ${body?.errors?.[0]?.code}`;
        };
        return {
          user: session.user,
          hasToken: typeof session.csrf === 'string' && session.csrf.length > 0,
          answers: [
            await send('DELETE', '/v2/team/sub/app/manifests/latest'),
            await send('DELETE', `/v2/team/sub/app/manifests/${digest}`),
            await send('PUT', '/v2/team/sub/app/manifests/forged', { type: mediaType, body: manifest }),
            await send('POST', '/v2/team/sub/app/blobs/uploads/'),
            await send('POST', '/v2/newrepo/blobs/uploads/'),
          ],
        };
      },
      {
        digest: image.manifest.digest,
        manifest: new TextDecoder().decode(image.manifest.bytes),
        mediaType: image.manifest.mediaType,
      },
    );
    expect(answers).toEqual({
      user: 'bob',
      hasToken: true,
      answers: [
        'DELETE /v2/team/sub/app/manifests/latest: 403 DENIED',
        `DELETE /v2/team/sub/app/manifests/${image.manifest.digest}: 403 DENIED`,
        'PUT /v2/team/sub/app/manifests/forged: 403 DENIED',
        'POST /v2/team/sub/app/blobs/uploads/: 403 DENIED',
        'POST /v2/newrepo/blobs/uploads/: 403 DENIED',
      ],
    });
    // nothing changed
    const tags = (await (await api('/v2/team/sub/app/tags/list')).json()) as { tags: string[] };
    expect(tags.tags.sort()).toEqual(['1.0.0', 'latest', 'moved']);
    expect((await api('/v2/_catalog')).ok).toBe(true);
    expect(
      ((await (await api('/v2/_catalog')).json()) as { repositories: string[] }).repositories,
    ).not.toContain('newrepo');
    expect(errors).toEqual([]);
    await context.close();
  });

  it('walks every page with the keyboard alone: Tab reaches every link and button, Enter follows them', async () => {
    const context = await newContext();
    const { page, errors } = await newPage(context);
    await page.goto('/ui/');
    // anonymous: the login form in place of the list
    await expect.poll(() => page.getByTestId('login-needed').isVisible()).toBe(true);
    await walkAndShoot(page, 'keyboard-login-needed');
    await tabTo(page, '[data-testid="login-link"]');
    await page.keyboard.press('Enter');
    await expect.poll(() => heading(page).textContent()).toBe('Log in');
    await walkAndShoot(page, 'keyboard-login');
    await tabTo(page, '[data-testid="login-username"]');
    await page.keyboard.type('alice');
    await page.keyboard.press('Tab');
    await page.keyboard.type(USERS.alice);
    await page.keyboard.press('Enter');
    await expect.poll(() => heading(page).textContent()).toBe('Repositories');
    await expect.poll(() => page.getByTestId('repository-row').count()).toBe(7);
    await walkAndShoot(page, 'keyboard-repositories');

    // search with the keyboard, then Enter on a result
    await tabTo(page, '[data-testid="repository-search"]');
    await page.keyboard.type('multi');
    await expect.poll(() => page.getByTestId('repository-row').count()).toBe(2);
    await walkAndShoot(page, 'keyboard-search');
    await tabTo(page, '[data-repository="multi/oci"] a');
    await page.keyboard.press('Enter');
    await expect.poll(() => heading(page).textContent()).toBe('multi/oci');
    // focus moved to the new page's heading
    expect(await page.evaluate(() => document.activeElement?.getAttribute('data-testid'))).toBe(
      'page-heading',
    );
    await expect.poll(() => page.getByTestId('delete-tag').count()).toBe(2);
    await walkAndShoot(page, 'keyboard-tags');

    await tabTo(page, '[data-tag="v1"] a');
    await page.keyboard.press('Enter');
    await expect.poll(() => heading(page).textContent()).toBe('multi/oci:v1');
    await expect.poll(() => page.getByTestId('delete-tag').isVisible()).toBe(true);
    await expect
      .poll(() => page.getByTestId('referrers').getByTestId('status').textContent())
      .toMatch(/^No signatures/);
    await walkAndShoot(page, 'keyboard-index');

    await tabTo(page, '[data-testid="platform-link"]');
    await page.keyboard.press('Enter');
    await expect.poll(() => heading(page).textContent()).toMatch(/^multi\/oci@sha256:/);
    await expect.poll(() => page.getByTestId('layer-row').count()).toBeGreaterThan(0);
    await expect.poll(() => page.getByTestId('delete-manifest').isVisible()).toBe(true);
    await expect.poll(() => page.getByTestId('config-details').isVisible()).toBe(true);
    await expect
      .poll(() => page.getByTestId('referrers').getByTestId('status').textContent())
      .toMatch(/^No signatures/);
    await walkAndShoot(page, 'keyboard-image');

    // Enter on a button: the delete asks first, with the focus on Cancel; Enter there keeps it
    const heading1 = await heading(page).textContent();
    await tabTo(page, '[data-testid="delete-manifest"]');
    await page.keyboard.press('Enter');
    await expect.poll(() => page.getByTestId('confirm-dialog').isVisible()).toBe(true);
    expect(await page.evaluate(() => document.activeElement?.getAttribute('data-testid'))).toBe(
      'confirm-cancel',
    );
    await page.keyboard.press('Enter');
    await expect.poll(() => page.getByTestId('confirm-dialog').count()).toBe(0);
    expect(await heading(page).textContent()).toBe(heading1);
    const index = pushOf('multi/oci', 'v1') as RandomIndex;
    expect((await api(`/v2/multi/oci/manifests/${index.images[0]?.manifest.digest}`)).status).toBe(200);

    // back along the breadcrumb, then log out, all by keyboard
    await tabTo(page, 'nav[aria-label="Breadcrumb"] a[href="#/r/multi/oci"]');
    await page.keyboard.press('Enter');
    await expect.poll(() => heading(page).textContent()).toBe('multi/oci');
    await tabTo(page, '[data-testid="logout-button"]');
    await page.keyboard.press('Enter');
    await expect.poll(() => page.getByTestId('login-link').isVisible()).toBe(true);
    await expect.poll(() => page.getByTestId('login-needed').isVisible()).toBe(true);

    // the pull-only view, by keyboard too
    await tabTo(page, '[data-testid="login-username"]');
    await page.keyboard.type('bob');
    await page.keyboard.press('Tab');
    await page.keyboard.type(USERS.bob);
    const access = page.waitForResponse((response) => response.url().includes('/ui/api/access'));
    await page.keyboard.press('Enter');
    expect(await (await access).json()).toEqual({ actions: ['pull'] });
    await expect.poll(() => page.getByTestId('tag-link').allTextContents()).toEqual(['latest', 'v1']);
    await expect.poll(() => page.getByTestId('session-user').textContent()).toBe('Signed in as bob');
    expect(await page.getByTestId('delete-tag').count()).toBe(0);
    await walkAndShoot(page, 'keyboard-pull-only-tags');
    await tabTo(page, '[data-tag="latest"] a');
    await page.keyboard.press('Enter');
    await expect.poll(() => heading(page).textContent()).toBe('multi/oci:latest');
    await expect.poll(() => page.getByTestId('platform-row').count()).toBe(2);
    await expect
      .poll(() => page.getByTestId('referrers').getByTestId('status').textContent())
      .toMatch(/^No signatures/);
    expect(await page.getByTestId('delete').isHidden()).toBe(true);
    await walkAndShoot(page, 'pull-only');
    expect(errors).toEqual([]);
    await context.close();
  });
});
