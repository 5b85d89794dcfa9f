// The login form: `#/login` on its own, and in place of any page the registry answered 401.
import { login } from '../api.js';
import { h, replace } from '../dom.js';
import { isApiError, messageOf } from '../errors.js';
import { parseRoute } from '../routes.js';
import { refreshSession, session } from '../session.js';
import { errorMessage, type PageContext, pageHeading } from '../widgets.js';

/** The form; `onDone` runs once the server accepted the credentials and the session is fresh. */
export function loginForm(options: {
  readonly onDone: () => void;
  readonly signal?: AbortSignal;
}): HTMLFormElement {
  const username = h('input', {
    id: 'login-username',
    name: 'username',
    autocomplete: 'username',
    required: true,
    autocapitalize: 'none',
    spellcheck: 'false',
    testid: 'login-username',
  });
  const password = h('input', {
    id: 'login-password',
    name: 'password',
    type: 'password',
    autocomplete: 'current-password',
    required: true,
    testid: 'login-password',
  });
  const submit = h('button', { type: 'submit', testid: 'login-submit' }, 'Log in');
  const problem = h('div', { testid: 'login-error' });
  const form = h(
    'form',
    { class: 'login', testid: 'login-form', 'aria-label': 'Log in' },
    h('label', { for: 'login-username' }, 'User name'),
    username,
    h('label', { for: 'login-password' }, 'Password'),
    password,
    submit,
    problem,
  );
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    submit.disabled = true;
    replace(problem);
    try {
      await login(
        { username: username.value, password: password.value },
        options.signal ? { signal: options.signal } : {},
      );
      await refreshSession();
      options.onDone();
    } catch (error) {
      if (options.signal?.aborted) return;
      replace(
        problem,
        errorMessage(
          isApiError(error) && error.status === 401 ? 'Wrong user name or password.' : messageOf(error),
        ),
      );
      password.select();
    } finally {
      submit.disabled = false;
    }
  });
  return form;
}

/** `#/login?next=<hash>`: the form, then back to where the user came from. */
export function renderLogin(context: PageContext, query: URLSearchParams): void {
  document.title = 'Log in · Stowage';
  const next = query.get('next');
  // only a route of this page, never an address elsewhere
  const target = next && parseRoute(next).page !== 'not-found' && next.startsWith('#/') ? next : '#/';
  const current = session();
  if (current.login === 'none') {
    replace(
      context.main,
      pageHeading('Log in'),
      h('p', null, 'This registry has no logins: everyone is anonymous.'),
    );
    return;
  }
  if (current.user !== null) {
    replace(context.main, pageHeading('Log in'), h('p', null, `Signed in as ${current.user}.`));
    return;
  }
  replace(
    context.main,
    pageHeading('Log in'),
    loginForm({
      signal: context.signal,
      onDone: () => {
        location.hash = target;
      },
    }),
  );
}

/**
 * In place of a page the registry refused with 401: the form (when logins exist), then the page
 * again. Returns false for any other error, which the page shows itself.
 */
export function offerLogin(context: PageContext, error: unknown, into: HTMLElement = context.main): boolean {
  if (!isApiError(error) || !error.needsLogin) return false;
  const current = session();
  if (current.login === 'none' || current.user !== null) {
    replace(
      into,
      errorMessage(current.user !== null ? `${error.message} (signed in as ${current.user})` : error.message),
    );
    return true;
  }
  replace(
    into,
    h('p', { class: 'notice', testid: 'login-needed' }, 'Log in to see this.'),
    loginForm({ signal: context.signal, onDone: context.rerender }),
  );
  return true;
}
