// The page: the header (who is signed in, log in, log out) and the router that renders the
// route of the address's hash into <main>, again on every hash change and after a login.
import { logout } from './api.js';
import { h, replace } from './dom.js';
import { messageOf } from './errors.js';
import { repositoryListing, tagListing } from './listing.js';
import { renderLogin } from './pages/login.js';
import { renderManifest } from './pages/manifest.js';
import { renderRepositories } from './pages/repositories.js';
import { renderTags } from './pages/tags.js';
import { loginHref, parseRoute, repositoriesHref } from './routes.js';
import { onSessionChange, refreshSession, session } from './session.js';
import { errorMessage, type PageContext, pageHeading } from './widgets.js';

const account = document.getElementById('account') as HTMLElement;
const main = document.getElementById('main') as HTMLElement;

let leave: AbortController | undefined;

/** Renders the route in the hash; `focus` moves focus to the new page's heading (a navigation). */
function render(focus: boolean): void {
  leave?.abort();
  const controller = new AbortController();
  leave = controller;
  replace(main);
  const context: PageContext = { main, signal: controller.signal, rerender: () => render(true) };
  const route = parseRoute(location.hash);
  switch (route.page) {
    case 'repositories':
      renderRepositories(context, route.query);
      break;
    case 'tags':
      renderTags(context, route.repository, route.query);
      break;
    case 'manifest':
      renderManifest(context, route.repository, route.reference);
      break;
    case 'login':
      renderLogin(context, route.query);
      break;
    default:
      document.title = 'Not found · Stowage';
      replace(
        main,
        pageHeading('Not found'),
        h('p', null, 'Nothing here. ', h('a', { href: repositoriesHref() }, 'See the repositories.')),
      );
  }
  if (focus) main.querySelector<HTMLElement>('h1')?.focus();
}

function renderAccount(): void {
  const current = session();
  if (current.user !== null) {
    const problem = h('span');
    const button = h(
      'button',
      {
        type: 'button',
        class: 'link',
        testid: 'logout-button',
        onclick: async () => {
          button.disabled = true;
          try {
            await logout();
            await refreshSession();
            render(true);
          } catch (error) {
            button.disabled = false;
            replace(problem, errorMessage(messageOf(error)));
          }
        },
      },
      'Log out',
    );
    replace(
      account,
      h('span', { testid: 'session-user' }, 'Signed in as ', h('strong', null, current.user)),
      button,
      problem,
    );
  } else if (current.login !== 'none') {
    const here = location.hash.startsWith('#/login') ? undefined : location.hash || undefined;
    replace(account, h('a', { href: loginHref(here), testid: 'login-link' }, 'Log in'));
  } else {
    replace(account);
  }
}

// the skip link focuses <main>; as a plain #main link it would be a route
document.querySelector('.skip')?.addEventListener('click', (event) => {
  event.preventDefault();
  main.focus();
});
onSessionChange(renderAccount);
window.addEventListener('hashchange', () => {
  render(true);
  // the login link carries the page to come back to
  renderAccount();
});
renderAccount();
// the list the first page shows is asked for beside the session, not after it
const first = parseRoute(location.hash);
if (first.page === 'repositories') repositoryListing();
else if (first.page === 'tags') tagListing(first.repository);
void refreshSession().then(() => render(false));
