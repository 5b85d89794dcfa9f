// `#/?q=<filter>&p=<page>`: every repository, filtered by name in the page, 100 per view page.
// The catalog comes 1000 names a request; each page that arrives is shown at once.
import { h, replace } from '../dom.js';
import { compareNames } from '../format.js';
import { repositoryListing } from '../listing.js';
import { repositoriesHref, tagsHref } from '../routes.js';
import { type PageContext, pageHeading } from '../widgets.js';
import { createListView, viewPage } from './list-view.js';

export function renderRepositories(context: PageContext, query: URLSearchParams): void {
  document.title = 'Repositories · Stowage';
  const filter = query.get('q') ?? '';
  const search = h('input', {
    type: 'search',
    id: 'repository-search',
    value: filter,
    placeholder: 'Filter by name',
    autocomplete: 'off',
    spellcheck: 'false',
    testid: 'repository-search',
  });
  const view = createListView(context, {
    listing: repositoryListing(),
    testid: 'repository',
    nouns: ['repository', 'repositories'],
    head: ['Repository'],
    compare: compareNames,
    empty: 'No repositories yet: push an image to see it here.',
    filter,
    page: viewPage(query.get('p')),
    row: (name) =>
      h(
        'tr',
        { testid: 'repository-row', 'data-repository': name },
        h('td', null, h('a', { href: tagsHref(name), testid: 'repository-link' }, name)),
      ),
    // the view's state in the address, without a history entry per keystroke
    onState: ({ filter, page }) =>
      history.replaceState(
        history.state,
        '',
        repositoriesHref({ q: filter, p: page > 0 ? page + 1 : undefined }),
      ),
  });
  search.addEventListener('input', () => view.setFilter(search.value));
  replace(
    context.main,
    pageHeading('Repositories'),
    h(
      'form',
      { class: 'filter', role: 'search', onsubmit: (event) => event.preventDefault() },
      h('label', { for: 'repository-search' }, 'Search repositories'),
      search,
    ),
    view.element,
  );
}
