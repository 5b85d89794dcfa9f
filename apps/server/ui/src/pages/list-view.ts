// The filtered, sorted, paged table both lists (repositories, tags) are: it renders what the
// listing holds so far, again after every page that arrives, 100 rows per view page.
import { h, replace } from '../dom.js';
import { formatCount, matchesFilter } from '../format.js';
import type { Listing } from '../listing.js';
import { createPager, errorMessage, type PageContext, statusLine, table } from '../widgets.js';
import { offerLogin } from './login.js';

const VIEW_PAGE = 100;

export interface ListViewOptions {
  readonly listing: Listing;
  /** `repository` or `tag`: the table is `<testid>-table`, the count `<testid>-count`. */
  readonly testid: string;
  readonly nouns: readonly [singular: string, plural: string];
  readonly head: readonly string[];
  readonly row: (item: string) => HTMLTableRowElement;
  readonly compare: (a: string, b: string) => number;
  readonly empty: string;
  /** The filter and the view page (0-based) to start with. */
  readonly filter: string;
  readonly page: number;
  /** After the user changed the filter or the page (to keep them in the address). */
  readonly onState: (state: { readonly filter: string; readonly page: number }) => void;
}

export interface ListView {
  /** Count, status, table and pager. */
  readonly element: HTMLElement;
  setFilter(filter: string): void;
  /** Sort again (the order changed) and show the first view page. */
  setCompare(compare: (a: string, b: string) => number): void;
  /** Render again (rows changed: a delete, a permission learnt). */
  refresh(): void;
}

/** The view page from a `p=` query value (1-based; anything else is the first). */
export function viewPage(value: string | null): number {
  return Math.max(0, Number.parseInt(value ?? '1', 10) - 1 || 0);
}

export function createListView(context: PageContext, options: ListViewOptions): ListView {
  const { listing } = options;
  let filter = options.filter;
  let page = options.page;
  let compare = options.compare;
  const count = h('p', { class: 'count', testid: `${options.testid}-count` });
  const status = statusLine();
  const list = table({ testid: `${options.testid}-table`, head: options.head });
  const pager = createPager({
    pageSize: VIEW_PAGE,
    onPage: (wanted) => {
      page = wanted;
      show();
      options.onState({ filter, page });
    },
  });
  const element = h('div', null, count, status, list.element, pager.element);

  let sorted: string[] = [];
  let sortedFrom = -1;
  const resort = () => {
    sorted = [...listing.items].sort(compare);
    sortedFrom = listing.items.length;
  };
  const show = () => {
    if (listing.error && offerLogin(context, listing.error, element)) return;
    // sort again only when a page added entries (or one was removed)
    if (sortedFrom !== listing.items.length) resort();
    const matching = filter === '' ? sorted : sorted.filter((item) => matchesFilter(item, filter));
    page = pager.update({ total: matching.length, page, final: listing.done });
    replace(list.body, matching.slice(page * VIEW_PAGE, (page + 1) * VIEW_PAGE).map(options.row));
    list.element.hidden = matching.length === 0;
    const total = listing.items.length;
    const [singular, plural] = options.nouns;
    count.textContent =
      filter === ''
        ? `${formatCount(total)} ${total === 1 ? singular : plural}${listing.done ? '' : ' so far'}`
        : `${formatCount(matching.length)} of ${formatCount(total)} match`;
    if (listing.error) replace(status, errorMessage(listing.error.message));
    else if (!listing.done) status.textContent = 'Loading…';
    else if (total === 0) status.textContent = options.empty;
    else if (matching.length === 0) status.textContent = `No ${singular} matches.`;
    else status.textContent = '';
  };

  const unsubscribe = listing.subscribe(show);
  context.signal.addEventListener('abort', unsubscribe);
  show();
  return {
    element,
    setFilter(value) {
      filter = value;
      page = 0;
      show();
      options.onState({ filter, page });
    },
    setCompare(value) {
      compare = value;
      resort();
      page = 0;
      show();
      options.onState({ filter, page });
    },
    refresh: show,
  };
}
