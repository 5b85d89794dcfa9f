// Pieces several pages use: the view pager, copy buttons, the delete confirmation, messages.
import { type Child, h } from './dom.js';
import { formatCount } from './format.js';

/** What the router hands a page. */
export interface PageContext {
  /** The `<main>` to render into (empty when the page starts). */
  readonly main: HTMLElement;
  /** Aborted when the page is left: stop fetching, stop listening. */
  readonly signal: AbortSignal;
  /** Renders the current route again (after a login, a delete). */
  readonly rerender: () => void;
}

/** The heading of a page; the router moves focus to it after a navigation. */
export function pageHeading(...text: string[]): HTMLHeadingElement {
  return h('h1', { tabindex: -1, testid: 'page-heading' }, ...text);
}

export function errorMessage(text: string): HTMLElement {
  return h('p', { class: 'error', role: 'alert', testid: 'error' }, text);
}

/** A polite live region for "loading", "deleted" and the like. */
export function statusLine(testid = 'status'): HTMLElement {
  return h('p', { class: 'status', role: 'status', testid });
}

export interface Pager {
  readonly element: HTMLElement;
  /** Shows `page` (0-based) of `total` entries; returns the page, clamped when `final`. */
  update(update: { readonly total: number; readonly page: number; readonly final: boolean }): number;
}

/** Previous / next buttons and "101–200 of 10,000"; buttons are kept (and so is their focus) across updates. */
export function createPager(options: {
  readonly pageSize: number;
  readonly onPage: (page: number) => void;
}): Pager {
  let page = 0;
  const status = h('span', { class: 'pager-status', testid: 'pager-status' });
  const go = (wanted: number, from: HTMLButtonElement, other: () => HTMLButtonElement) => {
    options.onPage(wanted);
    // a button that just became disabled drops its focus: hand it to the other one
    if (from.disabled) other().focus();
  };
  const previous: HTMLButtonElement = h(
    'button',
    { type: 'button', testid: 'pager-prev', onclick: () => go(page - 1, previous, () => next) },
    '← Previous',
  );
  const next: HTMLButtonElement = h(
    'button',
    { type: 'button', testid: 'pager-next', onclick: () => go(page + 1, next, () => previous) },
    'Next →',
  );
  const element = h('nav', { class: 'pager', 'aria-label': 'Pages' }, previous, status, next);
  return {
    element,
    update({ total, page: wanted, final }) {
      const last = Math.max(0, Math.ceil(total / options.pageSize) - 1);
      page = Math.max(0, final ? Math.min(wanted, last) : wanted);
      const from = Math.min(total, page * options.pageSize + 1);
      const to = Math.min(total, (page + 1) * options.pageSize);
      status.textContent =
        !final && page * options.pageSize >= total
          ? 'Loading…'
          : total === 0
            ? 'none'
            : `${formatCount(from)}–${formatCount(to)} of ${formatCount(total)}${final ? '' : '…'}`;
      previous.disabled = page === 0;
      next.disabled = to >= total;
      element.hidden = total <= options.pageSize && page === 0;
      return page;
    },
  };
}

async function copyText(text: string, fallback: HTMLElement): Promise<boolean> {
  // navigator.clipboard exists only in a secure context (https, or localhost)
  if (navigator.clipboard) {
    try {
      await navigator.clipboard.writeText(text);
      return true;
    } catch {
      // refused (no permission, no focus): select the text instead
    }
  }
  const selection = getSelection();
  const range = document.createRange();
  range.selectNodeContents(fallback);
  selection?.removeAllRanges();
  selection?.addRange(range);
  try {
    return document.execCommand('copy');
  } catch {
    return false;
  }
}

/** A command (or digest) in `<code>` with a Copy button beside it. */
export function copyable(
  text: string,
  options: { readonly testid: string; readonly label: string },
): HTMLElement {
  const code = h('code', { testid: options.testid }, text);
  const said = h('span', { class: 'copied', role: 'status' });
  const button = h(
    'button',
    {
      type: 'button',
      class: 'copy',
      testid: 'copy-button',
      'aria-label': `Copy ${options.label}`,
      onclick: async () => {
        const done = await copyText(text, code);
        said.textContent = done ? 'Copied' : 'Selected: press Ctrl+C';
        setTimeout(() => {
          said.textContent = '';
        }, 2000);
      },
    },
    'Copy',
  );
  return h('div', { class: 'copyable' }, code, button, said);
}

/** Asks before a delete in a modal `<dialog>`; resolves true only for the confirm button. */
export function confirmDelete(options: {
  readonly title: string;
  readonly detail: string;
}): Promise<boolean> {
  return new Promise((resolve) => {
    const cancel = h('button', { type: 'button', testid: 'confirm-cancel' }, 'Cancel');
    const confirm = h('button', { type: 'button', class: 'danger', testid: 'confirm-delete' }, 'Delete');
    const dialog = h(
      'dialog',
      { testid: 'confirm-dialog', 'aria-labelledby': 'confirm-title' },
      h('h2', { id: 'confirm-title' }, options.title),
      h('p', null, options.detail),
      h('div', { class: 'buttons' }, cancel, confirm),
    );
    let answer = false;
    cancel.addEventListener('click', () => dialog.close());
    confirm.addEventListener('click', () => {
      answer = true;
      dialog.close();
    });
    // Escape closes the dialog too (a `cancel` event, then `close`)
    dialog.addEventListener('close', () => {
      dialog.remove();
      resolve(answer);
    });
    document.body.appendChild(dialog);
    dialog.showModal();
    cancel.focus();
  });
}

/** A table whose body the caller fills; `head` names the columns. */
export function table(options: {
  readonly testid: string;
  readonly caption?: string;
  readonly head: readonly string[];
  readonly rows?: readonly HTMLTableRowElement[];
}): { readonly element: HTMLElement; readonly body: HTMLTableSectionElement } {
  const body = h('tbody', null, options.rows ?? []);
  const element = h(
    'div',
    { class: 'table-wrap' },
    h(
      'table',
      { testid: options.testid },
      options.caption ? h('caption', null, options.caption) : null,
      h(
        'thead',
        null,
        h(
          'tr',
          null,
          options.head.map((name) =>
            // an unnamed column (the row's buttons) is named for screen readers only
            h('th', { scope: 'col' }, name === '' ? h('span', { class: 'sr-only' }, 'Actions') : name),
          ),
        ),
      ),
      body,
    ),
  );
  return { element, body };
}

/** `<dl>` of the entries that have a value (not `undefined`, `null`, `false` or `''`). */
export function definitions(
  entries: readonly (readonly [string, Child | undefined])[],
  testid?: string,
): HTMLElement {
  return h(
    'dl',
    testid ? { testid } : null,
    entries
      .filter(([, value]) => value !== undefined && value !== null && value !== false && value !== '')
      .map(([term, value]) => [h('dt', null, term), h('dd', null, value)]),
  );
}

/** A `<section>` with its `<h2>`, labelled by it. */
export function section(title: string, testid: string, ...children: Child[]): HTMLElement {
  const id = `section-${testid}`;
  return h('section', { 'aria-labelledby': id, testid }, h('h2', { id }, title), ...children);
}
