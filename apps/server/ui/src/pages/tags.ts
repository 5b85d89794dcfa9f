// `#/r/<repository>?q=<filter>&p=<page>&order=desc`: a repository's tags, in natural order, filtered
// and paged in the view, fetched 1000 a request. Size and age are shown for the tags whose manifest
// was opened in this tab; the list itself asks nothing per tag.
import { deleteManifest } from '../api.js';
import { h, replace } from '../dom.js';
import { messageOf } from '../errors.js';
import { compareNames, formatAge, formatBytes } from '../format.js';
import { forgetTag, knownTag } from '../known.js';
import { tagListing } from '../listing.js';
import { manifestHref, repositoriesHref, tagsHref } from '../routes.js';
import { accessTo } from '../session.js';
import { confirmDelete, errorMessage, type PageContext, pageHeading, statusLine } from '../widgets.js';
import { createListView, viewPage } from './list-view.js';

const descendingNames = (a: string, b: string) => compareNames(b, a);

export function renderTags(context: PageContext, repository: string, query: URLSearchParams): void {
  document.title = `${repository} · Stowage`;
  const listing = tagListing(repository);
  const filter = query.get('q') ?? '';
  let descending = query.get('order') === 'desc';
  let canDelete = false;

  const search = h('input', {
    type: 'search',
    id: 'tag-search',
    value: filter,
    placeholder: 'Filter by tag',
    autocomplete: 'off',
    spellcheck: 'false',
    testid: 'tag-search',
  });
  const order = h(
    'select',
    { id: 'tag-order', testid: 'tag-order' },
    h('option', { value: 'asc', selected: !descending }, 'A → Z (v1.9 before v1.10)'),
    h('option', { value: 'desc', selected: descending }, 'Z → A'),
  );
  const done = statusLine('action-status');

  const remove = async (tag: string) => {
    const yes = await confirmDelete({
      title: `Delete tag ${tag}?`,
      detail: `The tag ${repository}:${tag} goes; the manifest it points at stays, reachable by its digest and any other tag.`,
    });
    if (!yes || context.signal.aborted) return;
    done.textContent = `Deleting ${tag}…`;
    try {
      await deleteManifest(repository, { reference: tag, signal: context.signal });
      forgetTag(repository, tag);
      listing.remove(tag);
      done.textContent = `Deleted tag ${tag}.`;
      // the button went with its row
      search.focus();
    } catch (error) {
      if (context.signal.aborted) return;
      replace(done, errorMessage(`Could not delete ${tag}: ${messageOf(error)}`));
    }
  };

  const row = (tag: string) => {
    const details = knownTag(repository, tag);
    return h(
      'tr',
      { testid: 'tag-row', 'data-tag': tag },
      h('td', null, h('a', { href: manifestHref(repository, tag), testid: 'tag-link' }, tag)),
      h('td', { class: 'number', testid: 'tag-size' }, formatBytes(details?.size)),
      h('td', { testid: 'tag-created', title: details?.created }, formatAge(details?.created) ?? '—'),
      h(
        'td',
        { class: 'actions' },
        canDelete &&
          h(
            'button',
            {
              type: 'button',
              class: 'danger small',
              testid: 'delete-tag',
              'data-tag': tag,
              'aria-label': `Delete tag ${tag}`,
              onclick: () => void remove(tag),
            },
            'Delete',
          ),
      ),
    );
  };

  const view = createListView(context, {
    listing,
    testid: 'tag',
    nouns: ['tag', 'tags'],
    head: ['Tag', 'Size', 'Created', ''],
    compare: descending ? descendingNames : compareNames,
    empty: 'No tags.',
    filter,
    page: viewPage(query.get('p')),
    row,
    onState: ({ filter, page }) =>
      history.replaceState(
        history.state,
        '',
        tagsHref(repository, {
          q: filter,
          p: page > 0 ? page + 1 : undefined,
          order: descending ? 'desc' : undefined,
        }),
      ),
  });
  search.addEventListener('input', () => view.setFilter(search.value));
  order.addEventListener('change', () => {
    descending = order.value === 'desc';
    view.setCompare(descending ? descendingNames : compareNames);
  });
  replace(
    context.main,
    h(
      'nav',
      { class: 'crumbs', 'aria-label': 'Breadcrumb' },
      h('a', { href: repositoriesHref() }, 'Repositories'),
      ' /',
    ),
    pageHeading(repository),
    h(
      'form',
      { class: 'filter', role: 'search', onsubmit: (event) => event.preventDefault() },
      h('label', { for: 'tag-search' }, 'Filter tags'),
      search,
      h('label', { for: 'tag-order' }, 'Order'),
      order,
    ),
    done,
    view.element,
  );
  void accessTo(repository).then((actions) => {
    if (context.signal.aborted || !actions.has('delete')) return;
    canDelete = true;
    view.refresh();
  });
}
